import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Canary, CanaryDecision, CanaryModule, type CanaryModuleOptions } from '@nest-rollout/canary';
import { forkServer, intEnv, serverCpuMicros, stopForked } from './support';

/**
 * Per-request cost of @nest-rollout/canary on a stable instance: requests/s and server CPU per
 * request of GET /orders/:id on Express and Fastify, each server in a child process of its own,
 * driven by a load process of its own (keep-alive connections over loopback), all variants in
 * one run:
 *
 * - undecorated: CanaryModule imported, the route without @Canary() (must pay nothing);
 * - undecorated+als: the same, in a process where an AsyncLocalStorage is in use, as in any app
 *   with LoggingModule (trace ids), nestjs-cls or OpenTelemetry: Node 20 then runs its promise
 *   hooks for every promise, a cost @Canary() (whose decision lives in one) would otherwise carry
 *   alone;
 * - header: @Canary() with header rules only, the request carrying no matching header (stable,
 *   `no_match`);
 * - header+percent: @Canary() with `{ header, percent: 5, stickyKey: 'header:x-user' }`, every
 *   request with its own x-user (~5 % canary, served locally as there is no forwarder).
 *
 * Every variant gets the same requests (a distinct x-user each, no x-env), so the server alone
 * differs. The handler reads @CanaryDecision() (undefined when undecorated) and returns the
 * variant; the load process counts canary answers, so the printed canary share shows that the
 * rules decided what they should.
 *
 *   npm run build && npx tsc -p test/tsconfig.fixtures.json && node dist/bench/canary.bench.js
 *
 * Env: BENCH_DURATION_MS (default 3000 per measurement), BENCH_CONNECTIONS (32), BENCH_ROUNDS (3),
 * BENCH_ADAPTERS (comma-separated subset). Loopback only; every server is stopped when its
 * measurement ends, and the load process when the run ends.
 */
const ADAPTERS = ['express', 'fastify'] as const;
const VARIANTS = ['undecorated', 'undecorated+als', 'header', 'header+percent'] as const;
type AdapterName = (typeof ADAPTERS)[number];
type Variant = (typeof VARIANTS)[number];

const HEADER_RULES: CanaryModuleOptions['rules'] = { header: { 'x-env': 'canary' } };
const PERCENT_RULES: CanaryModuleOptions['rules'] = { header: { 'x-env': 'canary' }, percent: 5, stickyKey: 'header:x-user' };

/** Goals, as ratios of requests/s to `undecorated` in the same round. */
const GOALS: Partial<Record<Variant, number>> = { header: 0.95, 'header+percent': 0.9 };

async function serve(variant: Variant, adapter: AdapterName): Promise<void> {
  const decorated = variant === 'header' || variant === 'header+percent';
  const route: MethodDecorator = decorated ? Canary() : () => undefined;
  // An AsyncLocalStorage in use turns on Node's promise hooks for the whole process; @Canary() keeps
  // the decision in one, as LoggingModule keeps the trace ids (and nestjs-cls, OpenTelemetry...).
  if (variant === 'undecorated+als') new AsyncLocalStorage<object>().enterWith({});

  @Controller('orders')
  class OrdersController {
    @Get(':id')
    @route
    get(
      @Param('id') id: string,
      @CanaryDecision() decision: CanaryDecision | undefined,
    ): { id: string; item: string; quantity: number; variant: string } {
      return { id, item: 'book', quantity: 1, variant: decision?.variant ?? 'none' };
    }
  }

  @Module({
    imports: [CanaryModule.forRoot({ rules: variant === 'header' ? HEADER_RULES : PERCENT_RULES })],
    controllers: [OrdersController],
  })
  class BenchModule {}

  const app = await NestFactory.create(BenchModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
  await app.listen(0, '127.0.0.1');
  process.send?.({ port: (app.getHttpServer().address() as { port: number }).port });
  // CPU time is the figure that survives a busy machine: other processes steal wall-clock time
  // (and so requests/s), not the server's own CPU per request.
  process.on('message', () => {
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  process.once('disconnect', () => void app.close().then(() => process.exit(0)));
}

interface LoadOrder {
  readonly port: number;
  readonly durationMs: number;
  readonly connections: number;
}

interface LoadResult {
  readonly rps: number;
  readonly completed: number;
  readonly failed: number;
  readonly canary: number;
}

/**
 * The load process: for each order, `connections` keep-alive workers send one request after the
 * other for `durationMs`. The x-user counter runs across orders, so no two requests of a run share
 * a sticky key.
 */
function runLoadProcess(): void {
  let nextUser = 0;
  process.on('message', (order: LoadOrder) => {
    void load(order).then((result) => process.send?.(result));
  });
  process.once('disconnect', () => process.exit(0));

  async function load({ port, durationMs, connections }: LoadOrder): Promise<LoadResult> {
    const agent = new Agent({ keepAlive: true, maxSockets: connections });
    let completed = 0;
    let failed = 0;
    let canary = 0;
    const one = () =>
      new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/orders/42', agent, headers: { 'x-user': `user-${nextUser++}` } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            if (res.statusCode === 200) completed++;
            else failed++;
            if (body.includes('"variant":"canary"')) canary++;
            resolve();
          });
        });
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.end();
      });
    const started = Date.now();
    const endAt = started + durationMs;
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (Date.now() < endAt) await one();
      }),
    );
    const elapsedMs = Date.now() - started;
    agent.destroy();
    return { rps: (completed * 1000) / elapsedMs, completed, failed, canary };
  }
}

function startLoadProcess(): ChildProcess {
  return fork(__filename, ['--load'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function drive(loader: ChildProcess, order: LoadOrder): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`load process exited with ${code}`));
    loader.once('exit', onExit);
    loader.once('message', (result) => {
      loader.off('exit', onExit);
      resolve(result as LoadResult);
    });
    loader.send(order);
  });
}

interface Measurement {
  rps: number;
  cpuMicrosPerRequest: number;
  canaryShare: number;
}

async function main(): Promise<void> {
  const durationMs = intEnv('BENCH_DURATION_MS', 3000);
  const connections = intEnv('BENCH_CONNECTIONS', 32);
  const rounds = intEnv('BENCH_ROUNDS', 3);
  const adapters = process.env.BENCH_ADAPTERS ? ADAPTERS.filter((a) => process.env.BENCH_ADAPTERS!.split(',').includes(a)) : [...ADAPTERS];
  console.log(
    `canary bench: GET /orders/:id, ${connections} keep-alive connections from a load process, ${durationMs} ms per measurement ` +
      `after a 1 s warm-up, ${rounds} rounds; within a round every variant runs back to back (order rotated each round), and ` +
      'each ratio is the median over rounds of the ratio within a round, so that load from other processes, which drifts, cancels out',
  );

  const loader = startLoadProcess();
  const results = new Map<string, Measurement[]>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const adapter of adapters) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
        for (const variant of order) {
          const { child, port } = await forkServer(__filename, variant, adapter);
          try {
            await drive(loader, { port, durationMs: 1000, connections }); // warm-up: JIT, connections
            const cpuBefore = await serverCpuMicros(child);
            const result = await drive(loader, { port, durationMs, connections });
            if (result.failed > 0) throw new Error(`${adapter}/${variant}: ${result.failed} failed requests`);
            const cpuMicrosPerRequest = ((await serverCpuMicros(child)) - cpuBefore) / result.completed;
            const canaryShare = result.canary / result.completed;
            const key = `${adapter}|${variant}`;
            results.set(key, [...(results.get(key) ?? []), { rps: result.rps, cpuMicrosPerRequest, canaryShare }]);
            console.log(
              `  round ${round + 1} ${adapter}/${variant}: ${Math.round(result.rps)} req/s, ${cpuMicrosPerRequest.toFixed(1)} µs CPU/req, ` +
                `${(canaryShare * 100).toFixed(1)} % canary`,
            );
          } finally {
            await stopForked(child);
          }
        }
      }
    }
  } finally {
    await stopForked(loader);
  }

  // Each variant against both baselines: a process without any AsyncLocalStorage, and one with.
  for (const baseline of ['undecorated', 'undecorated+als'] as const) {
    console.log(
      `\nagainst ${baseline}:\nadapter  variant          req/s (median)  req/s ratio (range)     goal          CPU µs/req (median)  CPU ratio (range)       canary`,
    );
    for (const adapter of adapters) {
      const base = results.get(`${adapter}|${baseline}`)!;
      for (const variant of VARIANTS) {
        const runs = results.get(`${adapter}|${variant}`)!;
        const paired = (field: 'rps' | 'cpuMicrosPerRequest') => {
          const ratios = runs.map((m, i) => m[field] / base[i][field]).sort((a, b) => a - b);
          return {
            median: median(ratios),
            text: `${median(ratios).toFixed(2)}x (${ratios[0].toFixed(2)}-${ratios[ratios.length - 1].toFixed(2)})`,
          };
        };
        const rps = paired('rps');
        const goal = GOALS[variant];
        const verdict = goal === undefined ? '-' : `${rps.median >= goal ? 'met' : 'MISSED'} ≥${goal}`;
        console.log(
          `${adapter.padEnd(8)} ${variant.padEnd(15)} ${String(Math.round(median(runs.map((m) => m.rps)))).padStart(14)}  ` +
            `${rps.text.padEnd(22)}  ${verdict.padEnd(12)}  ${median(runs.map((m) => m.cpuMicrosPerRequest))
              .toFixed(1)
              .padStart(19)}  ${paired('cpuMicrosPerRequest').text.padEnd(22)}  ` +
            `${(median(runs.map((m) => m.canaryShare)) * 100).toFixed(1)} %`,
        );
      }
    }
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] as Variant, process.argv[4] as AdapterName);
} else if (process.argv[2] === '--load') {
  runLoadProcess();
} else {
  // Exiting through process.exit lets the forked servers and the load process see their IPC channel close.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
