import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, freePorts } from './ports';

/** Debian's etcd-server package (`.ci/run` installs it). */
export const ETCD_BINARY = process.env.ETCD_BINARY ?? '/usr/bin/etcd';

/**
 * A real single-member etcd on loopback ports with its own temporary data dir, for end-to-end
 * tests. It can be stopped and started again on the same ports (with or without its data), frozen
 * with SIGSTOP (a registry that accepts connections and never answers), and is always stopped and
 * its data dir removed by `destroy()`, also if the test runner exits first.
 */
export class EtcdServer {
  private child: ChildProcess | undefined;
  private readonly output: string[] = [];
  private readonly killOnExit = () => this.child?.pid && tryKill(this.child.pid, 'SIGKILL');

  private constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
  ) {
    process.once('exit', this.killOnExit);
  }

  /** Picks free ports and a temp data dir; `start()` runs it. */
  static async create(): Promise<EtcdServer> {
    const [clientPort, peerPort] = await freePorts(2);
    return new EtcdServer(clientPort, peerPort, mkdtempSync(join(tmpdir(), 'nest-rollout-etcd-')));
  }

  /** Creates and starts one. */
  static async start(): Promise<EtcdServer> {
    const server = await EtcdServer.create();
    await server.start();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts etcd and waits until it answers /health (at most `timeoutMs`). */
  async start(timeoutMs = 15_000): Promise<void> {
    if (this.running) return;
    const child = spawn(ETCD_BINARY, this.memberArgs(this.url), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 200) this.output.shift();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd exited during start (code ${child.exitCode})\n${this.describe()}`);
      if (await healthy(this.url)) return;
      await delay(100);
    }
    await this.stop();
    throw new Error(`etcd did not turn healthy within ${timeoutMs} ms\n${this.describe()}`);
  }

  /** Stops etcd (SIGTERM, then SIGKILL after `graceMs`); the data dir stays unless `wipe`. */
  async stop(options: { wipe?: boolean; graceMs?: number } = {}): Promise<void> {
    const child = this.child;
    if (child && this.running && child.pid) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      tryKill(child.pid, 'SIGCONT');
      tryKill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.pid && tryKill(child.pid, 'SIGKILL'), options.graceMs ?? 3000);
      await exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    if (options.wipe) rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Runs `use` against this member (its data dir and peer port) started for a moment on another
   * client port while it is stopped, then stops it again, also when `use` fails: clients of the
   * usual port see nothing of what `use` writes until they read again.
   */
  async onAnotherPort<T>(use: (url: string) => Promise<T>, timeoutMs = 15_000): Promise<T> {
    if (this.running) throw new Error('etcd runs on its usual port: stop() it first');
    const url = `http://127.0.0.1:${await freePort()}`;
    const child = spawn(ETCD_BINARY, this.memberArgs(url), { stdio: 'ignore' });
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    try {
      const deadline = Date.now() + timeoutMs;
      while (!(await healthy(url))) {
        if (Date.now() > deadline) throw new Error(`etcd on ${url} did not turn healthy within ${timeoutMs} ms`);
        await delay(50);
      }
      return await use(url);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(kill, 3000);
      await exited;
      clearTimeout(timer);
      process.off('exit', kill);
    }
  }

  /** SIGSTOP: connections are still accepted by the kernel, and nothing ever answers. */
  freeze(): void {
    if (this.child?.pid) tryKill(this.child.pid, 'SIGSTOP');
  }

  thaw(): void {
    if (this.child?.pid) tryKill(this.child.pid, 'SIGCONT');
  }

  /** Stops etcd and removes its data dir. Safe to call twice. */
  async destroy(): Promise<void> {
    await this.stop({ wipe: true, graceMs: 1000 });
    process.off('exit', this.killOnExit);
  }

  /** This one-member cluster, serving clients on `clientUrl`; flags of a new cluster are ignored once the data dir holds one. */
  private memberArgs(clientUrl: string): string[] {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    return [
      '--name=test',
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=test=${peer}`,
      '--initial-cluster-state=new',
      '--log-level=warn',
      '--logger=zap',
    ];
  }

  describe(): string {
    return `--- etcd on ${this.url} (data ${this.dataDir}) output:\n${this.output.join('').split('\n').slice(-30).join('\n')}`;
  }
}

function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/health`, { agent: false, timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
