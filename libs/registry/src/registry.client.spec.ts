import { Logger } from '@nestjs/common';
import { ManualClock, settle } from '@nest-rollout/lifecycle';
import { RegistryClient } from './registry.client';
import { RegistryEvent } from './registry.constants';
import { RegistryPermissionError } from './registry.errors';
import { RegistryModuleOptions, resolveRegistryOptions } from './registry.options';
import { RegistryStats } from './registry.stats';
import type { ServiceInstance, ServiceInstancesChange } from './registry.types';
import { FakeDriver } from './testing/fake-driver';

function instance(id: string, overrides: Partial<ServiceInstance> = {}): ServiceInstance {
  return {
    id,
    service: 'orders',
    address: '10.0.0.1',
    port: 8080,
    tags: ['green'],
    meta: { track: 'stable' },
    health: 'passing',
    ...overrides,
  };
}

function setup(options: RegistryModuleOptions = {}) {
  const driver = new FakeDriver();
  const clock = new ManualClock();
  const stats = new RegistryStats();
  const resolved = resolveRegistryOptions({ retry: { initialDelayMs: 100, maxDelayMs: 1000, jitter: 0 }, ...options });
  const client = new RegistryClient(resolved, driver, clock, () => 0, stats);
  return { driver, clock, stats, client };
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

describe('RegistryClient', () => {
  it('serves instances from memory, filtered by tags and meta, and picks them round-robin', async () => {
    const { driver, client } = setup();
    expect(client.instances('orders')).toEqual([]);
    await settle();
    expect(driver.watchCalls).toBe(1);
    driver.sink.update([instance('b'), instance('a'), instance('c', { tags: ['blue'], meta: { track: 'canary' } })]);
    driver.sink.live();
    expect(client.instances('orders').map((i) => i.id)).toEqual(['a', 'b', 'c']);
    expect(client.instances('orders', { tags: ['green'] }).map((i) => i.id)).toEqual(['a', 'b']);
    expect(client.instances('orders', { meta: { track: 'canary' } }).map((i) => i.id)).toEqual(['c']);
    expect([1, 2, 3, 4].map(() => client.pick('orders', { tags: ['green'] })?.id)).toEqual(['a', 'b', 'a', 'b']);
    expect(client.pick('orders', { tags: ['missing'] })).toBeUndefined();
    // One feed per service (and passing-only flag), however many filters ask.
    expect(driver.watchCalls).toBe(1);
  });

  it('resolves ready() once the first answer arrives, and rejects after the bound', async () => {
    const { driver, clock, client } = setup();
    const ready = client.ready('orders', {}, 1000);
    await settle();
    driver.sink.update([instance('a')]);
    await expect(ready).resolves.toEqual([instance('a')]);
    const never = expect(client.ready('payments', {}, 1000)).rejects.toMatchObject({ code: 'REGISTRY_TIMEOUT' });
    await clock.advance(1000);
    await never;
  });

  it('tells subscribers what was added and removed', async () => {
    const { driver, client } = setup();
    const changes: ServiceInstancesChange[] = [];
    client.changes$('orders', { tags: ['green'] }).subscribe((c) => changes.push(c));
    await settle();
    driver.sink.update([instance('a')]);
    driver.sink.update([instance('a'), instance('b')]);
    driver.sink.update([instance('a'), instance('b'), instance('x', { tags: ['blue'] })]); // not matching: no event
    driver.sink.update([instance('b')]);
    expect(changes.map((c) => [c.instances.map((i) => i.id), c.added.map((i) => i.id), c.removed.map((i) => i.id)])).toEqual([
      [['a'], ['a'], []],
      [['a', 'b'], ['b'], []],
      [['b'], [], ['a']],
    ]);
  });

  it('starts a broken feed again with backoff instead of ending (node-consul Watch ends for good), and reports staleness meanwhile', async () => {
    const { driver, clock, client, stats } = setup();
    client.instances('orders');
    await settle();
    driver.sink.update([instance('a')]);
    driver.sink.live();
    expect(client.status()[0]).toMatchObject({ live: true, stalenessMs: 0 });

    driver.fail();
    await clock.advance(0);
    expect(driver.watchCalls).toBe(1);
    await clock.advance(100);
    expect(driver.watchCalls).toBe(2);
    driver.fail();
    await clock.advance(199);
    expect(driver.watchCalls).toBe(2);
    await clock.advance(1);
    expect(driver.watchCalls).toBe(3);
    expect(client.status()[0]).toMatchObject({ live: false, stalenessMs: 300 });
    expect(stats.snapshot().discovery[0]).toMatchObject({ service: 'orders', stalenessMs: 300, instances: 1 });
    // The view stays in use while the feed is down.
    expect(client.instances('orders').map((i) => i.id)).toEqual(['a']);

    driver.sink.live();
    expect(client.status()[0]).toMatchObject({ live: true, stalenessMs: 0 });
    expect(events(RegistryEvent.DISCOVERY_FAILED).map((e) => e.retry_in_ms)).toEqual([100, 200]);
    expect(events(RegistryEvent.DISCOVERY_RECOVERED)).toHaveLength(1);
    expect(stats.count('discovery', 'failure')).toBe(2);
  });

  it('logs a feed refused for lack of permission once, keeps its view, and retries at the backoff ceiling', async () => {
    const { driver, clock, client } = setup();
    client.instances('orders');
    await settle();
    driver.sink.update([instance('a')]);
    driver.sink.live();

    for (let i = 0; i < 3; i++) {
      driver.fail(new RegistryPermissionError('consul discovery of "orders": the agent left instances out'));
      await clock.advance(999);
      expect(driver.watchCalls).toBe(i + 1);
      await clock.advance(1);
      expect(driver.watchCalls).toBe(i + 2);
    }
    expect(events(RegistryEvent.PERMISSION_DENIED)).toEqual([
      expect.objectContaining({ service: 'orders', operation: 'discovery', retry_in_ms: 1000 }),
    ]);
    expect(events(RegistryEvent.DISCOVERY_FAILED)).toEqual([]);
    expect(client.status()[0]).toMatchObject({ live: false });
    expect(client.instances('orders').map((i) => i.id)).toEqual(['a']);

    driver.sink.live();
    expect(events(RegistryEvent.DISCOVERY_RECOVERED)).toHaveLength(1);
    driver.fail(new RegistryPermissionError('refused again'));
    await clock.advance(0);
    expect(events(RegistryEvent.PERMISSION_DENIED)).toHaveLength(2);
  });

  it('keeps the last known good set when the registry suddenly reports none, for keepLastKnownMaxMs, then accepts it', async () => {
    const { driver, clock, client } = setup({ discovery: { keepLastKnownMaxMs: 30_000 } });
    const changes: ServiceInstancesChange[] = [];
    client.changes$('orders').subscribe((c) => changes.push(c));
    await settle();
    driver.sink.update([instance('a'), instance('b')]);
    driver.sink.update([]);
    expect(client.instances('orders').map((i) => i.id)).toEqual(['a', 'b']);
    expect(changes.at(-1)).toMatchObject({ keptLastKnown: true, removed: [] });
    expect(events(RegistryEvent.DISCOVERY_EMPTY_KEPT)).toHaveLength(1);

    // Repeated empty answers change nothing and log nothing more (no hot loop of events).
    driver.sink.update([]);
    driver.sink.update([]);
    expect(changes).toHaveLength(2);
    await clock.advance(29_999);
    expect(client.instances('orders')).toHaveLength(2);
    await clock.advance(1);
    expect(client.instances('orders')).toEqual([]);
    expect(changes.at(-1)).toMatchObject({ keptLastKnown: false, instances: [] });
    expect(events(RegistryEvent.DISCOVERY_EMPTY_ACCEPTED)).toHaveLength(1);
  });

  it('leaves the kept state as soon as instances come back, and tells subscribers', async () => {
    const { driver, clock, client } = setup();
    const changes: ServiceInstancesChange[] = [];
    client.changes$('orders').subscribe((c) => changes.push(c));
    await settle();
    driver.sink.update([instance('a')]);
    driver.sink.update([]);
    driver.sink.update([instance('a')]);
    expect(changes.map((c) => c.keptLastKnown)).toEqual([false, true, false]);
    await clock.advance(120_000);
    expect(client.instances('orders')).toHaveLength(1);
  });

  it("accepts an empty set at once with onEmpty: 'accept', and an empty first answer always", async () => {
    const { driver, client } = setup({ discovery: { onEmpty: 'accept' } });
    client.instances('orders');
    await settle();
    driver.sink.update([]);
    expect(client.instances('orders')).toEqual([]);
    driver.sink.update([instance('a')]);
    driver.sink.update([]);
    expect(client.instances('orders')).toEqual([]);
  });

  it('stops every feed when the module closes', async () => {
    const { driver, client } = setup();
    client.instances('orders');
    client.instances('payments', { passingOnly: false });
    await settle();
    expect(driver.watchCalls).toBe(2);
    await client.onModuleDestroy();
    expect(driver.watchCalls).toBe(2);
  });
});
