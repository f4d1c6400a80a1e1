import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { delay, ManagedProcess, startProcess } from './process';

/**
 * A private redis-server for a test: its own loopback port, a temp working directory, no
 * persistence, and a password (so REDIS_URL carries a secret the tests can look for).
 */
export interface RedisInstance {
  readonly port: number;
  readonly password: string;
  /** `redis://:<password>@127.0.0.1:<port>` */
  readonly url: string;
  /** Starts the server again on the same port (after `stop()`). */
  start(): Promise<void>;
  /** Stops the server; clients see their connection close. */
  stop(): Promise<void>;
  /** Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a hung host. */
  pause(): void;
  resume(): void;
  /** One command on a fresh connection, e.g. `['INFO', 'commandstats']`; returns the raw reply. */
  command(args: readonly string[]): Promise<string>;
  /** How many times the server has run `command` since it started (`INFO commandstats`). */
  commandCalls(command: string): Promise<number>;
  /** Stops the server and deletes its directory; safe to call more than once. */
  destroy(): Promise<void>;
}

export async function startRedis(): Promise<RedisInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-redis-'));
  const port = await freePort();
  const password = `rd-${Math.random().toString(36).slice(2, 12)}`;
  let server: ManagedProcess | undefined;
  let paused = false;
  let destroyed = false;

  const instance: RedisInstance = {
    port,
    password,
    url: `redis://:${password}@127.0.0.1:${port}`,
    async start() {
      server = startProcess({
        name: `redis-${port}`,
        command: 'redis-server',
        args: [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--requirepass',
          password,
          '--loglevel',
          'warning',
        ],
      });
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (!server.running) throw new Error(`redis-server exited at start\n${server.describe()}`);
        try {
          if ((await instance.command(['PING'])).startsWith('+PONG')) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s\n${server.describe()}`);
        await delay(25);
      }
    },
    async stop() {
      if (paused) instance.resume();
      await server?.stop('SIGTERM', 5000);
    },
    pause() {
      if (!server?.running) throw new Error('redis-server is not running');
      server.signal('SIGSTOP');
      paused = true;
    },
    resume() {
      server?.signal('SIGCONT');
      paused = false;
    },
    command: (args) => redisCommand(port, password, args),
    async commandCalls(command) {
      const info = await instance.command(['INFO', 'commandstats']);
      const match = info.match(new RegExp(`cmdstat_${command.toLowerCase()}:calls=(\\d+)`));
      return match ? Number(match[1]) : 0;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await instance.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    await instance.start();
    return instance;
  } catch (error) {
    await instance.destroy().catch(() => undefined);
    throw error;
  }
}

/** Sends AUTH and one command in RESP on a fresh connection; resolves with the raw reply to the command. */
function redisCommand(port: number, password: string, args: readonly string[], timeoutMs = 2000): Promise<string> {
  const encode = (parts: readonly string[]) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const timer = setTimeout(() => socket.destroy(new Error(`redis ${args[0]}: no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(encode(['AUTH', password]) + encode(args)));
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8');
      const afterAuth = data.indexOf('\r\n');
      if (afterAuth < 0) return;
      if (!data.startsWith('+OK')) {
        socket.destroy(new Error(`redis AUTH failed: ${data.slice(0, afterAuth)}`));
        return;
      }
      const reply = data.slice(afterAuth + 2);
      if (isCompleteReply(reply)) {
        clearTimeout(timer);
        socket.end();
        resolve(reply);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Enough of RESP for simple strings, errors, integers and bulk strings (INFO's reply). */
function isCompleteReply(reply: string): boolean {
  if (reply.length === 0) return false;
  if (reply[0] !== '$') return reply.includes('\r\n');
  const header = reply.indexOf('\r\n');
  if (header < 0) return false;
  const length = Number(reply.slice(1, header));
  return length < 0 || Buffer.byteLength(reply.slice(header + 2)) >= length + 2;
}
