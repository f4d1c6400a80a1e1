import { Agent, request } from 'node:http';
import { ADAPTERS, AppInstance, startSample } from './support/apps';
import { httpGet } from './support/http';
import { PostgresInstance, startPostgres } from './support/postgres';
import { delay, logEvents } from './support/process';
import { RedisInstance, startRedis } from './support/redis';

/**
 * The built sample on PostgreSQL and Redis, both real and private to this file, while they stop,
 * hang and come back: readiness follows within the check interval plus its timeout, liveness never
 * moves, a probe answers fast even while a dependency hangs, and a probe storm never reaches them.
 */
const INTERVAL_MS = 500;
const TIMEOUT_MS = 300;
/** Scheduling noise on a busy 2-core machine; the bound still proves the probe follows the checks. */
const SLACK_MS = 1000;
/** A probe must answer within this while a dependency hangs (STYLE.md's generous bound). */
const PROBE_BOUND_MS = 2000;

interface Observation {
  readonly elapsedMs: number;
  readonly slowestProbeMs: number;
  readonly liveStatuses: ReadonlySet<number>;
  readonly body: Record<string, unknown>;
}

/** Polls ready (and live) until ready answers `status`; every probe is timed and bounded. */
async function observeUntil(sample: AppInstance, status: number, timeoutMs: number): Promise<Observation> {
  const started = Date.now();
  let slowestProbeMs = 0;
  const liveStatuses = new Set<number>();
  for (;;) {
    const probeStarted = Date.now();
    const ready = await httpGet(`${sample.url}/health/ready`, PROBE_BOUND_MS);
    slowestProbeMs = Math.max(slowestProbeMs, Date.now() - probeStarted);
    liveStatuses.add((await httpGet(`${sample.url}/health/live`, PROBE_BOUND_MS)).status);
    if (ready.status === status) {
      return { elapsedMs: Date.now() - started, slowestProbeMs, liveStatuses, body: JSON.parse(ready.body) as Record<string, unknown> };
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `/health/ready did not answer ${status} within ${timeoutMs} ms (last ${ready.status} ${ready.body})\n${sample.process.describe()}`,
      );
    }
    await delay(25);
  }
}

/** The sample's structured log events of one name (pino prints one JSON object per line). */

function readinessFlips(sample: AppInstance): boolean[] {
  return logEvents(sample.process.stdout, 'health.readiness_changed').map((e) => e.ready as boolean);
}

describe('readiness on real PostgreSQL and Redis', () => {
  let postgres: PostgresInstance | undefined;
  let redis: RedisInstance | undefined;

  beforeAll(async () => {
    [postgres, redis] = await Promise.all([startPostgres(), startRedis()]);
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled([postgres?.destroy(), redis?.destroy()]);
  }, 60_000);

  describe.each(ADAPTERS)('the sample on %s', (adapter) => {
    let sample: AppInstance | undefined;

    beforeAll(async () => {
      sample = await startSample({
        name: `sample-deps-${adapter}`,
        adapter,
        env: {
          DATABASE_URL: postgres!.url,
          REDIS_URL: redis!.url,
          HEALTH_INTERVAL_MS: String(INTERVAL_MS),
          HEALTH_TIMEOUT_MS: String(TIMEOUT_MS),
          DRAIN_DELAY_MS: '0',
        },
      });
    }, 30_000);

    afterAll(async () => {
      // Whatever a failed test left behind, the next one finds its dependencies running.
      postgres?.resume();
      redis?.resume();
      await sample?.stop();
    }, 30_000);

    it('keeps its orders in PostgreSQL and reports both dependencies up', async () => {
      const created = await fetch(`${sample!.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ item: `book-${adapter}`, quantity: 2 }),
      });
      expect(created.status).toBe(201);
      const order = (await created.json()) as { id: string };
      const rows = await postgres!.query<{ item: string }>('SELECT item FROM orders WHERE id = $1', [Number(order.id)]);
      expect(rows).toEqual([{ item: `book-${adapter}` }]);
      // Read twice: the second answer may come from the cache, and must be the same.
      for (let i = 0; i < 2; i++) expect(await (await fetch(`${sample!.url}/orders/${order.id}`)).json()).toMatchObject({ id: order.id });
      const ready = JSON.parse((await httpGet(`${sample!.url}/health/ready`)).body) as { info: Record<string, unknown> };
      expect(ready.info).toMatchObject({
        lifecycle: { status: 'up', state: 'READY' },
        database: { status: 'up', dependency: 'postgres', critical: true },
        cache: { status: 'up', dependency: 'redis', critical: true },
      });
    });

    it('answers 1,000 concurrent probes with at most one Redis PING per check interval', async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 250 });
      try {
        const pingsBefore = await redis!.commandCalls('ping');
        const started = Date.now();
        const statuses = await Promise.all(
          Array.from(
            { length: 1000 },
            () =>
              new Promise<number>((resolve, reject) => {
                const req = request(`${sample!.url}/health/ready`, { agent }, (res) => {
                  res.resume();
                  res.on('end', () => resolve(res.statusCode ?? 0));
                });
                req.on('error', reject);
                req.end();
              }),
          ),
        );
        const windowMs = Date.now() - started;
        const pings = (await redis!.commandCalls('ping')) - pingsBefore;
        // Every probe is answered from the cached results: 200, or 503 only while a check is down.
        expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
        const unready = statuses.filter((s) => s === 503).length;
        if (unready > 0) {
          // A storm that starves the event loop past the 300 ms check timeout (a busy 2-core
          // machine) turns a check down, and readiness with it: correct, and logged. A 503 without
          // such a logged failure would mean the probes themselves failed.
          await delay(500);
          const downs = logEvents(sample!.process.stdout, 'health.check_changed').filter(
            (e) => e.to === 'down' && Number(e.time) >= started,
          );
          expect(downs).not.toEqual([]);
        }
        // One check run per interval, plus one for a run already started when counting began.
        expect(pings).toBeLessThanOrEqual(Math.ceil(windowMs / INTERVAL_MS) + 1);
      } finally {
        agent.destroy();
      }
    }, 30_000);

    it('turns unready within interval + timeout when Redis stops, keeps live 200, and recovers when it restarts', async () => {
      const flipsBefore = readinessFlips(sample!).length;
      await redis!.stop();
      const down = await observeUntil(sample!, 503, 10_000);
      expect(down.elapsedMs).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
      expect(down.slowestProbeMs).toBeLessThan(PROBE_BOUND_MS);
      expect([...down.liveStatuses]).toEqual([200]);
      expect((down.body.error as Record<string, unknown>).cache).toMatchObject({
        status: 'down',
        dependency: 'redis',
        kind: expect.stringMatching(/^(not_connected|connection_refused|connection_reset)$/),
      });
      expect(down.body.info).toMatchObject({ database: { status: 'up' } });

      await redis!.start();
      const up = await observeUntil(sample!, 200, 15_000);
      expect([...up.liveStatuses]).toEqual([200]);
      // Logged once per change, not once per probe (lines are flushed in batches, so wait for them).
      const deadline = Date.now() + 3000;
      while (readinessFlips(sample!).length < flipsBefore + 2 && Date.now() < deadline) await delay(50);
      expect(readinessFlips(sample!).slice(flipsBefore)).toEqual([false, true]);
    }, 40_000);

    it('reports a hung Redis down once the check times out, answering every probe fast meanwhile, and recovers when it resumes', async () => {
      redis!.pause();
      try {
        const down = await observeUntil(sample!, 503, 10_000);
        expect(down.elapsedMs).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
        expect(down.slowestProbeMs).toBeLessThan(PROBE_BOUND_MS);
        expect([...down.liveStatuses]).toEqual([200]);
        expect((down.body.error as Record<string, unknown>).cache).toMatchObject({ dependency: 'redis', kind: 'timeout' });
        // Still hung a while later: the probe keeps answering at once.
        const stillDown = await observeUntil(sample!, 503, 1000);
        expect(stillDown.slowestProbeMs).toBeLessThan(PROBE_BOUND_MS);
      } finally {
        redis!.resume();
      }
      await observeUntil(sample!, 200, 15_000);
    }, 40_000);

    it('turns unready within interval + timeout when PostgreSQL stops, keeps live 200, and recovers when it restarts', async () => {
      await postgres!.stop();
      const down = await observeUntil(sample!, 503, 10_000);
      expect(down.elapsedMs).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
      expect(down.slowestProbeMs).toBeLessThan(PROBE_BOUND_MS);
      expect([...down.liveStatuses]).toEqual([200]);
      expect((down.body.error as Record<string, unknown>).database).toMatchObject({
        status: 'down',
        dependency: 'postgres',
        kind: expect.stringMatching(/^(connection_refused|connection_reset|unavailable|not_connected)$/),
      });
      await postgres!.start();
      await observeUntil(sample!, 200, 15_000);
    }, 40_000);

    it('reports a hung PostgreSQL down once the check times out, answering every probe fast meanwhile, and recovers when it resumes', async () => {
      postgres!.pause();
      try {
        const down = await observeUntil(sample!, 503, 10_000);
        expect(down.elapsedMs).toBeLessThan(INTERVAL_MS + TIMEOUT_MS + SLACK_MS);
        expect(down.slowestProbeMs).toBeLessThan(PROBE_BOUND_MS);
        expect([...down.liveStatuses]).toEqual([200]);
        expect((down.body.error as Record<string, unknown>).database).toMatchObject({ dependency: 'postgres', kind: 'timeout' });
      } finally {
        postgres!.resume();
      }
      await observeUntil(sample!, 200, 15_000);
    }, 40_000);

    it('never shows a password in a probe body or a log line', async () => {
      const output = [...sample!.process.stdout, ...sample!.process.stderr].join('\n');
      const body = (await httpGet(`${sample!.url}/health/ready`)).body;
      for (const secret of [postgres!.password, redis!.password]) {
        expect(output).not.toContain(secret);
        expect(body).not.toContain(secret);
      }
      // The outages above were logged, with the dependency named.
      expect(logEvents(sample!.process.stdout, 'health.check_changed').map((e) => `${e.check}:${e.to}`)).toEqual(
        expect.arrayContaining(['cache:down', 'cache:up', 'database:down', 'database:up']),
      );
    });
  });
});
