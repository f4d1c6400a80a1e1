import { inspect } from 'node:util';
import { ManualClock, settle } from '@nest-rollout/lifecycle';
import { ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSourceUpdate } from './config-source';
import { consulKvSource, ConsulKvClient, ConsulKvGetOptions, ConsulKvSourceOptions, nextIndex } from './consul-kv.source';

const constructed: Record<string, unknown>[] = [];
jest.mock('consul', () =>
  jest.fn().mockImplementation((options: Record<string, unknown>) => {
    constructed.push(options);
    return { kv: { get: jest.fn().mockResolvedValue(undefined) }, destroy: jest.fn() };
  }),
);

interface Parked {
  readonly options: ConsulKvGetOptions;
  readonly resolve: (answer: unknown) => void;
  readonly reject: (error: Error) => void;
}

/**
 * A node-consul stand-in with an in-memory KV and Consul's blocking rule: a query with an index at
 * or above the current one waits until a write (or `expire()`, the wait running out).
 */
function fakeConsul() {
  const store = new Map<string, string>();
  const state = { index: 10, down: false };
  const calls: ConsulKvGetOptions[] = [];
  const parked: Parked[] = [];
  const answer = (options: ConsulKvGetOptions) => {
    const items = [...store]
      .filter(([k]) => (options.recurse ? k.startsWith(options.key) : k === options.key))
      .map(([Key, Value]) => ({ Key, Value, CreateIndex: 1, ModifyIndex: state.index, LockIndex: 0, Flags: 0 }));
    const headers = { 'x-consul-index': String(state.index) };
    if (items.length === 0) return [{ statusCode: 404, headers }];
    return [{ statusCode: 200, headers }, options.recurse ? items : items[0]];
  };
  const wake = () => {
    for (const p of parked.splice(0)) p.resolve(answer(p.options));
  };
  const client: ConsulKvClient & { destroy: jest.Mock } = {
    kv: {
      get: (options: ConsulKvGetOptions) => {
        calls.push(options);
        if (state.down) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8500'), { code: 'ECONNREFUSED' }));
        if (options.index !== undefined && Number(options.index) >= state.index) {
          return new Promise((resolve, reject) => parked.push({ options, resolve, reject }));
        }
        return Promise.resolve(answer(options));
      },
    },
    destroy: jest.fn(),
  };
  return {
    client,
    calls,
    parked,
    state,
    put(key: string, value: string) {
      store.set(key, value);
      state.index += 1;
      wake();
    },
    /** The agent restarted without its data: the index starts over. */
    resetIndex(index: number) {
      state.index = index;
      wake();
    },
    expire: wake,
    goDown() {
      state.down = true;
      for (const p of parked.splice(0)) p.reject(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    },
  };
}

function collect() {
  const updates: ConfigSourceUpdate[] = [];
  return { updates, onUpdate: (update: ConfigSourceUpdate) => void updates.push(update) };
}

const FAST = {
  debounceMs: 50,
  minQueryIntervalMs: 100,
  retry: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0 },
} satisfies Partial<ConsulKvSourceOptions>;

describe('consulKvSource', () => {
  let clock: ManualClock;
  let consul: ReturnType<typeof fakeConsul>;
  const stops: (() => Promise<void>)[] = [];

  beforeEach(() => {
    clock = new ManualClock();
    consul = fakeConsul();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  function source(options: Partial<ConsulKvSourceOptions>) {
    const created = consulKvSource({ client: consul.client, clock, ...FAST, ...options } as ConsulKvSourceOptions);
    stops.push(() => created.stop());
    return created;
  }

  it('reads a prefix as one nested document, then blocks on the index it returned', async () => {
    consul.put('config/orders/degrade/orders_list', 'true');
    consul.put('config/orders/limits/rps', '250');
    const s = source({ prefix: 'config/orders', token: 'tok-123', datacenter: 'dc2', waitMs: 30_000 });
    expect([s.kind, s.location]).toEqual(['consul', 'consul:config/orders/']);
    expect(await s.start(() => undefined)).toEqual({ ok: true, value: { degrade: { orders_list: true }, limits: { rps: 250 } } });
    await settle();
    expect(consul.calls).toEqual([
      expect.objectContaining({ key: 'config/orders/', recurse: true, dc: 'dc2', token: 'tok-123', timeout: 3000 }),
      expect.objectContaining({ key: 'config/orders/', recurse: true, index: '12', wait: '30s', timeout: 30_000 + 1875 + 3000 }),
    ]);
    expect(consul.calls[0]).not.toHaveProperty('index');
  });

  it('lets a change of several keys land for debounceMs, then hands it on as one update', async () => {
    consul.put('config/orders/degrade/orders_list', 'false');
    const s = source({ prefix: 'config/orders/' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    consul.put('config/orders/degrade/orders_list', 'true');
    await clock.advance(20);
    consul.put('config/orders/degrade/payments', 'true');
    await clock.advance(29);
    expect(updates).toEqual([]);
    await clock.advance(1);
    expect(updates).toEqual([{ ok: true, value: { degrade: { orders_list: true, payments: true } } }]);
    // Then it blocks again, on the index of the read that was handed on.
    await clock.advance(100);
    expect(consul.parked.map((p) => p.options.index)).toEqual(['13']);
  });

  it('hands on nothing when a wait runs out with the same document', async () => {
    consul.put('config/orders.yaml', 'a: 1');
    const s = source({ key: 'config/orders.yaml' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    consul.expire();
    await clock.advance(200);
    expect(updates).toEqual([]);
    expect(consul.parked).toHaveLength(1);
  });

  it('resets the index when it goes backwards: the next query is a plain read', async () => {
    consul.put('config/orders.yaml', 'a: 1');
    const s = source({ key: 'config/orders.yaml' });
    await s.start(() => undefined);
    await settle();
    expect(consul.parked[0].options.index).toBe('11');
    consul.resetIndex(3);
    await clock.advance(200);
    const after = consul.calls.slice(2);
    expect(after[0]).not.toHaveProperty('index');
    expect(consul.parked.map((p) => p.options.index)).toEqual(['3']);
  });

  it('waits minQueryIntervalMs between the starts of two queries when the agent answers at once', async () => {
    consul.put('config/orders.yaml', 'a: 1');
    const s = source({ key: 'config/orders.yaml', minQueryIntervalMs: 500, debounceMs: 0 });
    await s.start(() => undefined);
    await settle();
    const before = consul.calls.length;
    // Every query answered at once, as by an agent whose index keeps moving.
    for (let i = 0; i < 3; i++) {
      consul.put('config/orders.yaml', `a: ${i + 2}`);
      await clock.advance(499);
      expect(consul.calls.length).toBe(before + i);
      await clock.advance(1);
      expect(consul.calls.length).toBe(before + i + 1);
    }
  });

  it('reports a lost agent once, retries with backoff, then catches up with a plain read', async () => {
    consul.put('config/orders/limits/rps', '250');
    const s = source({ prefix: 'config/orders/' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    consul.goDown();
    await settle();
    expect(updates).toEqual([{ ok: false, error: expect.any(ConfigSourceError) }]);
    const error = (updates[0] as { error: ConfigSourceError }).error;
    expect([error.failure, error.source]).toEqual(['unavailable', 'consul:config/orders/']);
    expect(error.message).toMatch(/^Consul did not answer for "config\/orders\/" \(ECONNRESET: socket hang up\); retrying with backoff/);

    const callsWhileDown = consul.calls.length;
    await clock.advance(100);
    await clock.advance(200);
    await clock.advance(400);
    expect(consul.calls.length - callsWhileDown).toBe(3);
    expect(updates).toHaveLength(1);

    consul.state.down = false;
    consul.put('config/orders/limits/rps', '500');
    await clock.advance(400);
    expect(updates).toEqual([expect.objectContaining({ ok: false }), { ok: true, value: { limits: { rps: 500 } } }]);
    const catchUp = consul.calls[callsWhileDown + 3];
    expect(catchUp).not.toHaveProperty('index');
  });

  it('resolves start() with unavailable when the agent is down, and delivers the document once it is up', async () => {
    consul.put('config/orders.yaml', 'a: 1');
    consul.state.down = true;
    const s = source({ key: 'config/orders.yaml' });
    const { updates, onUpdate } = collect();
    expect(await s.start(onUpdate)).toEqual({ ok: false, error: expect.any(ConfigSourceError) });
    consul.state.down = false;
    await clock.advance(100);
    expect(updates).toEqual([{ ok: true, value: { a: 1 } }]);
  });

  it('reports a key that is not there as missing, and a refused token with a hint, never echoing the token', async () => {
    const s = source({ key: 'config/absent.yaml' });
    const first = await s.start(() => undefined);
    expect((first as { error: ConfigSourceError }).error.failure).toBe('missing');

    const denied = fakeConsul();
    denied.client.kv.get = () =>
      Promise.reject(Object.assign(new Error('Permission denied: token tok-secret has no key:read'), { statusCode: 403 }));
    const refused = consulKvSource({ client: denied.client, clock, key: 'config/orders.yaml', token: 'tok-secret', ...FAST });
    stops.push(() => refused.stop());
    const update = await refused.start(() => undefined);
    const error = (update as { error: ConfigSourceError }).error;
    expect(error.failure).toBe('unavailable');
    expect(error.message).toContain('HTTP 403');
    expect(error.message).toContain('check that the token has key:read on it');
    expect(error.message).not.toContain('tok-secret');
    expect(JSON.stringify(refused)).not.toContain('tok-secret');
    expect(inspect(refused, { depth: 10 })).not.toContain('tok-secret');
  });

  it('makes its own client from url, sends the token per request, and destroys the client on stop()', async () => {
    constructed.length = 0;
    const s = consulKvSource({ url: 'https://consul.internal:8501', key: 'config/orders.yaml', token: 'tok', clock, ...FAST });
    await s.start(() => undefined);
    expect(constructed).toEqual([{ host: 'consul.internal', port: 8501, secure: true }]);
    const Consul = jest.requireMock<jest.Mock>('consul');
    const client = Consul.mock.results[Consul.mock.results.length - 1].value as { kv: { get: jest.Mock }; destroy: jest.Mock };
    expect(client.kv.get).toHaveBeenCalledWith(expect.objectContaining({ key: 'config/orders.yaml', token: 'tok' }));
    await s.stop();
    expect(client.destroy).toHaveBeenCalledTimes(1);
  });

  it('leaves a client it was given alive on stop()', async () => {
    const s = source({ key: 'config/orders.yaml', optional: true });
    expect(await s.start(() => undefined)).toEqual({ ok: true, value: {} });
    await s.stop();
    expect(consul.client.destroy).not.toHaveBeenCalled();
  });

  it('rejects absolute keys, a client with a url, and a wait beyond Consul’s 10 minutes, naming every problem', () => {
    const problems = (options: unknown) => {
      try {
        consulKvSource(options as ConsulKvSourceOptions);
      } catch (error) {
        expect(error).toBeInstanceOf(DynamicConfigOptionsError);
        return (error as DynamicConfigOptionsError).problems;
      }
      throw new Error('no error');
    };
    expect(problems({ key: '/config/orders.yaml', client: consul.client, url: 'http://127.0.0.1:8500', waitMs: 900_000 })).toEqual([
      'consulKvSource().key: must not start with "/": Consul keys are relative (config/orders.yaml)',
      expect.stringMatching(/^consulKvSource\(\)\.waitMs: must be a whole number of milliseconds from 1000 to 600000/),
      'consulKvSource().url: cannot be combined with client: configure the client itself',
    ]);
    expect(problems({ prefix: 'config/', url: 'http://127.0.0.1:8500/v1' })).toEqual([
      'consulKvSource().url: must be an http:// or https:// URL without a path',
    ]);
  });
});

describe("Consul's index rules", () => {
  it('keep a moving index, reset one that goes backwards, and never block on 0', () => {
    expect(nextIndex(10n, '12')).toBe(12n);
    expect(nextIndex(10n, '10')).toBe(10n);
    expect(nextIndex(10n, '3')).toBe(0n);
    expect(nextIndex(0n, '0')).toBe(1n);
    expect(nextIndex(0n, ['7'])).toBe(7n);
    expect(() => nextIndex(0n, undefined)).toThrow('X-Consul-Index');
  });
});
