import { DynamicModule, Logger, Module } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import {
  LIFECYCLE_OPTIONS,
  LIFECYCLE_PROCESS,
  LifecycleModule,
  LifecycleService,
  LifecycleState,
  ManualClock,
  ManualProcess,
  METRICS_PUBLISHER,
  resolveLifecycleOptions,
  settle,
} from '@nest-rollout/lifecycle';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { DYNAMIC_CONFIG_CLOCK, DynamicConfigEvent, DynamicConfigMetric } from '../config.constants';
import { DynamicConfigNotLoadedError, InvalidConfigError } from '../config.errors';
import { FakeMetrics } from '../testing/fake-metrics.spec-helper';
import { MemorySource } from '../testing/memory-source.spec-helper';
import { DynamicConfigModule } from './dynamic-config.module';
import type { DynamicConfigModuleOptions } from './dynamic-config.options';
import { DynamicConfigService } from './dynamic-config.service';
import type { ConfigChange } from './dynamic-config.types';

const schema = z.object({
  limits: z.object({ rps: z.number().int().positive(), burst: z.number().int().default(10) }),
  degrade: z.object({ orders_list: z.boolean().default(false), search: z.boolean().default(false) }).prefault({}),
  db: z.object({ host: z.string(), password: z.string().min(12) }).optional(),
});
type AppConfig = z.output<typeof schema>;

const GOOD = { limits: { rps: 100 } };

/** Provides what another module would, globally: MetricsModule's publisher, LifecycleModule's options. */
@Module({})
class ProvidedElsewhere {
  static with(providers: { provide: string; useValue: unknown }[]): DynamicModule {
    return { module: ProvidedElsewhere, global: true, providers, exports: providers.map((p) => p.provide) };
  }
}

interface Setup<T = AppConfig> {
  moduleRef: TestingModule;
  config: DynamicConfigService<T>;
  process: ManualProcess;
  metrics: FakeMetrics;
  clock: ManualClock;
  changes: ConfigChange<T>[];
}

async function compile(
  options: Partial<DynamicConfigModuleOptions>,
  { imports = [], metrics = new FakeMetrics() }: { imports?: DynamicModule[]; metrics?: FakeMetrics | null } = {},
): Promise<Omit<Setup, 'config' | 'changes'>> {
  const process = new ManualProcess();
  const clock = new ManualClock();
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...imports,
      ...(metrics ? [ProvidedElsewhere.with([{ provide: METRICS_PUBLISHER, useValue: metrics }])] : []),
      DynamicConfigModule.forRoot({ schema, ...options }),
    ],
  })
    .overrideProvider(LIFECYCLE_PROCESS)
    .useValue(process)
    .overrideProvider(DYNAMIC_CONFIG_CLOCK)
    .useValue(clock)
    .compile();
  return { moduleRef, process, metrics: metrics ?? new FakeMetrics(), clock };
}

const open: TestingModule[] = [];

async function boot(options: Partial<DynamicConfigModuleOptions>, extra?: Parameters<typeof compile>[1]): Promise<Setup> {
  const compiled = await compile(options, extra);
  open.push(compiled.moduleRef);
  await compiled.moduleRef.init();
  const config = compiled.moduleRef.get<DynamicConfigService<AppConfig>>(DynamicConfigService);
  const changes: ConfigChange<AppConfig>[] = [];
  config.changes$.subscribe((change) => changes.push(change));
  logged.length = 0;
  return { ...compiled, config, changes };
}

const logged: Record<string, unknown>[] = [];
beforeEach(() => {
  logged.length = 0;
  for (const level of ['log', 'warn', 'error'] as const) {
    jest.spyOn(Logger.prototype, level).mockImplementation((message: unknown, ..._rest: unknown[]): void => {
      logged.push({ level, ...(message as Record<string, unknown>) });
    });
  }
});
afterEach(async () => {
  for (const moduleRef of open.splice(0)) await moduleRef.close();
  jest.restoreAllMocks();
});
const events = (name: string) => logged.filter((line) => line.event === name);
const configEvents = () => logged.filter((line) => typeof line.event === 'string' && line.event.startsWith('config.'));

describe('DynamicConfigService at start-up', () => {
  it('starts every source and serves the first merged document, validated and frozen, from onModuleInit on', async () => {
    const source = new MemorySource(GOOD);
    const { moduleRef } = await compile({ sources: [source] });
    open.push(moduleRef);
    const config = moduleRef.get<DynamicConfigService<AppConfig>>(DynamicConfigService);
    expect(() => config.get()).toThrow(DynamicConfigNotLoadedError);

    await moduleRef.init();
    expect(source.started).toBe(1);
    expect(config.get()).toEqual({ limits: { rps: 100, burst: 10 }, degrade: { orders_list: false, search: false } });
    expect(config.get('limits').rps).toBe(100);
    expect(config.version).toMatch(/^[0-9a-f]{12}$/);
    expect(Object.isFrozen(config.get())).toBe(true);
    expect(Object.isFrozen(config.get('limits'))).toBe(true);
    expect(events(DynamicConfigEvent.LOADED)).toEqual([
      expect.objectContaining({ level: 'log', version: config.version, sources: ['memory:test'], keys: ['degrade', 'limits'] }),
    ]);
  });

  it('returns the same snapshot on every call: no parsing, no copy on the hot path', async () => {
    const { config } = await boot({ sources: [new MemorySource(GOOD)] });
    expect(config.get()).toBe(config.get());
    expect(config.get('degrade')).toBe(config.get().degrade);
  });

  it('fails the start-up with InvalidConfigError naming every problem of an invalid document, and stops its sources', async () => {
    const source = new MemorySource({ limits: { rps: -1, burst: 'many' } });
    const { moduleRef } = await compile({ sources: [source] });
    open.push(moduleRef);
    const init = moduleRef.init();
    await expect(init).rejects.toBeInstanceOf(InvalidConfigError);
    await expect(init).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      source: 'memory:test',
      problems: [expect.stringMatching(/^limits\.rps: /), expect.stringMatching(/^limits\.burst: /)],
    });
    expect(source.stopped).toBe(1);
    expect(() => moduleRef.get(DynamicConfigService).get()).toThrow(DynamicConfigNotLoadedError);
  });

  it('fails the start-up when a source has no document, naming it, rather than running half-configured', async () => {
    const present = new MemorySource(GOOD);
    const missing = new MemorySource(undefined, { kind: 'file', location: 'config/dynamic.yaml' });
    missing.fail('missing', 'config/dynamic.yaml: no such file');
    const { moduleRef } = await compile({ sources: [present, missing] });
    open.push(moduleRef);
    await expect(moduleRef.init()).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      source: 'memory:test, config/dynamic.yaml',
      problems: ['config/dynamic.yaml: no such file'],
    });
    expect(present.stopped).toBe(1);
    expect(missing.stopped).toBe(1);
  });

  it('counts a source that throws from start(), against its contract, as unavailable', async () => {
    const broken = new MemorySource(GOOD, { kind: 'etcd', location: 'etcd:/config/orders/' });
    broken.start = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:2379'));
    const { moduleRef } = await compile({ sources: [broken] });
    open.push(moduleRef);
    await expect(moduleRef.init()).rejects.toMatchObject({ problems: ['etcd:/config/orders/: connect ECONNREFUSED 127.0.0.1:2379'] });
  });
});

describe('DynamicConfigService on an update', () => {
  it('applies a valid change: new snapshot and version, one change event, one log line, counted', async () => {
    const source = new MemorySource(GOOD);
    const { config, changes, metrics } = await boot({ sources: [source] });
    const before = config.get();
    const versionBefore = config.version;

    source.push({ limits: { rps: 50 }, degrade: { orders_list: true } });
    await settle();

    expect(config.get()).toEqual({ limits: { rps: 50, burst: 10 }, degrade: { orders_list: true, search: false } });
    expect(config.version).not.toBe(versionBefore);
    expect(changes).toEqual([
      {
        previous: before,
        current: config.get(),
        version: config.version,
        changedKeys: ['degrade.orders_list', 'limits.rps'],
        source: 'memory',
      },
    ]);
    expect(configEvents()).toEqual([
      {
        level: 'log',
        event: DynamicConfigEvent.APPLIED,
        version: config.version,
        previousVersion: versionBefore,
        source: 'memory',
        location: 'memory:test',
        changedKeys: ['degrade.orders_list', 'limits.rps'],
        values: { 'degrade.orders_list': true, 'limits.rps': 50 },
      },
    ]);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'memory', result: 'applied' })).toBe(1);
  });

  it('emits watch(key) with the value now, then only when an applied change alters that key', async () => {
    const source = new MemorySource(GOOD);
    const { config } = await boot({ sources: [source] });
    const limits: unknown[] = [];
    const degrade: unknown[] = [];
    config.watch('limits').subscribe((value) => limits.push(value));
    config.watch('degrade').subscribe((value) => degrade.push(value));

    source.push({ limits: { rps: 50 } });
    await settle();
    source.push({ limits: { rps: 50 }, degrade: { search: true } });
    await settle();

    expect(limits).toEqual([
      { rps: 100, burst: 10 },
      { rps: 50, burst: 10 },
    ]);
    expect(degrade).toEqual([
      { orders_list: false, search: false },
      { orders_list: false, search: true },
    ]);
  });

  it('treats an update that validates to the configuration in force as unchanged: no event, no log line', async () => {
    const source = new MemorySource(GOOD);
    const { config, changes, metrics } = await boot({ sources: [source] });
    const snapshot = config.get();
    // Written differently (defaults spelt out, keys reordered), the same configuration.
    source.push({ degrade: { search: false }, limits: { burst: 10, rps: 100 } });
    await settle();
    expect(config.get()).toBe(snapshot);
    expect(changes).toEqual([]);
    expect(configEvents()).toEqual([]);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'memory', result: 'unchanged' })).toBe(1);
  });

  it('rejects a change that violates the schema: one log line, counted, the last good configuration stays in force', async () => {
    const source = new MemorySource(GOOD);
    const { config, changes, metrics } = await boot({ sources: [source] });
    const snapshot = config.get();
    const version = config.version;

    source.push({ limits: { rps: 'fast' } });
    await settle();

    expect(config.get()).toBe(snapshot);
    expect(config.version).toBe(version);
    expect(changes).toEqual([]);
    expect(configEvents()).toEqual([
      {
        level: 'warn',
        event: DynamicConfigEvent.REJECTED,
        source: 'memory',
        location: 'memory:test',
        version,
        problems: [expect.stringMatching(/^limits\.rps: /)],
      },
    ]);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'memory', result: 'rejected' })).toBe(1);
  });

  it('keeps the last good layer of a source whose update was rejected when another source changes', async () => {
    const base = new MemorySource({ limits: { rps: 100 }, degrade: { search: false } }, { kind: 'file', location: 'base.yaml' });
    const override = new MemorySource({}, { kind: 'consul', location: 'consul:config/orders' });
    const { config } = await boot({ sources: [base, override] });

    base.push({ limits: { rps: 0 } });
    await settle();
    override.push({ degrade: { search: true } });
    await settle();

    expect(config.get()).toEqual({ limits: { rps: 100, burst: 10 }, degrade: { orders_list: false, search: true } });
  });

  it('logs a source that fails once, counts each failure, keeps its last good layer, and logs its recovery', async () => {
    const base = new MemorySource({ limits: { rps: 100 } }, { kind: 'file', location: 'base.yaml' });
    const remote = new MemorySource({ limits: { burst: 99 } }, { kind: 'etcd', location: 'etcd:/config/orders/' });
    const { config, changes, metrics } = await boot({ sources: [base, remote] });
    const snapshot = config.get();

    remote.fail('unavailable', 'etcd:/config/orders/: connection refused');
    await settle();
    remote.fail('unavailable', 'etcd:/config/orders/: connection refused');
    await settle();
    expect(config.get()).toBe(snapshot);
    expect(events(DynamicConfigEvent.SOURCE_FAILED)).toEqual([
      {
        level: 'warn',
        event: DynamicConfigEvent.SOURCE_FAILED,
        source: 'etcd',
        location: 'etcd:/config/orders/',
        failure: 'unavailable',
        error: 'etcd:/config/orders/: connection refused',
        version: config.version,
      },
    ]);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'etcd', result: 'failed' })).toBe(2);

    // Meanwhile another layer changes: the failed one still contributes its last good document.
    base.push({ limits: { rps: 70 } });
    await settle();
    expect(config.get('limits')).toEqual({ rps: 70, burst: 99 });

    remote.push({ limits: { burst: 5 } });
    await settle();
    expect(events(DynamicConfigEvent.SOURCE_RECOVERED)).toEqual([
      { level: 'log', event: DynamicConfigEvent.SOURCE_RECOVERED, source: 'etcd', location: 'etcd:/config/orders/' },
    ]);
    expect(config.get('limits')).toEqual({ rps: 70, burst: 5 });
    expect(changes.map((change) => change.source)).toEqual(['file', 'etcd']);
  });

  it('merges layers in order: later sources override earlier ones, whichever of them changes', async () => {
    const base = new MemorySource({ limits: { rps: 100, burst: 20 }, degrade: { search: true } }, { kind: 'file', location: 'base.yaml' });
    const override = new MemorySource({ limits: { rps: 10 } }, { kind: 'consul', location: 'consul:config/orders' });
    const { config, changes } = await boot({ sources: [base, override] });
    expect(config.get('limits')).toEqual({ rps: 10, burst: 20 });

    // A change of the earlier layer under a key the later one sets changes nothing.
    base.push({ limits: { rps: 200, burst: 20 }, degrade: { search: true } });
    await settle();
    expect(config.get('limits')).toEqual({ rps: 10, burst: 20 });
    expect(changes).toEqual([]);

    base.push({ limits: { rps: 200, burst: 30 }, degrade: { search: true } });
    await settle();
    expect(config.get('limits')).toEqual({ rps: 10, burst: 30 });
    expect(changes.map((change) => change.changedKeys)).toEqual([['limits.burst']]);
  });

  it('handles updates one at a time, in the order they arrive, even when validation is slow', async () => {
    let releaseFirst: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (releaseFirst = resolve));
    const slow: StandardSchemaV1<unknown, { rps: number }> = {
      '~standard': {
        version: 1,
        vendor: 'spec',
        validate: async (value) => {
          const rps = (value as { rps: number }).rps;
          if (rps === 2) await gate;
          return { value: { rps } };
        },
      },
    };
    const source = new MemorySource({ rps: 1 });
    const { config } = await boot({ schema: slow, sources: [source] });
    const seen: unknown[] = [];
    config.changes$.subscribe((change) => seen.push(change.current));

    source.push({ rps: 2 });
    source.push({ rps: 3 });
    await settle();
    expect(config.get()).toEqual({ rps: 1 });
    releaseFirst();
    await settle();
    expect(seen).toEqual([{ rps: 2 }, { rps: 3 }]);
    expect(config.get()).toEqual({ rps: 3 });
  });
});

describe('DynamicConfigService and secrets', () => {
  it('masks the values of secret keys in the applied log line, and secret values quoted in problems', async () => {
    const source = new MemorySource({ ...GOOD, db: { host: 'db-1', password: 'initial-password' } });
    const { config } = await boot({ sources: [source], secretKeys: ['db.password'] });

    source.push({ ...GOOD, db: { host: 'db-2', password: 'rotated-password' } });
    await settle();
    expect(config.get('db')?.password).toBe('rotated-password');
    expect(events(DynamicConfigEvent.APPLIED)).toEqual([
      expect.objectContaining({ changedKeys: ['db.host', 'db.password'], values: { 'db.host': 'db-2', 'db.password': '***' } }),
    ]);

    const quoting: StandardSchemaV1 = {
      '~standard': {
        version: 1,
        vendor: 'spec',
        validate: (value) => ({
          issues: [{ message: `"${(value as AppConfig).db?.password}" is not allowed`, path: ['db', { key: 'password' }] }],
        }),
      },
    };
    const other = new MemorySource({ db: { host: 'db-3', password: 'rotated-password' } });
    const { moduleRef } = await compile({ schema: quoting, sources: [other], secretKeys: ['db.password'] });
    open.push(moduleRef);
    await expect(moduleRef.init()).rejects.toMatchObject({ problems: ['db.password: "***" is not allowed'] });
    expect(JSON.stringify(logged)).not.toContain('rotated-password');
  });

  it('masks a secret inside a whole object that appears or disappears', async () => {
    const source = new MemorySource(GOOD);
    await boot({ sources: [source], secretKeys: ['db.password'] });
    source.push({ ...GOOD, db: { host: 'db-1', password: 'initial-password' } });
    await settle();
    expect(events(DynamicConfigEvent.APPLIED)).toEqual([
      expect.objectContaining({ changedKeys: ['db'], values: { db: { host: 'db-1', password: '***' } } }),
    ]);
  });
});

describe('DynamicConfigService.reload() and the reload signal', () => {
  it('reads every source again and applies the merge, reporting the outcome', async () => {
    const base = new MemorySource(GOOD, { kind: 'file', location: 'base.yaml' });
    const remote = new MemorySource({}, { kind: 'etcd', location: 'etcd:/config/orders/' });
    const { config, changes, metrics } = await boot({ sources: [base, remote] });

    expect(await config.reload()).toEqual({ result: 'unchanged', version: config.version });

    base.set({ limits: { rps: 30 } });
    const applied = await config.reload();
    expect(applied).toEqual({ result: 'applied', version: config.version, changedKeys: ['limits.rps'] });
    expect(changes.map((change) => change.source)).toEqual(['reload']);
    expect([base.reloads, remote.reloads]).toEqual([2, 2]);

    base.set({ limits: { rps: 0 } });
    expect(await config.reload()).toEqual({
      result: 'rejected',
      version: config.version,
      problems: [expect.stringMatching(/^limits\.rps: /)],
    });
    expect(config.get('limits').rps).toBe(30);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'reload', result: 'applied' })).toBe(1);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'reload', result: 'rejected' })).toBe(1);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'reload', result: 'unchanged' })).toBe(1);
  });

  it('keeps the last good layer of a source that cannot be read during a reload, logging and counting it', async () => {
    const base = new MemorySource(GOOD, { kind: 'file', location: 'base.yaml' });
    const remote = new MemorySource({ limits: { burst: 7 } }, { kind: 'etcd', location: 'etcd:/config/orders/' });
    const { config, metrics } = await boot({ sources: [base, remote] });
    remote.reload = () => Promise.reject(new Error('deadline exceeded'));
    base.set({ limits: { rps: 40 } });

    expect(await config.reload()).toMatchObject({ result: 'applied', changedKeys: ['limits.rps'] });
    expect(config.get('limits')).toEqual({ rps: 40, burst: 7 });
    expect(events(DynamicConfigEvent.SOURCE_FAILED)).toEqual([
      expect.objectContaining({ source: 'etcd', failure: 'unavailable', error: 'etcd:/config/orders/: deadline exceeded' }),
    ]);
    expect(metrics.value(DynamicConfigMetric.RELOADS_TOTAL, { source: 'etcd', result: 'failed' })).toBe(1);
  });

  it('reloads on SIGHUP and never starts a shutdown', async () => {
    const source = new MemorySource(GOOD);
    const { config, process, moduleRef } = await boot(
      { sources: [source] },
      { imports: [LifecycleModule.forRoot({ minReadyDelayMs: 0 })] },
    );
    const lifecycle = moduleRef.get(LifecycleService);
    source.set({ limits: { rps: 5 } });

    process.emit('SIGHUP');
    await settle();

    expect(source.reloads).toBe(1);
    expect(config.get('limits').rps).toBe(5);
    expect(events(DynamicConfigEvent.RELOAD_SIGNAL)).toEqual([expect.objectContaining({ signal: 'SIGHUP' })]);
    expect(events(DynamicConfigEvent.APPLIED)).toEqual([expect.objectContaining({ source: 'reload' })]);
    expect([LifecycleState.DRAINING, LifecycleState.STOPPING, LifecycleState.STOPPED]).not.toContain(lifecycle.state);
    expect(process.exitCodes).toEqual([]);
  });

  it('leaves SIGHUP to the lifecycle, with a warning, when it is one of the lifecycle’s shutdown signals', async () => {
    const lifecycleOptions = resolveLifecycleOptions({ signals: ['SIGTERM', 'SIGHUP'] });
    const source = new MemorySource(GOOD);
    const { process } = await compile(
      { sources: [source] },
      { imports: [ProvidedElsewhere.with([{ provide: LIFECYCLE_OPTIONS, useValue: lifecycleOptions }])] },
    ).then(async (compiled) => {
      open.push(compiled.moduleRef);
      await compiled.moduleRef.init();
      return compiled;
    });
    expect(process.listenerCount('SIGHUP')).toBe(0);
    expect(events(DynamicConfigEvent.RELOAD_SIGNAL_CONFLICT)).toEqual([expect.objectContaining({ level: 'warn', signal: 'SIGHUP' })]);
  });

  it('listens to no signal with reloadSignal: false, and to SIGUSR2 when told', async () => {
    const off = await boot({ sources: [new MemorySource(GOOD)], reloadSignal: false });
    expect(off.process.listenerCount('SIGHUP')).toBe(0);
    const usr2 = await boot({ sources: [new MemorySource(GOOD)], reloadSignal: 'SIGUSR2' });
    expect(usr2.process.listenerCount('SIGHUP')).toBe(0);
    expect(usr2.process.listenerCount('SIGUSR2')).toBe(1);
  });
});

describe('DynamicConfigService at shutdown', () => {
  it('stops its sources, stops listening to SIGHUP, completes changes$ and ignores later updates', async () => {
    const source = new MemorySource(GOOD);
    const { config, process, moduleRef, changes } = await boot({ sources: [source] });
    let completed = false;
    config.changes$.subscribe({ complete: () => (completed = true) });
    const push = source.push.bind(source);
    expect(process.listenerCount('SIGHUP')).toBe(1);

    await moduleRef.close();
    open.splice(open.indexOf(moduleRef), 1);

    expect(source.stopped).toBe(1);
    expect(process.listenerCount('SIGHUP')).toBe(0);
    expect(completed).toBe(true);
    push({ limits: { rps: 1 } });
    await settle();
    expect(changes).toEqual([]);
    expect(config.get('limits').rps).toBe(100);
    expect(await config.reload()).toEqual({ result: 'unchanged', version: config.version });
    expect(source.reloads).toBe(0);
  });

  it('logs a source that fails to stop and still stops the others', async () => {
    const failing = new MemorySource(GOOD, { kind: 'etcd', location: 'etcd:/config/orders/' });
    failing.stop = () => Promise.reject(new Error('watcher already closed'));
    const other = new MemorySource({});
    const { moduleRef } = await boot({ sources: [failing, other] });
    await moduleRef.close();
    open.splice(open.indexOf(moduleRef), 1);
    expect(other.stopped).toBe(1);
    expect(events(DynamicConfigEvent.SOURCE_STOP_FAILED)).toEqual([
      expect.objectContaining({ level: 'warn', source: 'etcd', error: expect.objectContaining({ message: 'watcher already closed' }) }),
    ]);
  });
});

describe('DynamicConfigService metrics', () => {
  it('publishes the version in force as config_info and the time of the last good reload', async () => {
    const source = new MemorySource(GOOD);
    const { config, metrics, clock } = await boot({ sources: [source] });
    expect(metrics.scrape(DynamicConfigMetric.INFO)).toEqual([{ labels: { hash: config.version }, value: 1 }]);
    expect(metrics.value(DynamicConfigMetric.LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS)).toBe(clock.now() / 1000);

    await clock.advance(60_000);
    source.push({ limits: { rps: 1 } });
    await settle();
    expect(metrics.scrape(DynamicConfigMetric.INFO)).toEqual([{ labels: { hash: config.version }, value: 1 }]);
    expect(metrics.value(DynamicConfigMetric.LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS)).toBe(clock.now() / 1000);

    // A rejected update leaves both as they were.
    const acceptedAt = clock.now() / 1000;
    await clock.advance(60_000);
    source.push({ limits: { rps: -1 } });
    await settle();
    expect(metrics.value(DynamicConfigMetric.LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS)).toBe(acceptedAt);
  });

  it('works unmetered without MetricsModule', async () => {
    const source = new MemorySource(GOOD);
    const { config } = await boot({ sources: [source] }, { metrics: null });
    source.push({ limits: { rps: 2 } });
    await settle();
    expect(config.get('limits').rps).toBe(2);
  });

  it('stops reading config_info at shutdown', async () => {
    const { moduleRef, metrics } = await boot({ sources: [new MemorySource(GOOD)] });
    expect(metrics.observing(DynamicConfigMetric.INFO)).toBe(true);
    await moduleRef.close();
    open.splice(open.indexOf(moduleRef), 1);
    expect(metrics.observing(DynamicConfigMetric.INFO)).toBe(false);
  });
});

describe('DynamicConfigService with any Standard Schema', () => {
  /** No library at all: what valibot, arktype and the others implement. */
  const handWritten: StandardSchemaV1<unknown, { rps: number; mode: 'on' | 'off' }> = {
    '~standard': {
      version: 1,
      vendor: 'hand-written',
      validate: async (value) => {
        const input = value as { rps?: unknown; mode?: unknown };
        const issues: StandardSchemaV1.Issue[] = [];
        if (typeof input.rps !== 'number') issues.push({ message: 'must be a number', path: [{ key: 'rps' }] });
        if (input.mode !== undefined && input.mode !== 'on' && input.mode !== 'off')
          issues.push({ message: 'must be on or off', path: ['mode'] });
        if (issues.length > 0) return { issues };
        return { value: { rps: input.rps as number, mode: (input.mode as 'on' | 'off' | undefined) ?? 'off' } };
      },
    },
  };

  it('boots, applies and rejects with a hand-written asynchronous Standard Schema, as with zod', async () => {
    const source = new MemorySource({ rps: 1 });
    const { config } = await boot({ schema: handWritten, sources: [source] });
    const typed = config as unknown as DynamicConfigService<{ rps: number; mode: 'on' | 'off' }>;
    expect(typed.get()).toEqual({ rps: 1, mode: 'off' });

    source.push({ rps: 2, mode: 'on' });
    await settle();
    expect(typed.get()).toEqual({ rps: 2, mode: 'on' });

    source.push({ rps: 'x', mode: 'sideways' });
    await settle();
    expect(typed.get()).toEqual({ rps: 2, mode: 'on' });
    expect(events(DynamicConfigEvent.REJECTED)).toEqual([
      expect.objectContaining({ problems: ['rps: must be a number', 'mode: must be on or off'] }),
    ]);
  });

  it('rejects, without crashing, when a schema throws instead of returning issues', async () => {
    const throwing: StandardSchemaV1 = {
      '~standard': {
        version: 1,
        vendor: 'spec',
        validate: (value) => {
          if ((value as { boom?: boolean }).boom) throw new Error('kaboom');
          return { value };
        },
      },
    };
    const source = new MemorySource({ rps: 1 });
    const { config } = await boot({ schema: throwing, sources: [source] });
    source.push({ boom: true });
    await settle();
    expect(config.get()).toEqual({ rps: 1 });
    expect(events(DynamicConfigEvent.REJECTED)).toEqual([expect.objectContaining({ problems: ["the schema's validate threw: kaboom"] })]);
  });
});
