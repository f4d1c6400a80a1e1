import { existsSync } from 'node:fs';
import { LifecycleEvent } from '@nest-rollout/lifecycle';
import { ADAPTERS, ensureFixturesBuilt, SAMPLE_MAIN } from './support/apps';
import { logEvents } from './support/process';
import { failureKinds, formatRolloutTable, RolloutResult, runRolloutScenario } from './support/rollout';

/**
 * The rollout proof on one machine: two instances of the built sample behind a real HAProxy on
 * loopback, 32 keep-alive connections of steady load through it, and one instance stopped with
 * SIGTERM halfway, as a rolling update does. Every request is counted; none may fail.
 *
 * DRAIN_DELAY_MS is 2000: HAProxy checks readiness every 200 ms and needs two failed checks
 * (the second one 100 ms later) to take an instance out, about 300-400 ms after readiness turns
 * 503. The drain delay must outlast that with a wide margin, because the listener closes when it
 * ends, and a request routed there after that point would be refused: 2000 ms is five times the
 * detection time, enough for a CI machine whose two cores also run the load and HAProxy.
 *
 * The same scenario against a plain Nest app (test/fixtures/plain-app.ts, `enableShutdownHooks()`
 * only) is run as the baseline and printed, not asserted: how much it loses depends on timing.
 * Run: `npm run build && npx jest --selectProjects e2e --runInBand -- test/rollout.e2e-spec.ts` (the `--`
 * matters: `--selectProjects` takes every word after it as a project name).
 */
const DRAIN_DELAY_MS = 2000;
const SCENARIO_TIMEOUT_MS = 40_000;

describe('rolling restart behind HAProxy', () => {
  const table: RolloutResult[] = [];

  beforeAll(() => {
    // The sample comes from `npm run build`; the baseline fixture is compiled here when stale.
    if (!existsSync(SAMPLE_MAIN)) throw new Error(`${SAMPLE_MAIN} is missing: run \`npm run build\` first`);
    ensureFixturesBuilt();
  }, 60_000);

  afterAll(() => {
    if (table.length > 0) console.log(`rollout: two instances behind HAProxy, one stopped under load\n${formatRolloutTable(table)}`);
  });

  describe.each(ADAPTERS)('on %s', (adapter) => {
    it(
      'loses no request when one of two instances is stopped under load behind HAProxy',
      async () => {
        const result = await runRolloutScenario({ app: 'nest-rollout', adapter, drainDelayMs: DRAIN_DELAY_MS });
        table.push(result);
        const { load, stopped } = result;
        if (load.failed > 0 || stopped.exit?.code !== 0) console.log(diagnostics(result));

        expect({ failed: load.failed, kinds: failureKinds(load.records) }).toEqual({ failed: 0, kinds: '-' });
        expect(load.sent).toBeGreaterThan(0);
        expect(stopped.exit).toMatchObject({ code: 0, signal: null });

        // It really served before the SIGTERM, HAProxy took it out while it still ran (the drain
        // delay outlasted the health checks), and nothing reached it after that.
        expect(stopped.servedBeforeSignal).toBeGreaterThan(0);
        expect(stopped.downAt).toBeDefined();
        expect(stopped.downAt!).toBeLessThan(stopped.exit!.at);
        expect(stopped.servedAfterDown).toBe(0);
        expect(result.survivorServedAfterExit).toBeGreaterThan(0);

        // Its own account agrees: drained, stopped, nothing cut.
        const events = logEvents(stopped.stdout);
        const states = events.filter((e) => e.event === LifecycleEvent.STATE_CHANGED).map((e) => `${e.from}->${e.to}`);
        expect(states).toEqual(expect.arrayContaining(['READY->DRAINING', 'DRAINING->STOPPING', 'STOPPING->STOPPED']));
        expect(events.filter((e) => e.event === LifecycleEvent.REQUESTS_CUT)).toEqual([]);
      },
      SCENARIO_TIMEOUT_MS,
    );
  });

  it(
    'measures what a plain Nest app with enableShutdownHooks loses in the same rollout (baseline, printed, not asserted)',
    async () => {
      for (const adapter of ADAPTERS) {
        const result = await runRolloutScenario({ app: 'plain:default', adapter });
        table.push(result);
        // Only that the scenario ran: the load went through and the instance served before its SIGTERM.
        expect(result.load.ok).toBeGreaterThan(0);
        expect(result.stopped.servedBeforeSignal).toBeGreaterThan(0);
      }
    },
    2 * SCENARIO_TIMEOUT_MS,
  );
});

function diagnostics(result: RolloutResult): string {
  const { stopped } = result;
  const at = (t: number | undefined) => (t === undefined ? '-' : `+${t - stopped.signalledAt} ms`);
  return [
    `${result.app}/${result.adapter}: ${result.load.failed} of ${result.load.sent} failed (${failureKinds(result.load.records)})`,
    `SIGTERM to ${stopped.name}; HAProxy saw it DOWN at ${at(stopped.downAt)}; exit ${JSON.stringify(stopped.exit)} at ${at(stopped.exit?.at)}`,
    'first failures (time from SIGTERM):',
    ...result.failures.map((f) => `  ${at(f.startedAt)} ${f.path} -> ${f.status ?? f.error} (server ${f.server ?? '-'})`),
    'haproxy log:',
    ...result.haproxyLog.slice(0, 40).map((l) => `  ${l}`),
    `${stopped.name} output (last 30 lines):`,
    ...stopped.stdout.slice(-30).map((l) => `  ${l}`),
  ].join('\n');
}
