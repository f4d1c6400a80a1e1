import 'reflect-metadata';
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Controller, Get, Global, HttpCode, Module, Param, Post, Req, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Canary, CANARY_FORWARDER, CanaryDecision, CanaryModule, HttpCanaryForwarder, type CanaryTrack } from '@nest-rollout/canary';
import { accepts, freePort } from '../test/support/ports';
import { delay, startProcess, type ManagedProcess } from '../test/support/process';
import { askForked, forkServer, intEnv, serverCpuMicros, stopForked, takeGcPauses, watchGcPauses, type GcPauses } from './support';

/**
 * Cost of forwarding canary requests with @nest-rollout/canary's HttpCanaryForwarder, against
 * going to the canary directly and against nginx doing the split. Per adapter (Express, Fastify),
 * two instances of one Nest 12 app, each in a child process of its own: a canary instance
 * (`track: 'canary'`) and a stable instance (`track: 'stable'`) whose `CANARY_FORWARDER` is an
 * HttpCanaryForwarder to the canary; both with `rules: { header: { 'x-env': 'canary' } }`. Every
 * request carries `x-env: canary` and takes one of three paths to the same canary instance:
 *
 * - direct: straight to the canary instance;
 * - forwarder: to the stable instance, whose `@Canary()` route forwards it;
 * - nginx: through nginx (one worker, `map $http_x_env` choosing the canary upstream, an upstream
 *   keep-alive pool, HTTP/1.1 to the upstream), started by the bench on a loopback port with a
 *   temporary prefix.
 *
 * Each answer names the track that served it, and the load process counts any answer not from the
 * canary as a failure, so a request served locally by the stable instance cannot pass for a
 * forwarded one. Per path, in one run:
 *
 * - throughput: `GET /orders/:id/quote` from BENCH_CONNECTIONS keep-alive connections, each sending
 *   one request after the other for BENCH_DURATION_MS (requests/s at saturation), and for the
 *   forwarder the stable instance's CPU time per request (`process.cpuUsage()`), which other
 *   processes on the machine disturb less than wall-clock figures;
 * - latency: the same request at a fixed BENCH_RATE requests/s for BENCH_LATENCY_MS, each timed from
 *   the moment it is sent to the end of its answer. A fixed rate well below every path's capacity
 *   keeps queueing out of the figures, so the added latency is the hop's own (under saturation it
 *   would mostly restate the throughput difference). Meanwhile the Node instances the path crosses
 *   (the canary; for the forwarder, the stable instance too) count their garbage-collection pauses
 *   (`PerformanceObserver`, entry type `gc`): a request that arrives during one waits for it, so
 *   they are what the p99 is made of at this rate;
 * - for direct and forwarder, BENCH_UPLOADS sequential `POST /orders/:id/attachments` of 1 MiB
 *   (`application/octet-stream`, read as a raw stream by the handler), each answered with the
 *   byte count and sha256 the canary saw, checked against what was sent.
 *
 * Measurements run in rounds; within a round every path is measured back to back, in an order
 * rotated every round, and each figure is the median over rounds of that round's figure (ratios
 * and added latencies are taken within a round, so that load from other processes, which drifts,
 * cancels out). Goals: forwarding adds ≤ 1 ms to the median and ≤ 3 ms to the p99 latency. The
 * instances run with `logger: false`, as in the canary bench.
 *
 *   npm run bench:canary-forwarding
 *
 * Env: BENCH_DURATION_MS (default 2000), BENCH_CONNECTIONS (32), BENCH_LATENCY_MS (4000),
 * BENCH_RATE (250), BENCH_UPLOADS (60 per path and round), BENCH_ROUNDS (3), BENCH_ADAPTERS
 * (comma-separated subset), NGINX_BIN (/usr/sbin/nginx). Loopback only; the instances and nginx
 * of an adapter are stopped when its rounds end, the load process when the run ends.
 */
const ADAPTERS = ['express', 'fastify'] as const;
const PATHS = ['direct', 'forwarder', 'nginx'] as const;
const UPLOAD_PATHS = ['direct', 'forwarder'] as const;
type AdapterName = (typeof ADAPTERS)[number];
type PathName = (typeof PATHS)[number];

const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
const QUOTE_PATH = '/orders/42/quote';
const ATTACHMENT_PATH = '/orders/42/attachments';
const CANARY_HEADERS = { 'x-env': 'canary' } as const;
const UPLOAD_BYTES = 1024 * 1024;
/** A request without a complete answer after this long counts as failed. */
const REQUEST_TIMEOUT_MS = 5000;

/** Goals for the forwarder, in ms added to the direct path's latency. */
const GOAL_ADDED_P50_MS = 1;
const GOAL_ADDED_P99_MS = 3;

interface Quote {
  readonly id: string;
  readonly price: number;
  readonly track: CanaryTrack;
  readonly servedLocally: string | null;
}

interface Attachment {
  readonly track: CanaryTrack;
  readonly bytes: number;
  readonly sha256: string;
  readonly servedLocally: string | null;
}

/** Express hands the handler the Node request itself; Fastify wraps it (`request.raw`). */
function rawRequest(request: IncomingMessage | { raw: IncomingMessage }): IncomingMessage {
  return 'raw' in request ? request.raw : request;
}

async function serve(track: CanaryTrack, adapter: AdapterName, canaryUrl: string | undefined): Promise<void> {
  @Controller('orders')
  class OrdersController {
    @Get(':id/quote')
    @Canary()
    quote(@Param('id') id: string, @CanaryDecision() decision: CanaryDecision | undefined): Quote {
      return { id, price: 42, track, servedLocally: decision?.servedLocally ?? null };
    }

    @Post(':id/attachments')
    @HttpCode(200)
    @Canary()
    async attach(
      @Req() request: IncomingMessage | { raw: IncomingMessage },
      @CanaryDecision() decision: CanaryDecision | undefined,
    ): Promise<Attachment> {
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of rawRequest(request) as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        hash.update(chunk);
      }
      return { track, bytes, sha256: hash.digest('hex'), servedLocally: decision?.servedLocally ?? null };
    }
  }

  // Global and exporting the forwarder, as the sample's AppModule: CanaryModule's own request hooks
  // look CANARY_FORWARDER up from its scope.
  @Global()
  @Module({
    imports: [CanaryModule.forRoot({ track, rules: { header: { 'x-env': 'canary' } } })],
    controllers: [OrdersController],
    providers: canaryUrl === undefined ? [] : [{ provide: CANARY_FORWARDER, useFactory: () => new HttpCanaryForwarder(canaryUrl) }],
    exports: canaryUrl === undefined ? [] : [CANARY_FORWARDER],
  })
  class BenchModule {}

  let app: INestApplication;
  if (adapter === 'fastify') {
    const fastify = new FastifyAdapter();
    // Fastify answers 415 to a content type it has no parser for. This one leaves the body unread:
    // the handler (or the forwarder) streams it.
    fastify.getInstance().addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null));
    app = await NestFactory.create(BenchModule, fastify, { logger: false });
  } else {
    app = await NestFactory.create(BenchModule, new ExpressAdapter(), { logger: false });
  }
  await app.listen(0, '127.0.0.1');
  process.send?.({ port: (app.getHttpServer().address() as { port: number }).port });
  const gc = watchGcPauses();
  process.on('message', (message) => {
    if (message === 'gc') {
      process.send?.(gc.take());
      return;
    }
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  process.once('disconnect', () => void app.close().then(() => process.exit(0)));
}

type LoadOrder =
  | { readonly kind: 'throughput'; readonly port: number; readonly durationMs: number; readonly connections: number }
  | { readonly kind: 'latency'; readonly port: number; readonly durationMs: number; readonly rate: number }
  | { readonly kind: 'upload'; readonly port: number; readonly count: number };

interface LoadResult {
  readonly completed: number;
  /** Errors, timeouts and statuses other than 200. */
  readonly failed: number;
  /** 200 answers that were not from the canary, or (uploads) whose byte count or sha256 differed. */
  readonly wrong: number;
  /** The first wrong or failed answer, for the error message. */
  readonly example?: string;
  readonly elapsedMs: number;
  /** Per request, in ms (latency and upload orders). */
  readonly latenciesMs: readonly number[];
}

interface Exchange {
  readonly status?: number;
  readonly body: string;
  readonly error?: string;
  readonly ms: number;
}

/**
 * The load process, one for the whole run, so that every path is driven by the same warmed-up
 * client. The 1 MiB upload payload is drawn once; its sha256 is what the canary must echo.
 */
function runLoadProcess(): void {
  const payload = randomBytes(UPLOAD_BYTES);
  const payloadSha256 = createHash('sha256').update(payload).digest('hex');
  process.on('message', (order: LoadOrder) => {
    void run(order).then((result) => process.send?.(result));
  });
  process.once('disconnect', () => process.exit(0));

  async function run(order: LoadOrder): Promise<LoadResult> {
    const agent = new Agent({ keepAlive: true, maxSockets: order.kind === 'throughput' ? order.connections : 64 });
    const latenciesMs: number[] = [];
    let completed = 0;
    let failed = 0;
    let wrong = 0;
    let example: string | undefined;
    const record = (exchange: Exchange, ok: (body: string) => boolean, timed: boolean) => {
      if (exchange.status !== 200) {
        failed++;
        example ??= exchange.error ?? `${exchange.status} ${exchange.body.slice(0, 300)}`;
        return;
      }
      completed++;
      if (timed) latenciesMs.push(exchange.ms);
      if (!ok(exchange.body)) {
        wrong++;
        example ??= exchange.body.slice(0, 300);
      }
    };
    const fromCanary = (body: string) => body.includes('"track":"canary"');
    const get = () => send(agent, order.port, 'GET', QUOTE_PATH, undefined);
    const started = performance.now();
    try {
      if (order.kind === 'throughput') {
        const endAt = started + order.durationMs;
        await Promise.all(
          Array.from({ length: order.connections }, async () => {
            while (performance.now() < endAt) record(await get(), fromCanary, false);
          }),
        );
      } else if (order.kind === 'latency') {
        // Open loop: requests go out on schedule whether or not earlier ones have been answered.
        const intervalMs = 1000 / order.rate;
        const endAt = started + order.durationMs;
        const inFlight: Promise<void>[] = [];
        let next = started;
        while (next < endAt) {
          while (next <= performance.now() && next < endAt) {
            inFlight.push(get().then((exchange) => record(exchange, fromCanary, true)));
            next += intervalMs;
          }
          await delay(1);
        }
        await Promise.all(inFlight);
      } else {
        const intact = (body: string) => {
          try {
            const answer = JSON.parse(body) as Attachment;
            return answer.track === 'canary' && answer.bytes === UPLOAD_BYTES && answer.sha256 === payloadSha256;
          } catch {
            return false;
          }
        };
        for (let i = 0; i < order.count; i++) record(await send(agent, order.port, 'POST', ATTACHMENT_PATH, payload), intact, true);
      }
    } finally {
      agent.destroy();
    }
    return { completed, failed, wrong, example, elapsedMs: performance.now() - started, latenciesMs };
  }
}

/** One request with `x-env: canary`, timed from the call until the end of the answer. */
function send(agent: Agent, port: number, method: 'GET' | 'POST', path: string, body: Buffer | undefined): Promise<Exchange> {
  return new Promise((resolve) => {
    const sentAt = performance.now();
    const headers: Record<string, string | number> = { ...CANARY_HEADERS };
    if (body) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = body.length;
    }
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text, ms: performance.now() - sentAt }));
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (error) => resolve({ body: '', error: error.message, ms: performance.now() - sentAt }));
    req.end(body);
  });
}

function startLoadProcess(): ChildProcess {
  return fork(__filename, ['--load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

async function drive(loader: ChildProcess, order: LoadOrder, label: string): Promise<LoadResult> {
  const result = await askForked<LoadResult>(loader, order);
  if (result.failed > 0 || result.wrong > 0)
    throw new Error(
      `${label}: ${result.failed} failed and ${result.wrong} wrong answers of ${result.completed + result.failed}; e.g. ${result.example}`,
    );
  return result;
}

interface Nginx {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * nginx as the split a platform would do instead: `x-env: canary` to the canary upstream, the rest
 * to the stable one. One worker, as each Node instance has one thread. Upstream connections are
 * kept alive (HTTP/1.1, `Connection` cleared) and dropped after 4 s idle, below Node's 5 s
 * keep-alive timeout, so nginx never writes on a connection the instance is closing; no access log.
 */
function nginxConfig(prefix: string, port: number, canaryPort: number, stablePort: number): string {
  const upstream = (name: string, upstreamPort: number) => [
    `  upstream ${name} {`,
    `    server 127.0.0.1:${upstreamPort};`,
    '    keepalive 64;',
    '    keepalive_requests 1000000;',
    '    keepalive_timeout 4s;',
    '  }',
  ];
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${join(prefix, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  keepalive_requests 1000000;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${join(prefix, kind)};`),
    ...upstream('canary', canaryPort),
    ...upstream('stable', stablePort),
    '  map $http_x_env $release_upstream {',
    '    canary canary;',
    '    default stable;',
    '  }',
    '  server {',
    `    listen 127.0.0.1:${port};`,
    '    location / {',
    '      proxy_pass http://$release_upstream;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_set_header Host $host;',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

async function startNginx(canaryPort: number, stablePort: number): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), 'nest-rollout-nginx-'));
  // Started as root, nginx runs its worker as an unprivileged user, which must reach the temp paths.
  chmodSync(prefix, 0o755);
  const port = await freePort();
  const configPath = join(prefix, 'nginx.conf');
  writeFileSync(configPath, nginxConfig(prefix, port, canaryPort, stablePort));
  const proc: ManagedProcess = startProcess({ name: 'nginx', command: NGINX_BIN, args: ['-p', prefix, '-e', 'stderr', '-c', configPath] });
  const stop = async () => {
    await proc.stop('SIGTERM', 2000);
    rmSync(prefix, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 5000;
    while (!(await accepts(port))) {
      if (!proc.running) throw new Error(`nginx exited at start\n${proc.describe()}`);
      if (Date.now() > deadline) throw new Error(`nginx did not accept connections within 5 s\n${proc.describe()}`);
      await delay(25);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, stop };
}

interface LatencyFigures {
  readonly p50: number;
  readonly p99: number;
}

interface RoundFigures {
  rps?: number;
  latency?: LatencyFigures;
  upload?: LatencyFigures;
  /** Stable instance's CPU per forwarded request during the throughput measurement. */
  stableCpuMicrosPerRequest?: number;
  /** Garbage-collection pauses in the instances the path crosses, during the latency measurement. */
  gc?: GcPauses;
}

async function main(): Promise<void> {
  const durationMs = intEnv('BENCH_DURATION_MS', 2000);
  const connections = intEnv('BENCH_CONNECTIONS', 32);
  const latencyMs = intEnv('BENCH_LATENCY_MS', 4000);
  const rate = intEnv('BENCH_RATE', 250);
  const uploads = intEnv('BENCH_UPLOADS', 60);
  const rounds = intEnv('BENCH_ROUNDS', 3);
  const adapters = process.env.BENCH_ADAPTERS ? ADAPTERS.filter((a) => process.env.BENCH_ADAPTERS!.split(',').includes(a)) : [...ADAPTERS];
  console.log(
    `canary forwarding bench: GET ${QUOTE_PATH} with x-env: canary, direct to the canary / through the stable instance's ` +
      `HttpCanaryForwarder / through nginx; throughput from ${connections} keep-alive connections for ${durationMs} ms, latency at ` +
      `${rate} req/s for ${latencyMs} ms, ${uploads} sequential 1 MiB POSTs (direct and forwarder); ${rounds} rounds, path order ` +
      'rotated each round; figures are medians over rounds of per-round figures, and ratios and added latencies are taken within a round' +
      `\nload average at start: ${loadAverage()}`,
  );

  const loader = startLoadProcess();
  const results = new Map<string, RoundFigures[]>();
  try {
    for (const adapter of adapters) {
      const canary = await forkServer(__filename, 'canary', adapter);
      let stable: Awaited<ReturnType<typeof forkServer>> | undefined;
      let nginx: Nginx | undefined;
      try {
        stable = await forkServer(__filename, 'stable', adapter, [`http://127.0.0.1:${canary.port}`]);
        nginx = await startNginx(canary.port, stable.port);
        const ports: Record<PathName, number> = { direct: canary.port, forwarder: stable.port, nginx: nginx.port };
        // Warm-up: JIT (Nest's request path takes thousands of requests to settle), connection pools
        // (the forwarder's, nginx's), on every path.
        for (const path of PATHS) {
          await drive(loader, { kind: 'throughput', port: ports[path], durationMs: 2000, connections }, `${adapter}/${path} warm-up`);
          if (isUploadPath(path))
            await drive(loader, { kind: 'upload', port: ports[path], count: 10 }, `${adapter}/${path} upload warm-up`);
        }
        for (let round = 0; round < rounds; round++) {
          const order = PATHS.map((_, i) => PATHS[(i + round) % PATHS.length]);
          for (const path of order) {
            const label = `${adapter}/${path}`;
            const port = ports[path];
            const figures: RoundFigures = {};
            const cpuBefore = path === 'forwarder' ? await serverCpuMicros(stable.child) : 0;
            const throughput = await drive(loader, { kind: 'throughput', port, durationMs, connections }, label);
            figures.rps = (throughput.completed * 1000) / throughput.elapsedMs;
            if (path === 'forwarder')
              figures.stableCpuMicrosPerRequest = ((await serverCpuMicros(stable.child)) - cpuBefore) / throughput.completed;
            const crossed = path === 'forwarder' ? [stable.child, canary.child] : [canary.child];
            await takeGcPauses(crossed);
            figures.latency = percentiles((await drive(loader, { kind: 'latency', port, durationMs: latencyMs, rate }, label)).latenciesMs);
            figures.gc = await takeGcPauses(crossed);
            if (isUploadPath(path))
              figures.upload = percentiles((await drive(loader, { kind: 'upload', port, count: uploads }, label)).latenciesMs);
            const key = `${adapter}|${path}`;
            results.set(key, [...(results.get(key) ?? []), figures]);
            console.log(
              `  round ${round + 1} ${label}: ${Math.round(figures.rps)} req/s, p50 ${ms(figures.latency.p50)} p99 ${ms(figures.latency.p99)} ms` +
                (figures.upload ? `, 1 MiB POST p50 ${ms(figures.upload.p50)} p99 ${ms(figures.upload.p99)} ms` : '') +
                (figures.stableCpuMicrosPerRequest !== undefined
                  ? `, stable ${figures.stableCpuMicrosPerRequest.toFixed(1)} µs CPU/req`
                  : '') +
                `, GC during the latency run: ${figures.gc.count} pauses, ${ms(figures.gc.totalMs)} ms in all, longest ${ms(figures.gc.longestMs)} ms`,
            );
          }
        }
      } finally {
        await nginx?.stop();
        if (stable) await stopForked(stable.child);
        await stopForked(canary.child);
      }
    }
  } finally {
    await stopForked(loader);
  }

  console.log(`load average at end: ${loadAverage()}`);
  printTables(adapters, results, rounds, uploads);
}

/** 1, 5 and 15 minute load averages: other processes on the machine move every wall-clock figure. */
function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

function isUploadPath(path: PathName): path is (typeof UPLOAD_PATHS)[number] {
  return (UPLOAD_PATHS as readonly PathName[]).includes(path);
}

function printTables(adapters: readonly AdapterName[], results: Map<string, RoundFigures[]>, rounds: number, uploads: number): void {
  const runsOf = (adapter: AdapterName, path: PathName) => results.get(`${adapter}|${path}`)!;
  /** Median over rounds of `value`, and of `value` minus (or divided by) the direct path's value in the same round, with the range. */
  const paired = (adapter: AdapterName, path: PathName, value: (f: RoundFigures) => number, relation: 'minus' | 'ratio') => {
    const runs = runsOf(adapter, path);
    const base = runsOf(adapter, 'direct');
    const relative = runs
      .map((f, i) => (relation === 'minus' ? value(f) - value(base[i]) : value(f) / value(base[i])))
      .sort((a, b) => a - b);
    const format = (x: number) => (relation === 'minus' ? `${x >= 0 ? '+' : ''}${ms(x)}` : `${x.toFixed(2)}x`);
    return {
      value: median(runs.map(value)),
      relative: median(relative),
      text: path === 'direct' ? '-' : `${format(median(relative))} (${format(relative[0])} to ${format(relative[relative.length - 1])})`,
    };
  };

  console.log(
    `\nGET ${QUOTE_PATH} (medians over ${rounds} rounds; ranges across rounds in brackets)` +
      '\nadapter  path       req/s  vs direct              p50 ms  added p50                 p99 ms  added p99                 goal (p50 +≤1 ms, p99 +≤3 ms)  stable CPU µs/req  GC pauses, longest ms',
  );
  for (const adapter of adapters) {
    for (const path of PATHS) {
      const rps = paired(adapter, path, (f) => f.rps!, 'ratio');
      const p50 = paired(adapter, path, (f) => f.latency!.p50, 'minus');
      const p99 = paired(adapter, path, (f) => f.latency!.p99, 'minus');
      const verdict =
        path === 'forwarder'
          ? `p50 ${p50.relative <= GOAL_ADDED_P50_MS ? 'met' : 'MISSED'}, p99 ${p99.relative <= GOAL_ADDED_P99_MS ? 'met' : 'MISSED'}`
          : '-';
      const cpu = path === 'forwarder' ? median(runsOf(adapter, path).map((f) => f.stableCpuMicrosPerRequest!)).toFixed(1) : '-';
      const pauses = gcText(runsOf(adapter, path));
      console.log(
        `${adapter.padEnd(8)} ${path.padEnd(9)} ${String(Math.round(rps.value)).padStart(6)}  ${rps.text.padEnd(21)}  ` +
          `${ms(p50.value).padStart(6)}  ${p50.text.padEnd(24)}  ${ms(p99.value).padStart(6)}  ${p99.text.padEnd(24)}  ` +
          `${verdict.padEnd(29)}  ${cpu.padStart(17)}  ${pauses}`,
      );
    }
  }

  console.log(
    `\nPOST ${ATTACHMENT_PATH}, 1 MiB application/octet-stream, ${uploads} sequential per path and round, body checked by the ` +
      `canary's sha256 (medians over ${rounds} rounds)` +
      '\nadapter  path       p50 ms  added p50                 p99 ms  added p99',
  );
  for (const adapter of adapters) {
    for (const path of UPLOAD_PATHS) {
      const p50 = paired(adapter, path, (f) => f.upload!.p50, 'minus');
      const p99 = paired(adapter, path, (f) => f.upload!.p99, 'minus');
      console.log(
        `${adapter.padEnd(8)} ${path.padEnd(9)} ${ms(p50.value).padStart(6)}  ${p50.text.padEnd(24)}  ${ms(p99.value).padStart(6)}  ${p99.text}`,
      );
    }
  }
}

/** Median count of pauses per latency run and median longest pause, over rounds. */
function gcText(runs: readonly RoundFigures[]): string {
  return `${median(runs.map((f) => f.gc!.count))}, ${ms(median(runs.map((f) => f.gc!.longestMs)))}`;
}

/** Nearest-rank percentiles. */
function percentiles(values: readonly number[]): LatencyFigures {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  return { p50: rank(50), p99: rank(99) };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function ms(value: number): string {
  return value.toFixed(2);
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] as CanaryTrack, process.argv[4] as AdapterName, process.argv[5]);
} else if (process.argv[2] === '--load') {
  runLoadProcess();
} else {
  // Exiting through process.exit lets the forked instances and the load process see their IPC
  // channel close, and nginx's process group be killed on the way out.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
