import 'reflect-metadata';
import { Module, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import Consul from 'consul';
import { Etcd3 } from 'etcd3';
import { z } from 'zod';
import { systemClock } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import {
  ConfigSource,
  ConfigSourceError,
  ConfigSourceUpdate,
  consulKvSource,
  DynamicConfigModule,
  DynamicConfigService,
  etcdSource,
} from '@nest-rollout/config';
import { ConsulTestServer } from './support/consul-test-server';
import { EtcdServer } from './support/etcd';
import { freePort } from './support/ports';
import { waitUntil } from './support/wait';

/**
 * The etcd and Consul KV sources of the dynamic configuration end to end: a real etcd (Debian's
 * etcd-server) and, since no Consul binary can be installed here, the Consul-API test server in
 * test/support read through the real `consul` client. Each backend is stopped and started again on
 * the same port while a source watches it; every wait is on an update or a condition.
 */

/** Fast, bounded timings for both sources. */
const TIMINGS = {
  operationTimeoutMs: 1000,
  debounceMs: 50,
  retry: { initialDelayMs: 100, maxDelayMs: 400, jitter: 0.5 },
};

/** The system clock, counting the source's sleeps (its backoff steps while the backend is down). */
class CountingClock implements LifecycleClock {
  sleeps = 0;
  now = () => systemClock.now();
  setTimer = (ms: number, fn: () => void) => systemClock.setTimer(ms, fn);
  sleep = (ms: number, signal?: AbortSignal) => {
    this.sleeps += 1;
    return systemClock.sleep(ms, signal);
  };
}

interface KvBackend {
  readonly name: 'etcd' | 'consul';
  /** Where this test's keys live: etcd keys are absolute, Consul's relative. */
  readonly root: string;
  start(): Promise<void>;
  put(key: string, value: string): Promise<void>;
  /** Stops the backend: its port closes, connections drop. */
  stop(): Promise<void>;
  /** Changes a key while the port the sources use stays closed. */
  writeWhileStopped(key: string, value: string): Promise<void>;
  /** Starts it again on the same port. */
  startAgain(): Promise<void>;
  source(options: { key?: string; prefix?: string }, clock: LifecycleClock): ConfigSource;
  destroy(): Promise<void>;
}

async function etcdBackend(): Promise<KvBackend> {
  const server = await EtcdServer.create();
  let writer: Etcd3 | undefined;
  const client = () => (writer ??= new Etcd3({ hosts: server.url }));
  return {
    name: 'etcd',
    root: '/config-e2e/',
    start: () => server.start(),
    put: async (key, value) => void (await client().put(key).value(value).exec()),
    stop: async () => {
      writer?.close();
      writer = undefined;
      await server.stop();
    },
    writeWhileStopped: (key, value) => writeThroughAnotherPort(server, key, value),
    startAgain: () => server.start(),
    source: (options, clock) => etcdSource({ endpoints: [server.url], ...options, ...TIMINGS, clock }),
    destroy: async () => {
      writer?.close();
      await server.destroy();
    },
  };
}

async function consulBackend(): Promise<KvBackend> {
  const server = new ConsulTestServer({ port: await freePort() });
  const client = new Consul({ host: '127.0.0.1', port: server.port });
  return {
    name: 'consul',
    root: 'config-e2e/',
    start: () => server.listen(),
    put: async (key, value) => {
      expect(await client.kv.set(key, value)).toBe(true);
    },
    stop: () => server.close(),
    writeWhileStopped: async (key, value) => void server.setKey(key, value),
    startAgain: () => server.listen(),
    source: (options, clock) => consulKvSource({ url: server.url, ...options, ...TIMINGS, waitMs: 5000, minQueryIntervalMs: 50, clock }),
    destroy: async () => {
      client.destroy();
      await server.destroy();
    },
  };
}

/**
 * Writes to a stopped etcd without reopening its port: the same member (data dir and peer port)
 * runs for a moment on another client port, takes the write, and stops again. Sources watching
 * the usual port see nothing of it until they read again.
 */
async function writeThroughAnotherPort(server: EtcdServer, key: string, value: string): Promise<void> {
  await server.onAnotherPort(async (url) => {
    const client = new Etcd3({ hosts: url });
    try {
      await client.put(key).value(value).exec();
    } finally {
      client.close();
    }
  });
}

/** A started source and every update it handed on, with the time each arrived. */
interface Watched {
  readonly first: ConfigSourceUpdate;
  readonly updates: { readonly update: ConfigSourceUpdate; readonly at: number }[];
  readonly clock: CountingClock;
  /** Waits for the first update from index `from` on that satisfies `predicate`. */
  next(from: number, predicate: (update: ConfigSourceUpdate) => boolean, what: string, timeoutMs?: number): Promise<number>;
}

const valueOf = (update: ConfigSourceUpdate | undefined): unknown => (update?.ok ? update.value : undefined);
const isUnavailable = (update: ConfigSourceUpdate) => !update.ok && update.error.failure === 'unavailable';

describe.each([
  { name: 'etcd', create: etcdBackend },
  { name: 'consul', create: consulBackend },
])('the $name source', ({ create }) => {
  let backend: KvBackend;
  const started: ConfigSource[] = [];

  beforeAll(async () => {
    backend = await create();
    await backend.start();
  }, 30_000);

  afterEach(async () => {
    await Promise.all(started.splice(0).map((source) => source.stop()));
  }, 15_000);

  afterAll(async () => {
    await backend?.destroy();
  }, 30_000);

  async function watch(options: { key?: string; prefix?: string }): Promise<Watched> {
    const clock = new CountingClock();
    const source = backend.source(options, clock);
    started.push(source);
    const updates: Watched['updates'] = [];
    const first = await source.start((update) => updates.push({ update, at: Date.now() }));
    return {
      first,
      updates,
      clock,
      next: async (from, predicate, what, timeoutMs = 10_000) => {
        await waitUntil(() => updates.slice(from).some((u) => predicate(u.update)), what, timeoutMs, 5);
        return from + updates.slice(from).findIndex((u) => predicate(u.update));
      },
    };
  }

  it('hands on a put within a second', async () => {
    const key = `${backend.root}orders.yaml`;
    await backend.put(key, 'limits:\n  rps: 100\n');
    const source = await watch({ key });
    expect(source.first).toEqual({ ok: true, value: { limits: { rps: 100 } } });

    await backend.put(key, 'limits:\n  rps: 200\n');
    const putAt = Date.now();
    const i = await source.next(0, (u) => (valueOf(u) as { limits?: { rps?: number } })?.limits?.rps === 200, 'the new value', 5000);
    expect(source.updates[i].at - putAt).toBeLessThan(1000);
    expect(source.updates.map((u) => u.update)).toEqual([{ ok: true, value: { limits: { rps: 200 } } }]);
  });

  it('builds the nested document from one key per setting, and applies a change of several keys as one update', async () => {
    const prefix = `${backend.root}settings/`;
    await backend.put(`${prefix}degrade/orders_list`, 'false');
    await backend.put(`${prefix}limits/rps`, '100');
    await backend.put(`${prefix}canary/header`, '{ x-env: canary }');
    const source = await watch({ prefix });
    expect(source.first).toEqual({
      ok: true,
      value: { degrade: { orders_list: false }, limits: { rps: 100 }, canary: { header: { 'x-env': 'canary' } } },
    });

    await Promise.all([backend.put(`${prefix}degrade/orders_list`, 'true'), backend.put(`${prefix}degrade/payments`, 'true')]);
    await source.next(0, () => true, 'an update after the change');
    // The first update after the change already holds both keys: no half-applied state in between.
    expect(source.updates.map((u) => u.update)).toEqual([
      {
        ok: true,
        value: { degrade: { orders_list: true, payments: true }, limits: { rps: 100 }, canary: { header: { 'x-env': 'canary' } } },
      },
    ]);
  });

  it('reports a stopped backend once, and once it is back on its port catches up with what was written meanwhile', async () => {
    const key = `${backend.root}outage.yaml`;
    await backend.put(key, 'mode: before');
    const source = await watch({ key });
    expect(source.first).toEqual({ ok: true, value: { mode: 'before' } });

    await backend.stop();
    const down = await source.next(0, isUnavailable, "an 'unavailable' update");
    const error = (source.updates[down].update as { error: ConfigSourceError }).error;
    expect(error).toBeInstanceOf(ConfigSourceError);
    expect(error.code).toBe('CONFIG_SOURCE_UNAVAILABLE');
    // Let the source fail to reconnect a few times, so that "once" means something.
    const sleepsAtOutage = source.clock.sleeps;
    await waitUntil(() => source.clock.sleeps - sleepsAtOutage >= 3, 'three reconnection attempts', 10_000);

    await backend.writeWhileStopped(key, 'mode: after');
    await backend.startAgain();
    await source.next(down + 1, (u) => u.ok, 'the document after the backend is back', 15_000);
    expect(source.updates.map((u) => u.update)).toEqual([
      { ok: false, error: expect.any(ConfigSourceError) },
      { ok: true, value: { mode: 'after' } },
    ]);

    // And the watch works again.
    await backend.put(key, 'mode: watched again');
    await source.next(2, (u) => (valueOf(u) as { mode?: string })?.mode === 'watched again', 'a change after the outage', 5000);
  }, 60_000);

  it('feeds DynamicConfigModule: DynamicConfigService.get() shows the value in the backend, and its changes', async () => {
    const key = `${backend.root}module.yaml`;
    await backend.put(key, 'limits:\n  rps: 100\n');
    const source = backend.source({ key }, systemClock);
    started.push(source);
    const schema = z.object({ limits: z.object({ rps: z.number().int().positive() }) });
    @Module({ imports: [DynamicConfigModule.forRoot({ schema, sources: [source], reloadSignal: false })] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule as Type<unknown>, { logger: false });
    try {
      const config = app.get<DynamicConfigService<z.output<typeof schema>>>(DynamicConfigService);
      expect(config.get('limits')).toEqual({ rps: 100 });
      await backend.put(key, 'limits:\n  rps: 300\n');
      await waitUntil(() => config.get('limits').rps === 300, 'the service to apply the change', 5000, 5);
      // An invalid value is read (reload() reads the source again) and rejected: the last good one stays.
      await backend.put(key, 'limits:\n  rps: -1\n');
      expect(await config.reload()).toMatchObject({ result: 'rejected' });
      expect(config.get('limits')).toEqual({ rps: 300 });
    } finally {
      await app.close();
    }
  });
});

describe('the consul source with ACLs', () => {
  it('reports a prefix its token may read only in part as unavailable, not as a document without those keys', async () => {
    const token = 'tok-partial-7f3a';
    const server = await ConsulTestServer.start({
      acl: { defaultPolicy: 'deny', tokens: { [token]: { key_prefix: { 'acl-e2e/': 'read', 'acl-e2e/secret/': 'deny' } } } },
    });
    const source = consulKvSource({
      url: server.url,
      prefix: 'acl-e2e/',
      token,
      ...TIMINGS,
      waitMs: 5000,
      minQueryIntervalMs: 50,
      clock: systemClock,
    });
    try {
      server.setKey('acl-e2e/limits/rps', '100');
      server.setKey('acl-e2e/secret/password', 'hunter2');
      const updates: ConfigSourceUpdate[] = [];
      const first = await source.start((update) => updates.push(update));
      expect(first).toMatchObject({
        ok: false,
        error: { code: 'CONFIG_SOURCE_UNAVAILABLE', message: expect.stringContaining('key:read') },
      });
      expect(JSON.stringify(first)).not.toContain(token);

      server.setAclRules(token, { key_prefix: { 'acl-e2e/': 'read' } });
      await waitUntil(() => updates.some((u) => u.ok), 'the whole document once the token may read every key', 10_000);
      expect(updates.find((u) => u.ok)).toEqual({ ok: true, value: { limits: { rps: 100 }, secret: { password: 'hunter2' } } });
    } finally {
      await source.stop();
      await server.destroy();
    }
  }, 30_000);
});
