import { request } from 'node:http';
import type { INestApplication, LoggerService } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import {
  attachLifecycle,
  LIFECYCLE_CLOCK,
  LifecycleModule,
  LifecycleService,
  LifecycleState,
  ManualClock,
  WarmupTask,
} from '@nest-rollout/lifecycle';
import type { HealthCheckDefinition } from './health.check';
import { HEALTH_CLOCK, HealthEvent, HealthFailureKind } from './health.constants';
import { HealthModule } from './health.module';
import type { HealthModuleOptions } from './health.options';
import { ManagementServer } from './management.server';
import { ReadinessService } from './readiness.service';

type Adapter = 'express' | 'fastify';
const ADAPTERS: readonly Adapter[] = ['express', 'fastify'];

interface LogRecord {
  readonly level: 'log' | 'warn' | 'error' | 'debug' | 'verbose' | 'fatal';
  readonly message: unknown;
  readonly context?: string;
}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

interface HealthTestApp {
  readonly app: INestApplication;
  readonly clock: ManualClock;
  readonly logs: LogRecord[];
  /** http://127.0.0.1:<app port> */
  readonly url: string;
  /** http://127.0.0.1:<management port>, when one is configured. */
  readonly managementUrl: string | undefined;
  get(url: string): Promise<Answer>;
  /** Log messages of one event name. */
  events(event: string): Record<string, unknown>[];
  close(): Promise<void>;
}

interface WarmUp {
  /** Shared by the lifecycle and the check scheduler; warm-up tasks may wait on it too. */
  readonly clock?: ManualClock;
  readonly tasks?: readonly WarmupTask[];
  /** How far the clock moves after listen for the warm-up tasks to finish. @default 0 */
  readonly durationMs?: number;
}

/**
 * The health module in a real application on the given adapter, listening on a loopback port, with
 * the lifecycle READY, both on one fake clock: specs move time, never wait for it.
 */
async function bootstrapHealthApp(adapter: Adapter, options: HealthModuleOptions, warmUp: WarmUp = {}): Promise<HealthTestApp> {
  const clock = warmUp.clock ?? new ManualClock();
  const logs: LogRecord[] = [];
  const record =
    (level: LogRecord['level']) =>
    (message: unknown, ...rest: unknown[]) => {
      const context = rest.find((r): r is string => typeof r === 'string');
      logs.push({ level, message, context });
    };
  const logger: LoggerService = {
    log: record('log'),
    warn: record('warn'),
    error: record('error'),
    debug: record('debug'),
    verbose: record('verbose'),
    fatal: record('fatal'),
  };
  const moduleRef = await Test.createTestingModule({
    imports: [LifecycleModule.forRoot({ minReadyDelayMs: 0, drainDelayMs: 0, exitOnShutdown: false }), HealthModule.forRoot(options)],
  })
    .overrideProvider(HEALTH_CLOCK)
    .useValue(clock)
    .overrideProvider(LIFECYCLE_CLOCK)
    .useValue(clock)
    .compile();
  const app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger });
  const lifecycle = app.get(LifecycleService);
  for (const task of warmUp.tasks ?? []) lifecycle.registerWarmupTask(task);
  attachLifecycle(app);
  await app.listen(0, '127.0.0.1');
  // Warm-up starts once the server listens; on the fake clock it ends when the time it waits for has passed.
  await clock.advance(warmUp.durationMs ?? 0);
  if (lifecycle.state !== LifecycleState.READY) {
    throw new Error(`lifecycle still ${lifecycle.state} ${warmUp.durationMs ?? 0} ms (fake clock) after listen`);
  }
  const port = (app.getHttpServer().address() as { port: number }).port;
  const management = app.get(ManagementServer).address();
  return {
    app,
    clock,
    logs,
    url: `http://127.0.0.1:${port}`,
    managementUrl: management ? `http://127.0.0.1:${management.port}` : undefined,
    get,
    events: (event) =>
      logs
        .map((l) => l.message)
        .filter((m): m is Record<string, unknown> => typeof m === 'object' && m !== null && (m as { event?: unknown }).event === event),
    close: () => app.close(),
  };
}

/** One GET on a fresh connection. */
function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // Not JSON: the spec looks at `text`.
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.setTimeout(2000, () => req.destroy(new Error(`GET ${url}: no answer within 2000 ms`)));
    req.on('error', reject);
    req.end();
  });
}

type Mode = 'up' | 'down' | 'hang';

function dependency(name: string, extra: Partial<HealthCheckDefinition> = {}) {
  const state = { mode: 'up' as Mode, runs: 0 };
  const check: HealthCheckDefinition = {
    name,
    dependency: 'postgres',
    ...extra,
    run: () => {
      state.runs += 1;
      if (state.mode === 'up') return { version: '15.4' };
      if (state.mode === 'down') {
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432 (postgres://orders:hunter22@127.0.0.1:5432/orders)'), {
          code: 'ECONNREFUSED',
        });
      }
      return new Promise<void>(() => undefined);
    },
  };
  return { check, state };
}

describe.each(ADAPTERS)('health probes over HTTP (%s)', (adapter) => {
  let target: HealthTestApp | undefined;
  afterEach(async () => {
    await target?.close();
    target = undefined;
  });

  it('answers ready 200 with the lifecycle and every check in terminus’ format', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], intervalMs: 1000, timeoutMs: 200 });
    const ready = await target.get(`${target.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      status: 'ok',
      info: {
        lifecycle: { status: 'up', state: 'READY' },
        database: { status: 'up', dependency: 'postgres', critical: true, version: '15.4', checkedAt: expect.any(String), durationMs: 0 },
      },
      error: {},
      details: expect.objectContaining({ lifecycle: { status: 'up', state: 'READY' } }),
    });
  });

  it('turns ready 503 naming the dependency and the kind of failure, without the secret, while live and startup stay 200', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], intervalMs: 1000, timeoutMs: 200, redact: ['hunter22'] });
    db.state.mode = 'down';
    await target.clock.advance(1000);
    const ready = await target.get(`${target.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('error');
    expect((ready.body.error as Record<string, unknown>).database).toMatchObject({
      status: 'down',
      dependency: 'postgres',
      critical: true,
      kind: HealthFailureKind.CONNECTION_REFUSED,
    });
    expect(ready.text).not.toContain('hunter22');
    expect(JSON.stringify(target.logs)).not.toContain('hunter22');
    expect((await target.get(`${target.url}/health/live`)).status).toBe(200);
    expect((await target.get(`${target.url}/health/startup`)).status).toBe(200);
  });

  it('reports a non-critical failure as degraded and stays ready', async () => {
    const db = dependency('database');
    const search = dependency('search', { critical: false, dependency: 'http' });
    target = await bootstrapHealthApp(adapter, { readiness: [db.check, search.check], intervalMs: 1000, timeoutMs: 200 });
    search.state.mode = 'down';
    await target.clock.advance(1000);
    const ready = await target.get(`${target.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('degraded');
    expect((ready.body.details as Record<string, unknown>).search).toMatchObject({
      status: 'degraded',
      critical: false,
      kind: HealthFailureKind.CONNECTION_REFUSED,
    });
    expect(target.app.get(ReadinessService).isReady()).toBe(true);
  });

  it('answers at once while a check hangs, and reports it down once its timeout passes', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], intervalMs: 1000, timeoutMs: 300 });
    db.state.mode = 'hang';
    await target.clock.advance(1000);
    const whileHanging = await target.get(`${target.url}/health/ready`);
    expect(whileHanging.status).toBe(200);
    await target.clock.advance(300);
    const afterTimeout = await target.get(`${target.url}/health/ready`);
    expect(afterTimeout.status).toBe(503);
    expect((afterTimeout.body.error as Record<string, unknown>).database).toMatchObject({ kind: HealthFailureKind.TIMEOUT });
  });

  it('checks again at READY what was down during warm-up, without waiting an interval', async () => {
    const cache = dependency('cache', { dependency: 'redis' });
    const clock = new ManualClock();
    // The client connects in a warm-up task, 20 ms after the first run of the check.
    cache.state.mode = 'down';
    const connect = async () => {
      await clock.sleep(20);
      cache.state.mode = 'up';
    };
    target = await bootstrapHealthApp(
      adapter,
      { readiness: [cache.check], intervalMs: 60_000, timeoutMs: 200 },
      { clock, tasks: [{ name: 'cache.connect', run: connect }], durationMs: 20 },
    );
    expect(cache.state.runs).toBe(2);
    expect((await target.get(`${target.url}/health/ready`)).status).toBe(200);
  });

  it('runs no check for a probe, however many arrive at once', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], intervalMs: 1000, timeoutMs: 200 });
    const runsBefore = db.state.runs;
    const answers = await Promise.all(Array.from({ length: 200 }, () => get(`${target!.url}/health/ready`)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(db.state.runs).toBe(runsBefore);
  });

  it('logs a readiness flip once and publishes it on changes$, however many probes see it', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], intervalMs: 1000, timeoutMs: 200 });
    const changes: boolean[] = [];
    const subscription = target.app.get(ReadinessService).changes$.subscribe((c) => changes.push(c.ready));
    db.state.mode = 'down';
    await target.clock.advance(1000);
    for (let i = 0; i < 20; i++) await target.get(`${target.url}/health/ready`);
    await target.clock.advance(5000);
    db.state.mode = 'up';
    await target.clock.advance(1000);
    subscription.unsubscribe();
    expect(changes).toEqual([false, true]);
    const flips = target.events(HealthEvent.READINESS_CHANGED).map((e) => e.ready);
    // The first flip is the boot's (lifecycle READY), then the dependency's down and up.
    expect(flips).toEqual([true, false, true]);
    expect(target.events(HealthEvent.CHECK_CHANGED).map((e) => `${e.from}->${e.to}`)).toEqual(['pending->up', 'up->down', 'down->up']);
  });

  it('serves the probes and extra routes on the management port, and answers 404 for them on the app port', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, {
      readiness: [db.check],
      management: { port: 0, host: '127.0.0.1', routes: [{ path: '/metrics', handle: (_req, res) => res.end('up 1\n') }] },
    });
    const management = target.managementUrl!;
    for (const probe of ['live', 'ready', 'startup']) {
      expect((await target.get(`${management}/health/${probe}`)).status).toBe(200);
      expect((await target.get(`${target.url}/health/${probe}`)).status).toBe(404);
    }
    expect((await target.get(`${management}/health/ready`)).body).toMatchObject({ status: 'ok', info: { database: { status: 'up' } } });
    expect((await target.get(`${management}/metrics`)).text).toBe('up 1\n');
    expect((await target.get(`${management}/orders`)).status).toBe(404);
    target.app.get(ManagementServer).addRoute({ path: '/info', handle: (_req, res) => res.end('sample') });
    expect((await target.get(`${management}/info`)).text).toBe('sample');
  });

  it('serves the probes on both ports with alsoOnAppPort', async () => {
    target = await bootstrapHealthApp(adapter, { management: { port: 0, host: '127.0.0.1', alsoOnAppPort: true } });
    expect((await target.get(`${target.managementUrl}/health/ready`)).status).toBe(200);
    expect((await target.get(`${target.url}/health/ready`)).status).toBe(200);
  });

  it('answers the same body on the management port as on the app port', async () => {
    const db = dependency('database');
    target = await bootstrapHealthApp(adapter, { readiness: [db.check], management: { port: 0, host: '127.0.0.1', alsoOnAppPort: true } });
    db.state.mode = 'down';
    await target.clock.advance(5000);
    const [onApp, onManagement] = await Promise.all([get(`${target.url}/health/ready`), get(`${target.managementUrl}/health/ready`)]);
    expect(onManagement.status).toBe(503);
    expect(onManagement.body).toEqual(onApp.body);
  });
});
