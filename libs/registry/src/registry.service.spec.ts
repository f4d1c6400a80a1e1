import { hostname } from 'node:os';
import { Logger } from '@nestjs/common';
import { LifecycleState, ManualClock, settle } from '@nest-rollout/lifecycle';
import { RegistryEvent } from './registry.constants';
import { RegistryPermissionError } from './registry.errors';
import { RegistryModuleOptions, resolveRegistryOptions } from './registry.options';
import { RegistryService } from './registry.service';
import { RegistryStats } from './registry.stats';
import { RegistrationState } from './registry.types';
import { FakeDriver, hang } from './testing/fake-driver';
import { FakeLifecycle } from './testing/fake-lifecycle';

interface Setup {
  service: RegistryService;
  driver: FakeDriver;
  clock: ManualClock;
  lifecycle: FakeLifecycle;
  stats: RegistryStats;
  events: Record<string, unknown>[];
}

function setup(options: RegistryModuleOptions = {}, driver = new FakeDriver()): Setup {
  const resolved = resolveRegistryOptions({
    driver: 'consul',
    service: 'orders',
    address: '10.0.0.7',
    port: 8080,
    tags: ['green'],
    retry: { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0.5 },
    ...options,
  });
  const clock = new ManualClock();
  const lifecycle = new FakeLifecycle();
  const stats = new RegistryStats();
  // random() = 0: no jitter, so the delays are the exponential schedule itself.
  const service = new RegistryService(resolved, lifecycle.asService(), driver, clock, () => 0, stats);
  service.onModuleInit();
  return { service, driver, clock, lifecycle, stats, events: [] };
}

const logged: Record<string, unknown>[] = [];
beforeEach(() => {
  logged.length = 0;
  for (const level of ['log', 'warn', 'error'] as const) {
    jest.spyOn(Logger.prototype, level).mockImplementation((message: unknown, ..._rest: unknown[]): void => {
      logged.push(message as Record<string, unknown>);
    });
  }
});
afterEach(() => jest.restoreAllMocks());
const events = (name: string) => logged.filter((m) => m?.event === name);

describe('RegistryService', () => {
  it('registers nothing before READY, then registers once with tags and version, colour and track in meta', async () => {
    const { driver, clock, lifecycle, service } = setup({ track: 'canary', meta: { zone: 'a' } });
    lifecycle.moveTo(LifecycleState.WARMING_UP);
    await clock.advance(60_000);
    expect(driver.calls).toEqual([]);
    expect(service.state).toBe(RegistrationState.WAITING_FOR_READY);

    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    expect(driver.ops('register')).toBe(1);
    expect(service.state).toBe(RegistrationState.REGISTERED);
    expect(service.registration).toEqual({
      id: `orders-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-8080`,
      name: 'orders',
      address: '10.0.0.7',
      port: 8080,
      tags: ['green'],
      meta: { zone: 'a', version: '1.2.3', color: 'blue', track: 'canary' },
    });
    expect(events(RegistryEvent.REGISTERED)).toEqual([
      expect.objectContaining({ service: 'orders', attempts: 1, color: 'blue', version: '1.2.3' }),
    ]);
  });

  it('retries with exponential backoff while the registry is down, counting and logging each failure', async () => {
    const driver = new FakeDriver();
    let down = true;
    const register = driver.register;
    driver.register = async (r, s) => {
      if (down) throw new Error('connect ECONNREFUSED');
      return register(r, s);
    };
    const { clock, lifecycle, service, stats } = setup({}, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    const failures = () => events(RegistryEvent.REGISTER_FAILED).map((e) => e.retry_in_ms);
    expect(failures()).toEqual([100]);
    await clock.advance(100);
    await clock.advance(200);
    await clock.advance(400);
    await clock.advance(800);
    await clock.advance(1000);
    // 100, 200, 400, 800, then capped at maxDelayMs.
    expect(failures()).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(stats.count('register', 'failure')).toBe(6);
    expect(service.state).toBe(RegistrationState.REGISTERING);

    down = false;
    await clock.advance(1000);
    expect(service.registered).toBe(true);
    expect(events(RegistryEvent.REGISTERED)[0]).toMatchObject({ attempts: 7 });
  });

  it('bounds a register call that never answers by operationTimeoutMs and counts it as a timeout', async () => {
    const driver = new FakeDriver();
    driver.register = () => hang();
    const { clock, lifecycle, stats } = setup({ operationTimeoutMs: 500 }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(500);
    expect(stats.count('register', 'timeout')).toBe(1);
    expect(events(RegistryEvent.REGISTER_FAILED)[0]).toMatchObject({ error: expect.objectContaining({ code: 'REGISTRY_TIMEOUT' }) });
  });

  it('sends heartbeats on the driver interval and registers again when the registry lost the entry', async () => {
    const driver = new FakeDriver();
    driver.heartbeatIntervalMs = 1000;
    const { clock, lifecycle, stats } = setup({}, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    expect(driver.ops('heartbeat')).toBe(1);
    await clock.advance(3000);
    expect(driver.ops('heartbeat')).toBe(4);
    expect(driver.calls.filter((c) => c.op === 'heartbeat').every((c) => c.healthy)).toBe(true);

    driver.held.clear(); // the agent restarted without its state
    await clock.advance(1000);
    expect(stats.snapshot().registrationsLost).toBe(1);
    expect(events(RegistryEvent.REGISTRATION_LOST)).toEqual([expect.objectContaining({ detected_by: 'heartbeat' })]);
    expect(driver.ops('register')).toBe(2);
    expect(driver.held.size).toBe(1);
  });

  it('treats a whole TTL without a successful keep-alive as a lost lease (a half-open stream never answers)', async () => {
    const driver = new FakeDriver();
    driver.heartbeatIntervalMs = 1000;
    driver.expiresAfterMs = 3000;
    const { clock, lifecycle, stats } = setup({ operationTimeoutMs: 500 }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    driver.heartbeatResult = () => hang();
    await clock.advance(2500);
    expect(stats.snapshot().registrationsLost).toBe(0);
    await clock.advance(1000);
    expect(stats.count('heartbeat', 'timeout')).toBeGreaterThanOrEqual(3);
    expect(events(RegistryEvent.REGISTRATION_LOST)).toEqual([expect.objectContaining({ detected_by: 'heartbeat_expired' })]);
    expect(driver.ops('register')).toBe(2);
  });

  it('reports a TTL heartbeat as failing while the user condition says not healthy', async () => {
    const driver = new FakeDriver();
    driver.heartbeatIntervalMs = 1000;
    let healthy = true;
    const { clock, lifecycle } = setup({ consul: { check: { type: 'ttl', ttlMs: 15_000, isHealthy: () => healthy } } }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    healthy = false;
    await clock.advance(1000);
    expect(driver.calls.filter((c) => c.op === 'heartbeat').map((c) => c.healthy)).toEqual([true, false]);
  });

  it('finds a lost entry by anti-entropy within the interval and puts it back', async () => {
    const { driver, clock, lifecycle, stats } = setup({ antiEntropyIntervalMs: 5000 });
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    driver.held.clear();
    await clock.advance(4999);
    expect(driver.ops('register')).toBe(1);
    await clock.advance(1);
    expect(driver.ops('isRegistered')).toBe(1);
    expect(stats.snapshot().registrationsLost).toBe(1);
    expect(driver.held.size).toBe(1);
  });

  it('logs a refused registration once as a permission problem and retries at the backoff ceiling until it is granted', async () => {
    const driver = new FakeDriver();
    let granted = false;
    const register = driver.register;
    driver.register = async (r, s) => {
      driver.calls.push({ op: 'register', id: r.id });
      if (!granted) throw new RegistryPermissionError('consul register was refused (HTTP 403)', 403);
      return register(r, s);
    };
    const { clock, lifecycle, service, stats } = setup({}, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toEqual([
      expect.objectContaining({
        operation: 'register',
        retry_in_ms: 1000,
        error: expect.objectContaining({ code: 'REGISTRY_PERMISSION_DENIED' }),
      }),
    ]);
    // Not the 100, 200, 400 ms of an unreachable registry: each retry waits the ceiling.
    await clock.advance(999);
    expect(driver.ops('register')).toBe(1);
    await clock.advance(1);
    await clock.advance(1000);
    expect(driver.ops('register')).toBe(3);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toHaveLength(1);
    expect(events(RegistryEvent.REGISTER_FAILED)).toEqual([]);
    expect(stats.count('register', 'failure')).toBe(3);
    expect(service.state).toBe(RegistrationState.REGISTERING);

    granted = true;
    await clock.advance(1000);
    expect(service.registered).toBe(true);
  });

  it('does not take a refused anti-entropy read for a lost entry: logs it once, registers nothing again', async () => {
    const driver = new FakeDriver();
    let denied = true;
    driver.isRegistered = async (r) => {
      driver.calls.push({ op: 'isRegistered', id: r.id });
      if (denied) throw new RegistryPermissionError('consul anti-entropy was refused (HTTP 403)', 403);
      return driver.held.has(r.id);
    };
    const { clock, lifecycle, service, stats } = setup({ antiEntropyIntervalMs: 1000 }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    for (let i = 0; i < 5; i++) await clock.advance(1000);
    expect(driver.ops('isRegistered')).toBe(5);
    expect(driver.ops('register')).toBe(1);
    expect(stats.snapshot().registrationsLost).toBe(0);
    expect(service.registered).toBe(true);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toEqual([expect.objectContaining({ operation: 'anti_entropy' })]);
    expect(events(RegistryEvent.ANTI_ENTROPY_FAILED)).toEqual([]);

    // Granted, then refused again: a new problem, logged again.
    denied = false;
    await clock.advance(1000);
    denied = true;
    await clock.advance(1000);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toHaveLength(2);
  });

  it('logs a refused heartbeat once as a permission problem', async () => {
    const driver = new FakeDriver();
    driver.heartbeatIntervalMs = 1000;
    driver.heartbeatResult = async () => Promise.reject(new RegistryPermissionError('consul heartbeat was refused (HTTP 403)', 403));
    const { clock, lifecycle } = setup({ antiEntropyIntervalMs: 60_000 }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    for (let i = 0; i < 4; i++) await clock.advance(1000);
    expect(driver.ops('heartbeat')).toBe(5);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toEqual([expect.objectContaining({ operation: 'heartbeat' })]);
    expect(events(RegistryEvent.HEARTBEAT_FAILED)).toEqual([]);
  });

  it('deregisters as a drain task at DRAINING, measures the time from DRAINING, and skips a second call once confirmed', async () => {
    const { driver, clock, lifecycle, service, stats } = setup();
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    expect(lifecycle.drainTasks.map((t) => t.name)).toEqual(['registry.deregister']);
    const drained = lifecycle.drain();
    await clock.advance(0);
    await drained;
    expect(driver.held.size).toBe(0);
    expect(service.state).toBe(RegistrationState.DEREGISTERED);
    expect(stats.snapshot().lastDeregistrationMs).toBe(0);
    expect(events(RegistryEvent.DEREGISTERED)).toEqual([expect.objectContaining({ reason: 'draining' })]);

    await clock.advance(10_000);
    expect(driver.ops('register')).toBe(1); // no heartbeat, anti-entropy or re-registration after DRAINING
    await service.onApplicationShutdown();
    expect(driver.ops('deregister')).toBe(1);
    expect(driver.closed).toBe(true);
  });

  it('deregisters again in onApplicationShutdown when a register call was cut off by the drain (it may land late)', async () => {
    const driver = new FakeDriver();
    let release: () => void = () => undefined;
    driver.register = (r) => new Promise<void>((resolve) => (release = () => (driver.held.add(r.id), resolve())));
    const { clock, lifecycle, service } = setup({}, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    const drained = lifecycle.drain();
    await clock.advance(0);
    await drained;
    release(); // the registry processed the write after all
    expect(driver.held.size).toBe(1);
    await service.onApplicationShutdown();
    expect(driver.ops('deregister')).toBe(2);
    expect(driver.held.size).toBe(0);
  });

  it('deregisters in onApplicationShutdown when the app is closed without a drain (app.close())', async () => {
    const { driver, clock, lifecycle, service } = setup();
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    lifecycle.moveTo(LifecycleState.STOPPING);
    await service.onApplicationShutdown();
    expect(driver.ops('deregister')).toBe(1);
    expect(events(RegistryEvent.DEREGISTERED)).toEqual([expect.objectContaining({ reason: 'shutdown' })]);
  });

  it('gives up a deregistration that hangs after deregisterTimeoutMs, logs it, and fails the drain task', async () => {
    const driver = new FakeDriver();
    driver.deregister = () => hang();
    const { clock, lifecycle, stats } = setup({ deregisterTimeoutMs: 2000 }, driver);
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    const drained = lifecycle.drain();
    await clock.advance(1999);
    expect(events(RegistryEvent.DEREGISTER_FAILED)).toEqual([]);
    await clock.advance(1);
    expect(await drained).toEqual([expect.objectContaining({ status: 'rejected' })]);
    expect(stats.count('deregister', 'timeout')).toBe(1);
    expect(events(RegistryEvent.DEREGISTER_FAILED)).toEqual([expect.objectContaining({ reason: 'draining', timeout_ms: 2000 })]);
  });

  it('never calls the registry when the instance never turned ready', async () => {
    const { driver, lifecycle, service } = setup();
    lifecycle.moveTo(LifecycleState.WARMING_UP);
    await lifecycle.drain();
    await service.onApplicationShutdown();
    expect(driver.calls).toEqual([]);
  });

  it('stays out of the registry with driver none or register: false', async () => {
    for (const options of [{ driver: 'none' as const }, { register: false }]) {
      const { driver, clock, lifecycle, service } = setup(options);
      lifecycle.moveTo(LifecycleState.READY);
      await clock.advance(1000);
      expect(driver.calls).toEqual([]);
      expect(lifecycle.drainTasks).toEqual([]);
      expect(service.state).toBe(RegistrationState.DISABLED);
    }
    expect(events(RegistryEvent.DISABLED)).toHaveLength(2);
  });

  it('reports an unknown port instead of registering a wrong one', async () => {
    const { driver, clock, lifecycle } = setup({ port: undefined });
    lifecycle.moveTo(LifecycleState.READY);
    await clock.advance(0);
    await settle();
    expect(driver.calls).toEqual([]);
    expect(events(RegistryEvent.PORT_UNKNOWN)).toHaveLength(1);
  });
});
