import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { ManualClock, settle } from '@nest-rollout/lifecycle';
import { ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSourceUpdate } from './config-source';
import { etcdSource, EtcdSourceClient, EtcdSourceOptions } from './etcd.source';

const constructed: Record<string, unknown>[] = [];
jest.mock('etcd3', () => ({
  Etcd3: jest.fn().mockImplementation((options: Record<string, unknown>) => {
    constructed.push(options);
    return { get: jest.fn(), getAll: jest.fn(), watch: jest.fn(), close: jest.fn() };
  }),
}));

class FakeWatcher extends EventEmitter {
  cancelled = false;
  constructor(
    readonly target: { key?: string; prefix?: string },
    readonly fromRevision: string,
  ) {
    super();
  }
  cancel(): Promise<void> {
    this.cancelled = true;
    return Promise.resolve();
  }
}

const unreachable = () => Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 });

/** An etcd3 stand-in: an in-memory store with revisions, watchers that get `data` events, and an off switch. */
function fakeEtcd() {
  const store = new Map<string, string>();
  let revision = 7;
  const state = { down: false, reads: 0 };
  const watchers: FakeWatcher[] = [];
  const range = (matches: (key: string) => boolean) => ({
    exec: async () => {
      state.reads += 1;
      if (state.down) throw unreachable();
      const kvs = [...store].filter(([k]) => matches(k)).map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v) }));
      return { header: { revision: String(revision) }, kvs };
    },
  });
  const builder = (target: { key?: string; prefix?: string }, from = '0') => ({
    key: (key: string) => builder({ key }, from),
    prefix: (prefix: string) => builder({ prefix }, from),
    startRevision: (rev: string) => builder(target, rev),
    create: async () => {
      if (state.down) return new Promise<never>(() => undefined);
      const watcher = new FakeWatcher(target, from);
      watchers.push(watcher);
      return watcher;
    },
  });
  const client = {
    get: (key: string) => range((k) => k === key),
    getAll: () => ({ prefix: (prefix: string) => range((k) => k.startsWith(prefix)) }),
    watch: () => builder({}),
    close: jest.fn(),
  };
  const live = () => watchers.filter((w) => !w.cancelled);
  const notify = (key: string) => {
    for (const w of live()) {
      if (w.target.key === key || (w.target.prefix !== undefined && key.startsWith(w.target.prefix)))
        w.emit('data', { events: [{ type: 'PUT' }] });
    }
  };
  return {
    client: client as EtcdSourceClient & { close: jest.Mock },
    state,
    watchers,
    live,
    put(key: string, value: string, options: { silently?: boolean } = {}) {
      store.set(key, value);
      revision += 1;
      if (!options.silently) notify(key);
    },
    delete(key: string) {
      store.delete(key);
      revision += 1;
      notify(key);
    },
  };
}

function collect() {
  const updates: ConfigSourceUpdate[] = [];
  return { updates, onUpdate: (update: ConfigSourceUpdate) => void updates.push(update) };
}

const FAST = { debounceMs: 50, retry: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0 } } satisfies Partial<EtcdSourceOptions>;

describe('etcdSource', () => {
  let clock: ManualClock;
  let etcd: ReturnType<typeof fakeEtcd>;
  const stops: (() => Promise<void>)[] = [];

  beforeEach(() => {
    clock = new ManualClock();
    etcd = fakeEtcd();
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  function source(options: Partial<EtcdSourceOptions>) {
    const created = etcdSource({ client: etcd.client, clock, ...FAST, ...options } as EtcdSourceOptions);
    stops.push(() => created.stop());
    return created;
  }

  it('reads a prefix as one nested document, then watches from the revision after that read', async () => {
    etcd.put('/config/orders/degrade/orders_list', 'true');
    etcd.put('/config/orders/limits/rps', '250');
    const s = source({ prefix: '/config/orders' });
    expect(s.kind).toBe('etcd');
    expect(s.location).toBe('etcd:/config/orders/');
    const { onUpdate } = collect();
    expect(await s.start(onUpdate)).toEqual({ ok: true, value: { degrade: { orders_list: true }, limits: { rps: 250 } } });
    await settle();
    expect(etcd.live()).toHaveLength(1);
    expect(etcd.live()[0].target).toEqual({ prefix: '/config/orders/' });
    expect(etcd.live()[0].fromRevision).toBe('10');
  });

  it('reads a burst of changes once, debounceMs after its last event, and hands it on as one update', async () => {
    etcd.put('/config/orders/degrade/orders_list', 'false');
    const s = source({ prefix: '/config/orders/' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    const readsBefore = etcd.state.reads;
    etcd.put('/config/orders/degrade/orders_list', 'true');
    await clock.advance(30);
    etcd.put('/config/orders/degrade/payments', 'true');
    await clock.advance(49);
    expect(updates).toEqual([]);
    await clock.advance(1);
    expect(updates).toEqual([{ ok: true, value: { degrade: { orders_list: true, payments: true } } }]);
    expect(etcd.state.reads - readsBefore).toBe(1);
  });

  it('hands on nothing when a change leaves the document as it was', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const s = source({ key: '/config/orders.yaml' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    etcd.put('/config/orders.yaml', 'a: 1');
    await clock.advance(100);
    expect(updates).toEqual([]);
  });

  it('reports a deleted key as missing, or as an empty document when optional', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const strict = source({ key: '/config/orders.yaml' });
    const lenient = source({ key: '/config/orders.yaml', optional: true });
    const a = collect();
    const b = collect();
    await strict.start(a.onUpdate);
    await lenient.start(b.onUpdate);
    await settle();
    etcd.delete('/config/orders.yaml');
    await clock.advance(50);
    expect(a.updates).toEqual([{ ok: false, error: expect.any(ConfigSourceError) }]);
    expect((a.updates[0] as { error: ConfigSourceError }).error.failure).toBe('missing');
    expect(b.updates).toEqual([{ ok: true, value: {} }]);
  });

  it('reports a lost etcd once, retries with backoff, and once back reads what changed meanwhile', async () => {
    etcd.put('/config/orders/limits/rps', '250');
    const s = source({ prefix: '/config/orders/' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    const first = etcd.live()[0];

    etcd.state.down = true;
    first.emit('disconnected', unreachable());
    await settle();
    expect(first.cancelled).toBe(true);
    // The watch broke right after it started: the read again waits for the first backoff step.
    await clock.advance(100);
    expect(updates).toEqual([{ ok: false, error: expect.any(ConfigSourceError) }]);
    const error = (updates[0] as { error: ConfigSourceError }).error;
    expect(error.failure).toBe('unavailable');
    expect(error.message).toMatch(/^etcd did not answer for "\/config\/orders\/" \(14 UNAVAILABLE: No connection established\); retrying/);

    // Backoff 200, then 400, 400: each attempt fails without a second report.
    const readsWhileDown = etcd.state.reads;
    await clock.advance(200);
    await clock.advance(400);
    await clock.advance(400);
    expect(etcd.state.reads - readsWhileDown).toBe(3);
    expect(updates).toHaveLength(1);

    etcd.put('/config/orders/limits/rps', '500', { silently: true });
    etcd.state.down = false;
    await clock.advance(400);
    expect(updates).toEqual([expect.objectContaining({ ok: false }), { ok: true, value: { limits: { rps: 500 } } }]);
    expect(etcd.live()).toHaveLength(1);
    expect(etcd.live()[0]).not.toBe(first);
    expect(etcd.live()[0].fromRevision).toBe('10');
  });

  it('hands on the current document after an outage even if it did not change', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const s = source({ key: '/config/orders.yaml' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    etcd.state.down = true;
    etcd.live()[0].emit('disconnected', unreachable());
    await clock.advance(100);
    etcd.state.down = false;
    await clock.advance(200);
    expect(updates).toEqual([expect.objectContaining({ ok: false }), { ok: true, value: { a: 1 } }]);
  });

  it('resolves start() with unavailable when etcd is down, and delivers the document once it is up', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    etcd.state.down = true;
    const s = source({ key: '/config/orders.yaml' });
    const { updates, onUpdate } = collect();
    const first = await s.start(onUpdate);
    expect(first).toEqual({ ok: false, error: expect.any(ConfigSourceError) });
    await clock.advance(100);
    expect(updates).toEqual([]);
    etcd.state.down = false;
    await clock.advance(200);
    expect(updates).toEqual([{ ok: true, value: { a: 1 } }]);
  });

  it('gives up on a watch that cannot be created within operationTimeoutMs', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const s = source({ key: '/config/orders.yaml', operationTimeoutMs: 1000 });
    const create = jest.spyOn(etcd.client, 'watch').mockReturnValueOnce({
      key: () => ({ startRevision: () => ({ create: () => new Promise<never>(() => undefined) }) }),
    } as unknown as ReturnType<EtcdSourceClient['watch']>);
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await clock.advance(1000);
    expect(updates).toEqual([{ ok: false, error: expect.any(ConfigSourceError) }]);
    expect((updates[0] as { error: ConfigSourceError }).error.message).toContain('creating the watch did not answer within 1000 ms');
    create.mockRestore();
    await clock.advance(100);
    expect(updates).toEqual([expect.objectContaining({ ok: false }), { ok: true, value: { a: 1 } }]);
    expect(etcd.live()).toHaveLength(1);
  });

  it('reload() reads again and returns the document', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const s = source({ key: '/config/orders.yaml' });
    await s.start(() => undefined);
    etcd.put('/config/orders.yaml', 'a: 2', { silently: true });
    expect(await s.reload()).toEqual({ ok: true, value: { a: 2 } });
  });

  it('stop() cancels the watch, and leaves a client it was given open', async () => {
    etcd.put('/config/orders.yaml', 'a: 1');
    const s = source({ key: '/config/orders.yaml' });
    const { updates, onUpdate } = collect();
    await s.start(onUpdate);
    await settle();
    await s.stop();
    expect(etcd.watchers.every((w) => w.cancelled)).toBe(true);
    expect(etcd.client.close).not.toHaveBeenCalled();
    etcd.put('/config/orders.yaml', 'a: 2');
    await clock.advance(100);
    expect(updates).toEqual([]);
  });

  it('makes its own client from endpoints, auth and TLS, and closes it on stop()', async () => {
    constructed.length = 0;
    const s = etcdSource({
      endpoints: ['https://user:pw@etcd-0:2379', 'https://etcd-1:2379'],
      auth: { username: 'config-reader', password: 'secret' },
      tls: { ca: 'CA PEM' },
      key: '/config/orders.yaml',
      clock,
      retry: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0 },
    });
    const first = await s.start(() => undefined);
    // The mocked client answers nothing useful: the read fails, and the message names the endpoints without credentials.
    expect(first.ok).toBe(false);
    expect((first as { error: ConfigSourceError }).error.message).toMatch(
      /^etcd at https:\/\/etcd-0:2379,https:\/\/etcd-1:2379 did not answer/,
    );
    expect(constructed).toHaveLength(1);
    expect(constructed[0]).toMatchObject({
      hosts: ['https://user:pw@etcd-0:2379', 'https://etcd-1:2379'],
      auth: { username: 'config-reader', password: 'secret' },
      credentials: { rootCertificate: Buffer.from('CA PEM') },
      dialTimeout: 3000,
    });
    expect(JSON.stringify(s)).not.toContain('secret');
    expect(inspect(s, { depth: 10 })).not.toContain('secret');
    const { Etcd3 } = jest.requireMock<{ Etcd3: jest.Mock }>('etcd3');
    const client = Etcd3.mock.results[Etcd3.mock.results.length - 1].value as { close: jest.Mock };
    await s.stop();
    expect(client.close).toHaveBeenCalledTimes(1);
  });

  it('rejects options without key or prefix, with both, or mixing a client with endpoints, naming every problem', () => {
    const problems = (options: unknown) => {
      try {
        etcdSource(options as EtcdSourceOptions);
      } catch (error) {
        expect(error).toBeInstanceOf(DynamicConfigOptionsError);
        return (error as DynamicConfigOptionsError).problems;
      }
      throw new Error('no error');
    };
    expect(problems({})).toEqual(['etcdSource().key: set either key (one document) or prefix (one key per setting)']);
    expect(problems({ key: '/a', prefix: '/b/' })).toEqual([
      'etcdSource().prefix: cannot be combined with key: set either key (one document) or prefix (one key per setting)',
    ]);
    expect(problems({ key: '/a', client: etcd.client, endpoints: ['http://127.0.0.1:2379'], format: 'toml', debounceMs: -1 })).toEqual([
      'etcdSource().format: must be "yaml" or "json"',
      expect.stringMatching(/^etcdSource\(\)\.debounceMs: must be a whole number/),
      'etcdSource().endpoints: cannot be combined with client: configure the client itself',
    ]);
    expect(
      problems({ prefix: '/a/', endpoints: ['etcd:2379'], tls: { cert: 'x' }, retry: { initialDelayMs: 500, maxDelayMs: 100 } }),
    ).toEqual([
      'etcdSource().endpoints[0]: must be an http:// or https:// URL',
      'etcdSource().tls: cert and key go together (mutual TLS needs both)',
      'etcdSource().retry.maxDelayMs: must be at least retry.initialDelayMs',
    ]);
    expect(problems({ key: '/a', colour: 'blue' })).toEqual([expect.stringMatching(/^etcdSource\(\)\.colour: unknown option/)]);
  });
});
