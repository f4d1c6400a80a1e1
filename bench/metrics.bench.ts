import 'reflect-metadata';
import { execFile, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  HttpException,
  Injectable,
  Module,
  NestInterceptor,
  Param,
  type DynamicModule,
  type Provider,
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { attachLifecycle, LifecycleModule } from '@nest-rollout/lifecycle';
import { MetricsModule } from '@nest-rollout/metrics';
import { Histogram, register } from 'prom-client';
import { Observable, tap } from 'rxjs';
import { forkServer, intEnv, serverCpuMicros, stopForked } from './support';

/**
 * Per-request cost of @nest-rollout/metrics, and the choice it rests on: recording on the adapter's
 * own hooks (what MetricsModule ships) versus a Nest interceptor. Requests/s and server CPU per
 * request of GET /orders/:id on Express and Fastify, each server in a child process of its own,
 * driven by wrk over loopback, all variants in one run:
 *
 * - bare: a plain Nest app;
 * - lifecycle: + LifecycleModule (what every nest-rollout app has), handed the app with attachLifecycle;
 * - metrics: + MetricsModule.forRoot() with its defaults (hooks, default metrics, the histogram);
 * - interceptor: + MetricsModule.forRoot({ http: false }) and a global interceptor recording the
 *   same observation into the same kind of accumulator (cached series, no label hashing), so the
 *   gap to `metrics` is the interceptor mechanism alone;
 * - interceptor+prom-client: the interceptor users usually write, recording with prom-client's
 *   Histogram#observe (the reference figure).
 *
 * Then the scrape: /metrics of the `metrics` server after traffic that fills ~200 series.
 *
 * The figures that matter are the ratios: requests/s (wrk) and the server's own CPU time per
 * request (process.cpuUsage), each against `bare` measured in the same round.
 *
 *   npx tsc -b libs/lifecycle/tsconfig.lib.json libs/metrics/tsconfig.lib.json && npx tsc -p test/tsconfig.fixtures.json && node dist/bench/metrics.bench.js
 *
 * Env: BENCH_DURATION_MS (default 3000 per measurement), BENCH_CONNECTIONS (64), BENCH_ROUNDS (3),
 * BENCH_VARIANTS and BENCH_ADAPTERS (comma-separated subsets; `bare` always runs), WRK (path of
 * wrk, default `wrk`). Loopback only; every
 * server is stopped when its measurement ends.
 */
const ADAPTERS = ['express', 'fastify'] as const;
const VARIANTS = ['bare', 'lifecycle', 'metrics', 'interceptor', 'interceptor+prom-client'] as const;
type AdapterName = (typeof ADAPTERS)[number];
type Variant = (typeof VARIANTS)[number];

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

@Controller('orders')
class OrdersController {
  @Get(':id')
  get(@Param('id') id: string): { id: string; item: string; quantity: number } {
    return { id, item: 'book', quantity: 1 };
  }
}

@Controller('status')
class StatusController {
  /** Answers with the status code asked for (400-599), to fill the histogram with series for the scrape measurement. */
  @Get(':code')
  status(@Param('code') code: string): never {
    throw new HttpException('as asked', Number(code));
  }
}

interface HttpRequestLike {
  method: string;
  route?: { path?: string };
  routeOptions?: { url?: string };
}
interface HttpResponseLike {
  statusCode: number;
  raw?: { statusCode: number };
}

/** The route template of a request, as the adapter's router matched it. */
function templateOf(req: HttpRequestLike): string {
  return req.route?.path ?? req.routeOptions?.url ?? 'unmatched';
}

/** What MetricsModule records per request (nested maps of cached series), for the interceptor variant. */
class Accumulator {
  private readonly series = new Map<string, Map<string, Map<number, { counts: Float64Array; sum: number; count: number }>>>();

  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) this.series.set(route, (byMethod = new Map()));
    let byStatus = byMethod.get(method);
    if (!byStatus) byMethod.set(method, (byStatus = new Map()));
    let s = byStatus.get(status);
    if (!s) byStatus.set(status, (s = { counts: new Float64Array(BUCKETS.length + 1), sum: 0, count: 0 }));
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]) i++;
    s.counts[i]++;
    s.sum += seconds;
    s.count++;
  }
}

@Injectable()
class AccumulatorInterceptor implements NestInterceptor {
  private readonly accumulator = new Accumulator();

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const startedAt = performance.now();
    const http = context.switchToHttp();
    const req = http.getRequest<HttpRequestLike>();
    const res = http.getResponse<HttpResponseLike>();
    const done = () =>
      this.accumulator.observe(req.method, templateOf(req), (res.raw ?? res).statusCode, (performance.now() - startedAt) / 1000);
    return next.handle().pipe(tap({ complete: done, error: done }));
  }
}

@Injectable()
class PromClientInterceptor implements NestInterceptor {
  private readonly histogram = new Histogram({
    name: 'bench_http_request_duration_seconds',
    help: 'Interceptor variant.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: BUCKETS,
    registers: [register],
  });

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const end = this.histogram.startTimer();
    const http = context.switchToHttp();
    const req = http.getRequest<HttpRequestLike>();
    const res = http.getResponse<HttpResponseLike>();
    const done = () => end({ method: req.method, route: templateOf(req), status_code: (res.raw ?? res).statusCode });
    return next.handle().pipe(tap({ complete: done, error: done }));
  }
}

async function serve(variant: Variant, adapter: AdapterName): Promise<void> {
  const imports: DynamicModule[] = [];
  const providers: Provider[] = [];
  if (variant !== 'bare') imports.push(LifecycleModule.forRoot({ minReadyDelayMs: 0, drainDelayMs: 0 }));
  if (variant === 'metrics') imports.push(MetricsModule.forRoot());
  if (variant.startsWith('interceptor')) imports.push(MetricsModule.forRoot({ http: false }));
  if (variant === 'interceptor') providers.push({ provide: APP_INTERCEPTOR, useClass: AccumulatorInterceptor });
  if (variant === 'interceptor+prom-client') providers.push({ provide: APP_INTERCEPTOR, useClass: PromClientInterceptor });

  @Module({ imports, providers, controllers: [OrdersController, StatusController] })
  class BenchModule {}

  const app = await NestFactory.create(BenchModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
  if (variant !== 'bare') attachLifecycle(app);
  await app.listen(0, '127.0.0.1');
  process.send?.({ port: (app.getHttpServer().address() as { port: number }).port });
  // CPU time is the figure that survives a busy machine: other processes steal wall-clock time
  // (and so requests/s), not the server's own CPU per request.
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  // Not app.close(): attachLifecycle owns the shutdown; the parent only needs the process gone.
  process.once('disconnect', () => process.exit(0));
}

interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
}

function wrk(url: string, durationMs: number, connections: number): Promise<WrkResult> {
  const seconds = Math.max(1, Math.round(durationMs / 1000));
  return new Promise((resolve, reject) => {
    execFile(
      process.env.WRK ?? 'wrk',
      ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', url],
      { timeout: durationMs + 30_000 },
      (error, stdout) => {
        if (error) return reject(new Error(`wrk failed: ${error.message}`));
        const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
        const requests = /(\d+) requests in/.exec(stdout);
        if (!rps || !requests) return reject(new Error(`unexpected wrk output:\n${stdout}`));
        const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
        const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
        const errors = Number(non2xx?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
        resolve({ rps: Number(rps[1]), requests: Number(requests[1]), errors });
      },
    );
  });
}

function get(port: number, path: string): Promise<{ status: number; body: string; ms: number }> {
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - startedAt }));
    });
    req.on('error', reject);
    req.end();
  });
}

function startServer(variant: Variant, adapter: AdapterName): Promise<{ child: ChildProcess; port: number }> {
  return forkServer(__filename, variant, adapter);
}

interface Measurement {
  rps: number;
  cpuMicrosPerRequest: number;
}

async function measureScrape(adapter: AdapterName, connections: number): Promise<string> {
  const { child, port } = await startServer('metrics', adapter);
  try {
    await wrk(`http://127.0.0.1:${port}/orders/42`, 1000, connections);
    for (let code = 400; code < 600; code++) await get(port, `/status/${code}`);
    const times: number[] = [];
    let body = '';
    for (let i = 0; i < 30; i++) {
      const scrape = await get(port, '/metrics');
      if (scrape.status !== 200) throw new Error(`scrape answered ${scrape.status}`);
      times.push(scrape.ms);
      body = scrape.body;
    }
    times.sort((a, b) => a - b);
    const series = body.split('\n').filter((line) => line.startsWith('http_request_duration_seconds_count')).length;
    return (
      `  ${adapter.padEnd(8)} ${String(series).padStart(4)} histogram series, ${(body.length / 1024).toFixed(0)} KiB: ` +
      `scrape p50 ${times[Math.floor(times.length / 2)].toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms (30 scrapes, wall time over loopback)`
    );
  } finally {
    await stopForked(child);
  }
}

async function main(): Promise<void> {
  const durationMs = intEnv('BENCH_DURATION_MS', 3000);
  const connections = intEnv('BENCH_CONNECTIONS', 64);
  const rounds = intEnv('BENCH_ROUNDS', 3);
  const variants = process.env.BENCH_VARIANTS ? VARIANTS.filter((v) => process.env.BENCH_VARIANTS!.split(',').includes(v)) : [...VARIANTS];
  if (!variants.includes('bare')) variants.unshift('bare');
  const adapters = process.env.BENCH_ADAPTERS ? ADAPTERS.filter((a) => process.env.BENCH_ADAPTERS!.split(',').includes(a)) : [...ADAPTERS];
  console.log(
    `metrics bench: GET /orders/:id, wrk -t1 -c${connections}, ${durationMs} ms per measurement after a 1 s warm-up, ` +
      `${rounds} rounds; within a round every variant runs back to back (order rotated each round), and each ratio is the ` +
      'median over rounds of the ratio within a round, so that load from other processes, which drifts, cancels out',
  );

  const results = new Map<string, Measurement[]>();
  for (let round = 0; round < rounds; round++) {
    for (const adapter of adapters) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]);
      for (const variant of order) {
        const { child, port } = await startServer(variant, adapter);
        try {
          const url = `http://127.0.0.1:${port}/orders/42`;
          await wrk(url, 1000, connections); // warm-up: JIT, connections
          const cpuBefore = await serverCpuMicros(child);
          const result = await wrk(url, durationMs, connections);
          if (result.errors > 0) throw new Error(`${variant}/${adapter}: ${result.errors} failed requests`);
          const cpuMicrosPerRequest = ((await serverCpuMicros(child)) - cpuBefore) / result.requests;
          const key = `${adapter}|${variant}`;
          results.set(key, [...(results.get(key) ?? []), { rps: result.rps, cpuMicrosPerRequest }]);
          console.log(
            `  round ${round + 1} ${adapter}/${variant}: ${Math.round(result.rps)} req/s, ${cpuMicrosPerRequest.toFixed(1)} µs CPU/req`,
          );
        } finally {
          await stopForked(child);
        }
      }
    }
  }

  console.log(
    '\nadapter  variant                  req/s (median)  vs bare (range)          vs lifecycle   CPU µs/req (median)  vs bare (range)          vs lifecycle',
  );
  for (const adapter of adapters) {
    const bare = results.get(`${adapter}|bare`)!;
    const lifecycle = results.get(`${adapter}|lifecycle`);
    for (const variant of variants) {
      const runs = results.get(`${adapter}|${variant}`)!;
      const paired = (base: Measurement[] | undefined, field: keyof Measurement, withRange: boolean): string => {
        if (!base) return '-';
        const ratios = runs.map((m, i) => m[field] / base[i][field]).sort((a, b) => a - b);
        const range = withRange ? ` (${ratios[0].toFixed(2)}-${ratios[ratios.length - 1].toFixed(2)})` : '';
        return `${median(ratios).toFixed(2)}x${range}`;
      };
      console.log(
        `${adapter.padEnd(8)} ${variant.padEnd(24)} ${String(Math.round(median(runs.map((m) => m.rps)))).padStart(14)}  ` +
          `${paired(bare, 'rps', true).padEnd(23)}  ${paired(lifecycle, 'rps', false).padEnd(12)}   ` +
          `${median(runs.map((m) => m.cpuMicrosPerRequest))
            .toFixed(1)
            .padStart(19)}  ` +
          `${paired(bare, 'cpuMicrosPerRequest', true).padEnd(23)}  ${paired(lifecycle, 'cpuMicrosPerRequest', false)}`,
      );
    }
  }

  console.log('\nscrape of /metrics (metrics variant, after traffic to /orders/:id and /status/400..599):');
  for (const adapter of adapters) console.log(await measureScrape(adapter, connections));
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] as Variant, process.argv[4] as AdapterName);
} else {
  // Exiting through process.exit lets the forked servers see their IPC channel close.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
