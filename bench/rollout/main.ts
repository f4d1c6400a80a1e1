import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Adapter, ADAPTERS, PLAIN_APP_MAIN, ROOT, SAMPLE_MAIN } from '../../test/support/apps';
import { PEER_APP_MAIN, ROLLOUT_APP_KINDS, RolloutAppKind } from './apps';
import { BALANCER_KINDS, BalancerKind, CHECK_INTERVAL_MS } from './balancers';
import { QUOTE_PATH, QUOTE_SHARE, USER_HEADER, USERS } from './canary';
import { renderCharts } from './chart';
import { formatCanaryTable, formatRunLine, formatSummary, formatTable } from './report';
import { LoadProfile, RunResult, runRollout, SCENARIO_KINDS, ScenarioKind, scenarioSkipReason } from './scenarios';

/**
 * Releases under load, through the balancers users run, for the sample and its peers:
 * every scenario × balancer × app × load profile chosen, one run each, one line per run, then the
 * table and an SVG chart per scenario and balancer.
 *
 *   npm run bench:rollout
 *   BENCH_SCENARIOS=rolling BENCH_BALANCERS=haproxy-tcp BENCH_APPS=nest-rollout,terminus npm run bench:rollout
 *
 * Env (comma-separated subsets): BENCH_SCENARIOS (rolling, blue-green, kill-9, canary: the sample only), BENCH_BALANCERS
 * (haproxy-http, haproxy-tcp, nginx, nginx-controller), BENCH_APPS (nest-rollout, plain:default,
 * plain:force-close, plain:return-503, lightship, terminus), BENCH_ADAPTERS (express, fastify;
 * default express), BENCH_LOADS (keep-alive, close; default both), BENCH_CONNECTIONS (32),
 * BENCH_EXIT_BOUND_MS (20000: an instance still running this long after SIGTERM is killed),
 * BENCH_CHARTS (a folder for the SVGs and results.json; default dist/bench-results/rollout).
 */
async function main(): Promise<void> {
  for (const file of [SAMPLE_MAIN, PLAIN_APP_MAIN, PEER_APP_MAIN]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build && npm run build:fixtures\` first`);
  }
  const pick = <T extends string>(name: string, all: readonly T[], fallback: readonly T[] = all): readonly T[] => {
    const raw = process.env[name];
    if (!raw) return fallback;
    const chosen = raw.split(',').map((s) => s.trim()) as T[];
    const unknown = chosen.filter((c) => !all.includes(c));
    if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')} (one of ${all.join(', ')})`);
    return chosen;
  };
  const scenarios = pick<ScenarioKind>('BENCH_SCENARIOS', SCENARIO_KINDS);
  const balancers = pick<BalancerKind>('BENCH_BALANCERS', BALANCER_KINDS);
  const apps = pick<RolloutAppKind>('BENCH_APPS', ROLLOUT_APP_KINDS);
  const adapters = pick<Adapter>('BENCH_ADAPTERS', ADAPTERS, ['express']);
  const loads = pick<'keep-alive' | 'close'>('BENCH_LOADS', ['keep-alive', 'close']);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  const exitBoundMs = Number(process.env.BENCH_EXIT_BOUND_MS ?? 20_000);
  const out = process.env.BENCH_CHARTS ?? join(ROOT, 'dist/bench-results/rollout');

  console.log(
    `rollout bench on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}, node ${process.version}; ${connections} connections (10 % GET /demo/slow 50-200 ms, 10 % POST /orders, ` +
      `the rest GET /orders; canary: ${QUOTE_SHARE * 100} % GET ${QUOTE_PATH} in place of GET /orders, every request with ` +
      `${USER_HEADER} of ${USERS.length} users); HAProxy checks every ${CHECK_INTERVAL_MS} ms, fall 2`,
  );
  const results: RunResult[] = [];
  for (const scenario of scenarios) {
    for (const balancer of balancers) {
      for (const loadName of loads) {
        const load: LoadProfile = { keepAlive: loadName === 'keep-alive', connections };
        for (const app of apps) {
          const skip = scenarioSkipReason(scenario, app);
          if (skip) {
            console.log(`${scenario} ${balancer} ${loadName} ${app}: skipped: ${skip}`);
            continue;
          }
          for (const adapter of adapters) {
            try {
              const result = await runRollout({ scenario, balancer, app, adapter, load, exitBoundMs });
              results.push(result);
              console.log(formatRunLine(result));
            } catch (error) {
              console.log(
                `${scenario} ${balancer} ${loadName} ${app}/${adapter}: run failed: ${error instanceof Error ? error.message.split('\n')[0] : error}`,
              );
            }
          }
        }
      }
    }
  }
  console.log(`\n${formatSummary(results)}`);
  console.log(`\n${formatTable(results)}`);
  const canaryTable = formatCanaryTable(results);
  if (canaryTable !== '') console.log(`\n${canaryTable}`);
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'results.json'),
    JSON.stringify(
      results.map(({ records: _records, ...rest }) => rest),
      null,
      1,
    ),
  );
  const written = await renderCharts(results, out);
  console.log(`\ncharts: ${written.join(', ')}`);
}

// Children run in process groups of their own; exiting through process.exit lets their 'exit'
// hooks kill them when the bench is interrupted.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
