import { existsSync } from 'node:fs';
import { ADAPTERS, PLAIN_APP_MAIN, SAMPLE_MAIN } from '../test/support/apps';
import { formatRolloutTable, ROLLOUT_APPS, RolloutResult, runRolloutScenario } from '../test/support/rollout';
import { intEnv } from './support';

/**
 * Rollout safety, measured: the rolling-restart scenario of test/rollout.e2e-spec.ts (two instances
 * behind HAProxy, steady keep-alive load, SIGTERM to one of them) for the nest-rollout sample and
 * for a plain Nest app in its three shutdown flavours, on Express and on Fastify, in one run.
 *
 *   npm run build && npx tsc -p test/tsconfig.fixtures.json && node dist/bench/rollout.bench.js
 *
 * Env: BENCH_LOAD_MS (default 10000), BENCH_STOP_AFTER_MS (3000), BENCH_CONNECTIONS (32),
 * BENCH_DRAIN_DELAY_MS (2000), BENCH_APPS (comma-separated subset of the app names below).
 * Only loopback is used; every run is bounded and stops what it started.
 */
async function main(): Promise<void> {
  for (const file of [SAMPLE_MAIN, PLAIN_APP_MAIN]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build && npx tsc -p test/tsconfig.fixtures.json\` first`);
  }
  const loadMs = intEnv('BENCH_LOAD_MS', 10_000);
  const stopAfterMs = intEnv('BENCH_STOP_AFTER_MS', 3000);
  const connections = intEnv('BENCH_CONNECTIONS', 32);
  const drainDelayMs = intEnv('BENCH_DRAIN_DELAY_MS', 2000);
  const apps = process.env.BENCH_APPS ? ROLLOUT_APPS.filter((a) => process.env.BENCH_APPS!.split(',').includes(a)) : ROLLOUT_APPS;

  console.log(
    `rollout bench: 2 instances behind HAProxy, ${connections} keep-alive connections for ${loadMs} ms, ` +
      `SIGTERM to one at ${stopAfterMs} ms; sample DRAIN_DELAY_MS=${drainDelayMs}`,
  );
  const results: RolloutResult[] = [];
  for (const app of apps) {
    for (const adapter of ADAPTERS) {
      const result = await runRolloutScenario({ app, adapter, loadMs, stopAfterMs, connections, drainDelayMs });
      results.push(result);
      const { stopped } = result;
      const since = (t: number | undefined) => (t === undefined ? 'never' : `+${t - stopped.signalledAt} ms`);
      console.log(
        `  ${app}/${adapter}: ${result.load.failed}/${result.load.sent} failed, ` +
          `${Math.round((result.load.sent * 1000) / result.load.durationMs)} req/s; stopped instance DOWN in HAProxy ${since(stopped.downAt)}, ` +
          `exited ${since(stopped.exit?.at)}, answered ${stopped.servedAfterSignal} requests sent after its SIGTERM`,
      );
    }
  }
  console.log(`\n${formatRolloutTable(results)}`);
}

// Children run in process groups of their own; exiting through process.exit lets their 'exit'
// hooks kill them when the bench is interrupted.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
