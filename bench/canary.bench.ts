import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Controller, Get, Module, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Canary, CanaryDecision, CanaryModule, type CanaryModuleOptions } from '@nest-rollout/canary';
import { askForked, forkServer, intEnv, serverCpuMicros, stopForked } from './support';
import { assertNoWrkErrors, assertWrkInstalled, pinning, runWrk } from './wrk';

/**
 * Per-request cost of @nest-rollout/canary on a stable instance: requests/s and server CPU per
 * request of GET /orders/:id on Express and Fastify, each server in a child process of its own,
 * driven by wrk (keep-alive connections over loopback; the server pinned to the last CPU and wrk
 * to the others with `taskset -c` when there are two or more), all variants in one run:
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
 * Every variant gets the same requests (a distinct x-user each, from a wrk Lua script, no x-env),
 * so the server alone differs. The handler reads @CanaryDecision() (undefined when undecorated),
 * returns the variant and counts the canary ones, so the printed canary share shows that the rules
 * decided what they should.
 *
 *   npm run build && npx tsc -p test/tsconfig.fixtures.json && node dist/bench/canary.bench.js
 *
 * Needs wrk (`apt-get install wrk`). Env: BENCH_DURATION_MS (default 4000 per measurement; wrk
 * counts whole seconds), BENCH_CONNECTIONS (64), BENCH_ROUNDS (5), BENCH_ADAPTERS (comma-separated
 * subset). Loopback only; every server is stopped when its measurement ends.
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

  const answered = { canary: 0, total: 0 };

  @Controller('orders')
  class OrdersController {
    @Get(':id')
    @route
    get(
      @Param('id') id: string,
      @CanaryDecision() decision: CanaryDecision | undefined,
    ): { id: string; item: string; quantity: number; variant: string } {
      answered.total++;
      if (decision?.variant === 'canary') answered.canary++;
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
  process.on('message', (message) => {
    if (message === 'answered') return void process.send?.({ ...answered });
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
  process.once('disconnect', () => void app.close().then(() => process.exit(0)));
}

/** A distinct x-user on every request of a run (thread-local counter, one wrk thread). */
const X_USER_SCRIPT = `
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, { ["x-user"] = "user-" .. n })
end
`;

interface Measurement {
  rps: number;
  cpuMicrosPerRequest: number;
  canaryShare: number;
}

async function main(): Promise<void> {
  assertWrkInstalled();
  const durationMs = intEnv('BENCH_DURATION_MS', 4000);
  const connections = intEnv('BENCH_CONNECTIONS', 64);
  const rounds = intEnv('BENCH_ROUNDS', 5);
  const adapters = process.env.BENCH_ADAPTERS ? ADAPTERS.filter((a) => process.env.BENCH_ADAPTERS!.split(',').includes(a)) : [...ADAPTERS];
  const { serverCpus, wrkCpus } = pinning();
  console.log(
    `canary bench: GET /orders/:id, wrk -t1 -c${connections}, ${durationMs} ms per measurement after a 1 s warm-up, ${rounds} rounds` +
      `${serverCpus ? `, server on CPU ${serverCpus} and wrk on CPU ${wrkCpus}` : ''}; within a round every variant runs back to back ` +
      '(order rotated each round), and each ratio is the median over rounds of the ratio within a round, so that load from other ' +
      'processes, which drifts, cancels out',
  );

  const results = new Map<string, Measurement[]>();
  for (let round = 0; round < rounds; round++) {
    for (const adapter of adapters) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
      for (const variant of order) {
        const { child, port } = await forkServer(__filename, variant, adapter, [], { cpus: serverCpus });
        try {
          const load = (ms: number) =>
            runWrk({ url: `http://127.0.0.1:${port}/orders/42`, connections, durationMs: ms, luaScript: X_USER_SCRIPT, cpus: wrkCpus });
          assertNoWrkErrors(await load(1000), `${adapter}/${variant} warm-up`); // JIT, connections
          const cpuBefore = await serverCpuMicros(child);
          const before = await askForked<{ canary: number; total: number }>(child, 'answered');
          const result = await load(durationMs);
          const cpuMicrosPerRequest = ((await serverCpuMicros(child)) - cpuBefore) / result.requests;
          const after = await askForked<{ canary: number; total: number }>(child, 'answered');
          assertNoWrkErrors(result, `${adapter}/${variant}`);
          const canaryShare = (after.canary - before.canary) / Math.max(1, after.total - before.total);
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
} else {
  // Exiting through process.exit lets the forked servers see their IPC channel close.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
