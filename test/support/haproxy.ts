import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { delay, ManagedProcess, ProcessExit, startProcess } from './process';

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';

/** The header HAProxy adds to every response it relays: the name of the backend server. */
export const SERVED_BY_HEADER = 'x-served-by';

export interface HaproxyBackendServer {
  /** Server name in the config, in stats and in the `x-served-by` header. */
  readonly name: string;
  readonly port: number;
  /** Checks go to this port instead of `port` (a probe served on a port of its own). */
  readonly checkPort?: number;
  /** Starts in maintenance (`disabled`): no traffic and no checks until `set server ... state ready`. */
  readonly disabled?: boolean;
}

export interface HaproxyOptions {
  readonly servers: readonly HaproxyBackendServer[];
  /** Chosen free when omitted. */
  readonly port?: number;
  /** @default '/health/ready' */
  readonly healthPath?: string;
  /** Interval between two checks of a server. @default 200 */
  readonly checkIntervalMs?: number;
  /** Interval while a server is changing state (one check failed, or passed, against its state). @default 100 */
  readonly checkFastIntervalMs?: number;
  /** Consecutive failed checks that mark a server DOWN. @default 2 */
  readonly fall?: number;
  /** Consecutive passed checks that mark a server UP. @default 2 */
  readonly rise?: number;
  /** How HAProxy shares its idle connections to the servers. @default 'always' */
  readonly httpReuse?: 'never' | 'safe' | 'aggressive' | 'always';
  /**
   * `tcp` balances connections, not requests, as kube-proxy does: a client's keep-alive connection
   * stays on the instance it first reached until one side closes it, whatever the checks say.
   * Responses then carry no `x-served-by`. @default 'http'
   */
  readonly mode?: 'http' | 'tcp';
}

/** One row of `show stat`, keyed by the CSV header (pxname, svname, status, stot, hrsp_5xx, ...). */
export type HaproxyStatRow = Readonly<Record<string, string>>;

export interface Haproxy {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly process: ManagedProcess;
  readonly config: string;
  /** Runs a command on the admin socket ("show stat", "disable server be/s1") and returns the answer. */
  command(command: string): Promise<string>;
  /** Rows of the backend's servers, keyed by server name. */
  serverStats(): Promise<Map<string, HaproxyStatRow>>;
  /** Resolves once each named server's status starts with `status` ("UP", "DOWN"), or rejects after `timeoutMs`. */
  waitForServers(status: string, names: readonly string[], timeoutMs?: number): Promise<void>;
  /** Stops HAProxy (SIGTERM is its hard stop) and removes its temp dir; safe to call at any time. */
  stop(): Promise<ProcessExit>;
}

export const BACKEND = 'app';

/**
 * The load balancer the rollout proof runs behind. Every choice here is one that hides nothing:
 *
 * - `retries 0` and no `option redispatch`: a request whose connection fails or resets is answered
 *   503/502 to the client instead of being replayed on another server, so the client sees every
 *   request the app lost.
 * - Keep-alive on both sides and `http-reuse always`: idle server connections are shared by all
 *   client sessions, as a busy production balancer does. This is the case where a server closing
 *   a kept-alive socket under the balancer's feet loses requests, and where `Connection: close`
 *   during the drain matters.
 * - Checks `GET <healthPath>` every 200 ms, 100 ms while a state change is being confirmed,
 *   `fall 2`/`rise 2`: an instance whose readiness turns 503 is out of rotation within about
 *   300-400 ms (one regular, one fast interval, plus the checks themselves). Two failures rather than
 *   one, because on a small CI machine the load generator shares the CPU with both instances and
 *   one slow check of the surviving instance must not take it out too (that would be 503s that are
 *   the test's fault, not the app's).
 * - Bounded timeouts everywhere, so nothing hangs a test: connect 1 s, check 1 s, server/client 15 s.
 * - Only abnormal requests and health-check changes are logged (to stdout), each naming its
 *   termination state (e.g. `SH--`: the server closed the connection before answering).
 */
export function haproxyConfig(options: HaproxyOptions & { port: number; socket: string }): string {
  const inter = options.checkIntervalMs ?? 200;
  const fastinter = options.checkFastIntervalMs ?? 100;
  const fall = options.fall ?? 2;
  const rise = options.rise ?? 2;
  const http = (options.mode ?? 'http') === 'http';
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    `  stats socket ${options.socket} mode 600 level admin`,
    '  log stdout format raw local0 info',
    '',
    'defaults',
    `  mode ${http ? 'http' : 'tcp'}`,
    '  log global',
    http ? '  option httplog' : '  option tcplog',
    '  option dontlog-normal',
    '  option log-health-checks',
    ...(http ? ['  option http-keep-alive', `  http-reuse ${options.httpReuse ?? 'always'}`] : []),
    '  retries 0',
    '  timeout connect 1s',
    '  timeout check 1s',
    '  timeout client 15s',
    '  timeout server 15s',
    ...(http ? ['  timeout http-request 5s', '  timeout http-keep-alive 15s'] : []),
    '  timeout queue 2s',
    '',
    'frontend public',
    `  bind 127.0.0.1:${options.port}`,
    `  default_backend ${BACKEND}`,
    ...(http ? [`  http-response set-header ${SERVED_BY_HEADER} %[srv_name]`] : []),
    '',
    `backend ${BACKEND}`,
    '  balance roundrobin',
    '  option httpchk',
    `  http-check send meth GET uri ${options.healthPath ?? '/health/ready'} ver HTTP/1.1 hdr Host localhost`,
    '  http-check expect status 200',
    `  default-server check inter ${inter}ms fastinter ${fastinter}ms fall ${fall} rise ${rise}`,
    ...options.servers.map(
      (s) => `  server ${s.name} 127.0.0.1:${s.port}${s.checkPort ? ` port ${s.checkPort}` : ''}${s.disabled ? ' disabled' : ''}`,
    ),
    '',
  ].join('\n');
}

/** Starts `haproxy -f <generated cfg> -db` (foreground) on a free loopback port. */
export async function startHaproxy(options: HaproxyOptions): Promise<Haproxy> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const configPath = join(dir, 'haproxy.cfg');
  const config = haproxyConfig({ ...options, port, socket });
  writeFileSync(configPath, config);
  const proc = startProcess({ name: 'haproxy', command: HAPROXY_BIN, args: ['-f', configPath, '-db'] });

  const command = (cmd: string) => adminCommand(socket, cmd);
  const serverStats = async () => {
    const rows = parseStatCsv(await command('show stat'));
    return new Map(rows.filter((r) => r.pxname === BACKEND && r.svname !== 'BACKEND').map((r) => [r.svname, r]));
  };
  const stop = async () => {
    const exit = await proc.stop('SIGTERM', 2000);
    rmSync(dir, { recursive: true, force: true });
    return exit;
  };
  const haproxy: Haproxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    process: proc,
    config,
    command,
    serverStats,
    stop,
    async waitForServers(status, names, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let seen = '';
      while (Date.now() < deadline) {
        if (!proc.running) throw new Error(`haproxy exited\n${proc.describe()}`);
        const stats = await serverStats().catch(() => new Map<string, HaproxyStatRow>());
        seen = names.map((n) => `${n}=${stats.get(n)?.status ?? '?'}`).join(' ');
        if (names.every((n) => stats.get(n)?.status.startsWith(status))) return;
        await delay(25);
      }
      throw new Error(`haproxy servers not ${status} within ${timeoutMs} ms (${seen})\n${proc.describe()}`);
    },
  };

  try {
    const deadline = Date.now() + 5000;
    for (;;) {
      if (!proc.running) throw new Error(`haproxy exited at start\n${config}\n${proc.describe()}`);
      if (
        await command('show info').then(
          () => true,
          () => false,
        )
      )
        break;
      if (Date.now() > deadline) throw new Error(`haproxy admin socket did not answer within 5 s\n${proc.describe()}`);
      await delay(25);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return haproxy;
}

function adminCommand(socket: string, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const conn = createConnection(socket);
    conn.setTimeout(timeoutMs, () => conn.destroy(new Error(`haproxy admin socket: no answer to "${command}" within ${timeoutMs} ms`)));
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.end(`${command}\n`));
    conn.on('data', (chunk: string) => (answer += chunk));
    conn.on('end', () => resolve(answer));
    conn.on('error', reject);
  });
}

export function parseStatCsv(csv: string): HaproxyStatRow[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift();
  if (!header?.startsWith('# ')) return [];
  const columns = header.slice(2).split(',');
  return lines.map((line) => {
    const values = line.split(',');
    return Object.fromEntries(columns.filter(Boolean).map((c, i) => [c, values[i] ?? '']));
  });
}
