import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';
import { delay, ManagedProcess, ProcessExit, startProcess } from './process';

export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

/** The header nginx adds to every answer: the upstream address that served it (`127.0.0.1:<port>`). */
export const NGINX_UPSTREAM_HEADER = 'x-served-by';

export interface NginxOptions {
  /** Loopback ports of the upstream's servers at start. */
  readonly upstreamPorts: readonly number[];
  /** Chosen free when omitted. */
  readonly port?: number;
  /** Idle connections to the upstream kept per worker. @default 32 */
  readonly upstreamKeepalive?: number;
}

export interface Nginx {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly process: ManagedProcess;
  /** Ports in the upstream now. */
  readonly upstreamPorts: readonly number[];
  /**
   * Rewrites the upstream to `ports` and reloads (SIGHUP), resolving once the new worker started:
   * from then on new connections are served by it, while the old worker finishes what it holds.
   */
  reload(ports: readonly number[]): Promise<void>;
  stop(): Promise<ProcessExit>;
}

/**
 * nginx as users run it in front of Node services: one worker, an upstream keep-alive pool
 * (`keepalive`, HTTP/1.1 and an empty Connection header to the upstream), client keep-alive, and
 * the default `proxy_next_upstream error timeout`: a request is tried on another server only when
 * it never reached the first one (connect refused or reset before a byte was sent); a POST is
 * never replayed. No passive health tuning beyond the defaults (`max_fails=1 fail_timeout=10s`).
 * The answering upstream's address is added to every response, errors included.
 */
export function nginxConfig(options: { port: number; dir: string; upstreamPorts: readonly number[]; upstreamKeepalive?: number }): string {
  const d = options.dir;
  return [
    // nginx started as root switches its workers to `nobody`, who cannot write the temp dir.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    'daemon off;',
    `pid ${d}/nginx.pid;`,
    'error_log stderr notice;',
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${d}/body;`,
    `  proxy_temp_path ${d}/proxy;`,
    `  fastcgi_temp_path ${d}/fastcgi;`,
    `  uwsgi_temp_path ${d}/uwsgi;`,
    `  scgi_temp_path ${d}/scgi;`,
    '  keepalive_timeout 15s;',
    '  keepalive_requests 100000;',
    '  upstream app {',
    ...options.upstreamPorts.map((p) => `    server 127.0.0.1:${p};`),
    `    keepalive ${options.upstreamKeepalive ?? 32};`,
    '  }',
    '  server {',
    `    listen 127.0.0.1:${options.port};`,
    '    location / {',
    '      proxy_pass http://app;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_connect_timeout 1s;',
    '      proxy_read_timeout 15s;',
    `      add_header ${NGINX_UPSTREAM_HEADER} $upstream_addr always;`,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Starts `nginx -p <temp dir> -c nginx.conf` in the foreground on a free loopback port. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-nginx-'));
  mkdirSync(join(dir, 'logs'));
  const configPath = join(dir, 'nginx.conf');
  let upstreamPorts = [...options.upstreamPorts];
  const write = () => writeFileSync(configPath, nginxConfig({ port, dir, upstreamPorts, upstreamKeepalive: options.upstreamKeepalive }));
  write();
  const proc = startProcess({ name: 'nginx', command: NGINX_BIN, args: ['-p', dir, '-c', configPath] });
  const workersStarted = () => proc.stderr.filter((l) => l.includes('start worker process')).length;
  const waitForWorkers = async (count: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (workersStarted() < count) {
      if (!proc.running) throw new Error(`nginx exited\n${proc.describe()}`);
      if (Date.now() > deadline) throw new Error(`nginx started no worker within ${timeoutMs} ms\n${proc.describe()}`);
      await delay(5);
    }
  };
  const stop = async () => {
    const exit = await proc.stop('SIGTERM', 2000);
    rmSync(dir, { recursive: true, force: true });
    return exit;
  };
  try {
    await waitForWorkers(1, 5000);
  } catch (error) {
    await stop();
    throw error;
  }
  // Reloads are serialized: two SIGHUPs in a row would be counted as one.
  let reloading: Promise<void> = Promise.resolve();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    process: proc,
    get upstreamPorts() {
      return upstreamPorts;
    },
    reload(ports) {
      reloading = reloading.then(async () => {
        upstreamPorts = [...ports];
        write();
        const before = workersStarted();
        proc.signal('SIGHUP');
        await waitForWorkers(before + 1, 5000);
      });
      return reloading;
    },
    stop,
  };
}
