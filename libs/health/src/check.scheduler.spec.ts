import { ManualClock } from '@nest-rollout/lifecycle';
import { CheckScheduler } from './check.scheduler';
import type { HealthCheckContext, HealthCheckDefinition, HealthCheckReport } from './health.check';
import { HealthFailureKind } from './health.constants';
import { HealthModuleOptions, resolveHealthOptions } from './health.options';

type Mode = 'up' | 'down' | 'hang';

/** A dependency whose answer the spec sets, counting the runs that reached it. */
function dependency(name = 'db', extra: Partial<HealthCheckDefinition> = {}) {
  let mode: Mode = 'up';
  const signals: AbortSignal[] = [];
  const lateAnswers: Array<() => void> = [];
  const check: HealthCheckDefinition = {
    name,
    dependency: 'postgres',
    ...extra,
    run: ({ signal }: HealthCheckContext) => {
      signals.push(signal);
      if (mode === 'up') return { version: '15' };
      if (mode === 'down') throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      return new Promise<void>((resolve) => lateAnswers.push(resolve));
    },
  };
  return {
    check,
    get runs() {
      return signals.length;
    },
    signals,
    lateAnswers,
    set(next: Mode) {
      mode = next;
    },
  };
}

function setUp(checks: HealthCheckDefinition[], options: HealthModuleOptions = {}, secrets: string[] = []) {
  const clock = new ManualClock();
  const changes: Array<{ report: HealthCheckReport; previous: string }> = [];
  const resolved = resolveHealthOptions({ intervalMs: 1000, timeoutMs: 300, ...options, readiness: checks });
  const scheduler = new CheckScheduler(resolved.readiness, clock, {
    context: (check, signal) => ({
      signal,
      timeoutMs: check.timeoutMs,
      get: () => {
        throw new Error('no providers in this spec');
      },
      terminus: () => Promise.reject(new Error('no terminus in this spec')),
    }),
    onStatusChange: (report, previous) => changes.push({ report, previous }),
    secrets,
  });
  const report = (name = 'db') => scheduler.reports().find((r) => r.name === name)!;
  return { clock, scheduler, changes, report };
}

describe('CheckScheduler', () => {
  it('runs each check at once, then once per interval, and never because reports are read', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check]);
    scheduler.start();
    await clock.advance(0);
    expect(db.runs).toBe(1);
    for (let i = 0; i < 1000; i++) scheduler.reports();
    expect(db.runs).toBe(1);
    await clock.advance(999);
    expect(db.runs).toBe(1);
    await clock.advance(1);
    expect(db.runs).toBe(2);
    await clock.advance(10_000);
    expect(db.runs).toBe(12);
    expect(report()).toMatchObject({ status: 'up', observed: 'up', dependency: 'postgres', details: { version: '15' } });
    scheduler.stop();
  });

  it('reports a hung check down with kind timeout once its timeout passes, and aborts its signal', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check]);
    scheduler.start();
    await clock.advance(0);
    db.set('hang');
    await clock.advance(1000);
    expect(db.runs).toBe(2);
    await clock.advance(299);
    expect(report().status).toBe('up');
    expect(db.signals[1].aborted).toBe(false);
    await clock.advance(1);
    expect(report()).toMatchObject({
      status: 'down',
      observed: 'down',
      kind: HealthFailureKind.TIMEOUT,
      message: 'no answer within 300 ms',
    });
    expect(db.signals[1].aborted).toBe(true);
    scheduler.stop();
  });

  it('drops the answer of a run that already timed out', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check]);
    db.set('hang');
    scheduler.start();
    await clock.advance(300);
    expect(report().kind).toBe(HealthFailureKind.TIMEOUT);
    db.lateAnswers[0]();
    await clock.advance(0);
    expect(report()).toMatchObject({ status: 'down', kind: HealthFailureKind.TIMEOUT });
    scheduler.stop();
  });

  it('never runs a check twice at a time: a run longer than the interval delays the next', async () => {
    const db = dependency('db', { timeoutMs: 2500 });
    const { clock, scheduler } = setUp([db.check], { intervalMs: 1000 });
    db.set('hang');
    scheduler.start();
    await clock.advance(2499);
    expect(db.runs).toBe(1);
    await clock.advance(1);
    // Timed out after 2500 ms, past its interval: the next run starts at once.
    expect(db.runs).toBe(2);
    scheduler.stop();
  });

  it('counts a result older than maxAgeMs as down (stale), as when the event loop stalls', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check], { maxAgeMs: 5000 });
    scheduler.start();
    await clock.advance(0);
    clock.jump(5000);
    expect(report().status).toBe('up');
    clock.jump(1);
    expect(report()).toMatchObject({ status: 'down', observed: 'up', kind: HealthFailureKind.STALE });
    scheduler.stop();
  });

  it('reports a check pending (down) until its first run ends', async () => {
    const db = dependency();
    db.set('hang');
    const { clock, scheduler, report } = setUp([db.check]);
    scheduler.start();
    expect(report()).toMatchObject({ status: 'down', observed: 'pending', kind: HealthFailureKind.PENDING });
    await clock.advance(300);
    expect(report().observed).toBe('down');
    scheduler.stop();
  });

  it('keeps an up check up until failureThreshold consecutive failures', async () => {
    const db = dependency();
    const { clock, scheduler, report, changes } = setUp([db.check], { failureThreshold: 3 });
    scheduler.start();
    await clock.advance(0);
    db.set('down');
    await clock.advance(1000);
    expect(report()).toMatchObject({ status: 'up', observed: 'down', consecutiveFailures: 1, kind: HealthFailureKind.CONNECTION_REFUSED });
    db.set('up');
    await clock.advance(1000);
    db.set('down');
    await clock.advance(2000);
    expect(report()).toMatchObject({ status: 'up', consecutiveFailures: 2 });
    await clock.advance(1000);
    expect(report()).toMatchObject({ status: 'down', consecutiveFailures: 3 });
    expect(changes.map((c) => `${c.previous}->${c.report.status}`)).toEqual(['pending->up', 'up->down']);
    scheduler.stop();
  });

  it('needs successThreshold consecutive successes before a down check counts as up again', async () => {
    const db = dependency();
    db.set('down');
    const { clock, scheduler, report } = setUp([db.check], { successThreshold: 2 });
    scheduler.start();
    await clock.advance(0);
    expect(report().status).toBe('down');
    db.set('up');
    await clock.advance(1000);
    expect(report()).toMatchObject({ status: 'down', observed: 'up', kind: HealthFailureKind.CONNECTION_REFUSED });
    await clock.advance(1000);
    expect(report()).toMatchObject({ status: 'up', observed: 'up' });
    expect(report().kind).toBeUndefined();
    scheduler.stop();
  });

  it('takes the first result at once, whatever the thresholds', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check], { failureThreshold: 5, successThreshold: 5 });
    scheduler.start();
    await clock.advance(0);
    expect(report().status).toBe('up');
    scheduler.stop();
  });

  it('tells of a change once, however many runs confirm it', async () => {
    const db = dependency();
    const { clock, scheduler, changes } = setUp([db.check]);
    scheduler.start();
    await clock.advance(0);
    db.set('down');
    await clock.advance(10_000);
    db.set('up');
    await clock.advance(10_000);
    expect(changes.map((c) => c.report.status)).toEqual(['up', 'down', 'up']);
    scheduler.stop();
  });

  it('classifies failures and masks secrets in their messages', async () => {
    const leaky: HealthCheckDefinition = {
      name: 'db',
      run: () => {
        throw Object.assign(new Error('password authentication failed: postgres://orders:hunter22@db:5432/orders?sslkey=abc'), {
          code: '28P01',
        });
      },
    };
    const { clock, scheduler, report } = setUp([leaky], {}, ['hunter22']);
    scheduler.start();
    await clock.advance(0);
    const failed = report();
    expect(failed.kind).toBe(HealthFailureKind.AUTH_FAILED);
    expect(failed.message).not.toContain('hunter22');
    expect(failed.message).not.toContain('sslkey');
    expect(failed.message).toContain('postgres://***@db:5432/orders');
    scheduler.stop();
  });

  it('reports a check that throws synchronously as down', async () => {
    const { clock, scheduler, report } = setUp([
      {
        name: 'db',
        run: () => {
          throw new TypeError('pool.connect is not a function');
        },
      },
    ]);
    scheduler.start();
    await clock.advance(0);
    expect(report()).toMatchObject({ status: 'down', kind: HealthFailureKind.ERROR, message: 'pool.connect is not a function' });
    scheduler.stop();
  });

  it('resolves the first round once every check has a result', async () => {
    const fast = dependency('fast');
    const slow = dependency('slow');
    slow.set('hang');
    const { clock, scheduler } = setUp([fast.check, slow.check]);
    let done = false;
    void scheduler.firstRound.then(() => (done = true));
    scheduler.start();
    await clock.advance(299);
    expect(done).toBe(false);
    await clock.advance(1);
    expect(done).toBe(true);
    scheduler.stop();
  });

  it('runs each check on its own interval and timeout', async () => {
    const often = dependency('often', { intervalMs: 100 });
    const rarely = dependency('rarely', { intervalMs: 1000 });
    const { clock, scheduler } = setUp([often.check, rarely.check]);
    scheduler.start();
    await clock.advance(1000);
    expect(often.runs).toBe(11);
    expect(rarely.runs).toBe(2);
    scheduler.stop();
  });

  it('refreshes the selected checks at once and starts their interval over', async () => {
    const db = dependency('db');
    const cache = dependency('cache');
    cache.set('down');
    const { clock, scheduler, report } = setUp([db.check, cache.check]);
    scheduler.start();
    await clock.advance(400);
    cache.set('up');
    scheduler.refresh((r) => r.status !== 'up');
    await clock.advance(0);
    expect([db.runs, cache.runs]).toEqual([1, 2]);
    expect(report('cache').status).toBe('up');
    await clock.advance(600);
    expect([db.runs, cache.runs]).toEqual([2, 2]);
    await clock.advance(400);
    expect([db.runs, cache.runs]).toEqual([2, 3]);
    scheduler.stop();
  });

  it('does not refresh a check whose run is in flight', async () => {
    const db = dependency();
    db.set('hang');
    const { clock, scheduler } = setUp([db.check]);
    scheduler.start();
    scheduler.refresh(() => true);
    await clock.advance(0);
    expect(db.runs).toBe(1);
    scheduler.stop();
  });

  it('stops: no timer left, the run in flight aborted, its answer ignored', async () => {
    const db = dependency();
    const { clock, scheduler, report } = setUp([db.check]);
    scheduler.start();
    await clock.advance(0);
    const firstResultAt = clock.now();
    db.set('hang');
    await clock.advance(1000);
    scheduler.stop();
    expect(db.signals[1].aborted).toBe(true);
    expect(clock.pendingTimers().length).toBe(0);
    db.lateAnswers[0]();
    await clock.advance(5000);
    expect(db.runs).toBe(2);
    expect(report().checkedAt).toBe(firstResultAt);
  });
});
