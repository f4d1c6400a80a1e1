import { ManualClock } from '@nest-rollout/lifecycle';
import { resolveRegistryOptions } from '../registry.options';
import type { ServiceRegistration } from '../registry.types';
import { EtcdClientConstructor, EtcdDriver, etcdInstanceKey, etcdInstanceValue, instanceFromEtcdValue } from './etcd.driver';

const registration: ServiceRegistration = {
  id: 'orders-h-1',
  name: 'orders',
  address: '10.0.0.7',
  port: 8080,
  tags: ['green'],
  meta: { track: 'canary' },
};

function leaseInvalid(): Error {
  return Object.assign(new Error('etcdserver: requested lease not found'), { name: 'EtcdLeaseInvalidError' });
}

/** An etcd3 stand-in with one lease at a time. */
function fakeEtcd() {
  const state = {
    granted: 0,
    keepalive: async (): Promise<{ TTL: string }> => ({ TTL: '10' }),
    stored: new Map<string, { value: string; lease: string }>(),
  };
  let constructed: Record<string, unknown> | undefined;
  const client = {
    lease: () => {
      const id = String(++state.granted);
      return {
        grant: async () => id,
        keepaliveOnce: () => state.keepalive(),
        revoke: async () => undefined,
        release: () => undefined,
        on: () => undefined,
        id,
      };
    },
    put: (key: string) => ({
      value: (value: string) => ({ lease: (lease: string) => ({ exec: async () => void state.stored.set(key, { value, lease }) }) }),
    }),
    get: (key: string) => ({
      exec: async () => {
        const kv = state.stored.get(key);
        return { header: { revision: '1' }, kvs: kv ? [{ key: Buffer.from(key), value: Buffer.from(kv.value), lease: kv.lease }] : [] };
      },
    }),
    delete: () => ({ key: (key: string) => ({ exec: async () => void state.stored.delete(key) }) }),
    close: () => undefined,
  };
  const Ctor = function (this: unknown, options: Record<string, unknown>) {
    constructed = options;
    return client;
  } as unknown as EtcdClientConstructor;
  return { Ctor, state, constructed: () => constructed };
}

const options = resolveRegistryOptions({
  driver: 'etcd',
  service: 'orders',
  etcd: { endpoints: ['http://127.0.0.1:2379'], leaseTtlSeconds: 9 },
});
const signal = new AbortController().signal;

describe('etcd driver', () => {
  it('puts the instance as JSON under <prefix><service>/<id>, attached to a lease kept alive three times per TTL', async () => {
    const { Ctor, state } = fakeEtcd();
    const driver = new EtcdDriver(options, new ManualClock(), Ctor);
    expect(driver).toMatchObject({ expiresAfterMs: 9000, heartbeatIntervalMs: 3000 });
    await driver.register(registration, signal);
    expect(etcdInstanceKey(options.etcd, 'orders', 'orders-h-1')).toBe('/services/orders/orders-h-1');
    expect(state.stored.get('/services/orders/orders-h-1')).toEqual({ value: etcdInstanceValue(registration), lease: '1' });
    expect(instanceFromEtcdValue(etcdInstanceValue(registration))).toEqual({
      id: 'orders-h-1',
      service: 'orders',
      address: '10.0.0.7',
      port: 8080,
      tags: ['green'],
      meta: { track: 'canary' },
      health: 'passing',
    });
    expect(instanceFromEtcdValue('not json')).toBeUndefined();
  });

  it('runs each call once under our own retries (no etcd3 retry or circuit breaker) and sets deadlines on unary calls only', async () => {
    const { Ctor, constructed } = fakeEtcd();
    new EtcdDriver(options, new ManualClock(), Ctor);
    const o = constructed()! as {
      faultHandling: { global: { execute: (fn: () => number) => Promise<number> } };
      defaultCallOptions: (c: { isStream: boolean }) => object;
    };
    await expect(o.faultHandling.global.execute(() => 7)).resolves.toBe(7);
    expect(o.defaultCallOptions({ isStream: true })).toEqual({});
    expect(o.defaultCallOptions({ isStream: false })).toEqual({ deadline: expect.any(Date) });
  });

  it('reports a lease that etcd no longer knows as lost, and grants a new one on the next registration', async () => {
    const { Ctor, state } = fakeEtcd();
    const driver = new EtcdDriver(options, new ManualClock(), Ctor);
    await driver.register(registration, signal);
    expect(await driver.heartbeat(registration, true, signal)).toBe('ok');
    state.keepalive = async () => Promise.reject(leaseInvalid());
    expect(await driver.heartbeat(registration, true, signal)).toBe('lost');
    state.keepalive = async () => ({ TTL: '9' });
    await driver.register(registration, signal);
    expect(state.granted).toBe(2);
    expect(state.stored.get('/services/orders/orders-h-1')?.lease).toBe('2');
  });

  it('passes other keep-alive errors up, for the service to count against the TTL', async () => {
    const { Ctor, state } = fakeEtcd();
    const driver = new EtcdDriver(options, new ManualClock(), Ctor);
    await driver.register(registration, signal);
    state.keepalive = async () => Promise.reject(new Error('14 UNAVAILABLE: No connection established'));
    await expect(driver.heartbeat(registration, true, signal)).rejects.toThrow('UNAVAILABLE');
  });

  it('sees its key missing, or held by another lease, as not registered', async () => {
    const { Ctor, state } = fakeEtcd();
    const driver = new EtcdDriver(options, new ManualClock(), Ctor);
    await driver.register(registration, signal);
    expect(await driver.isRegistered(registration, signal)).toBe(true);
    state.stored.set('/services/orders/orders-h-1', { value: etcdInstanceValue(registration), lease: '99' });
    expect(await driver.isRegistered(registration, signal)).toBe(false);
    state.stored.clear();
    expect(await driver.isRegistered(registration, signal)).toBe(false);
  });

  it('deletes the key and revokes the lease on deregistration; deleting a missing key is fine', async () => {
    const { Ctor, state } = fakeEtcd();
    const driver = new EtcdDriver(options, new ManualClock(), Ctor);
    await driver.register(registration, signal);
    await driver.deregister(registration, signal);
    expect(state.stored.size).toBe(0);
    await expect(driver.deregister(registration, signal)).resolves.toBeUndefined();
  });
});
