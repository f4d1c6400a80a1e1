import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LifecycleModule, METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import { Registry } from 'prom-client';
import { METRICS_OPTIONS, METRICS_REGISTRY } from './metrics.constants';
import { MetricsOptionsError } from './metrics.errors';
import { MetricsModule } from './metrics.module';
import type { MetricsOptionsFactory } from './metrics.module-definition';
import type { MetricsModuleOptions, ResolvedMetricsOptions } from './metrics.options';
import { MetricsService } from './metrics.service';
import { RpcMetricsInterceptor } from './rpc-metrics.interceptor';

const REGISTRY = new Registry();
const CUSTOM: MetricsModuleOptions = {
  registry: REGISTRY,
  defaultMetrics: false,
  http: true,
  buckets: [0.01, 0.1, 1],
  excludeRoutes: ['/health/live'],
  maxSeriesPerMetric: 50,
  serveOnAppPort: false,
  track: 'canary',
  commit: '3f2c1ab',
};
const CUSTOM_RESOLVED: ResolvedMetricsOptions = {
  registry: REGISTRY,
  defaultMetrics: false,
  defaultMetricsPrefix: '',
  http: true,
  buckets: [0.01, 0.1, 1],
  excludeRoutes: ['/health/live'],
  maxSeriesPerMetric: 50,
  serveOnAppPort: false,
  track: 'canary',
  commit: '3f2c1ab',
};

const BUCKETS = 'TEST:BUCKETS';
@Injectable()
class MetricsConfig implements MetricsOptionsFactory {
  createMetricsOptions(): MetricsModuleOptions {
    return CUSTOM;
  }
}
@Module({ providers: [MetricsConfig, { provide: BUCKETS, useValue: [0.01, 0.1, 1] }], exports: [MetricsConfig, BUCKETS] })
class ConfigModule {}

async function resolvedOptions(metrics: ReturnType<typeof MetricsModule.forRoot>): Promise<ResolvedMetricsOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), metrics] }).compile();
  try {
    return moduleRef.get<ResolvedMetricsOptions>(METRICS_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

describe('MetricsModule', () => {
  const env = { ...process.env };
  beforeEach(() => {
    delete process.env.APP_TRACK;
    delete process.env.APP_COMMIT;
  });
  afterAll(() => {
    process.env = env;
  });

  it('forRoot() resolves the documented defaults', async () => {
    const resolved = await resolvedOptions(MetricsModule.forRoot());
    expect(resolved).toEqual({
      registry: expect.any(Registry),
      defaultMetrics: true,
      defaultMetricsPrefix: '',
      http: true,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      excludeRoutes: [],
      maxSeriesPerMetric: 1000,
      serveOnAppPort: true,
      track: 'stable',
      commit: 'unknown',
    });
    expect(resolved.registry).toBe((await import('prom-client')).register);
  });

  it('forRoot(options) resolves custom options', async () => {
    expect(await resolvedOptions(MetricsModule.forRoot(CUSTOM))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useFactory, inject }) resolves options built from injected providers', async () => {
    let injected: unknown;
    const metrics = MetricsModule.forRootAsync({
      imports: [ConfigModule],
      inject: [BUCKETS],
      useFactory: (buckets: number[]) => {
        injected = buckets;
        return { ...CUSTOM, buckets };
      },
    });
    expect(await resolvedOptions(metrics)).toEqual(CUSTOM_RESOLVED);
    expect(injected).toEqual([0.01, 0.1, 1]);
  });

  it('forRootAsync({ useClass }) resolves the options of the factory class', async () => {
    expect(await resolvedOptions(MetricsModule.forRootAsync({ useClass: MetricsConfig }))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useExisting }) resolves the options of an existing provider', async () => {
    expect(await resolvedOptions(MetricsModule.forRootAsync({ imports: [ConfigModule], useExisting: MetricsConfig }))).toEqual(
      CUSTOM_RESOLVED,
    );
  });

  it('fails at boot with every problem named, also through forRootAsync', async () => {
    const metrics = MetricsModule.forRootAsync({ useFactory: () => ({ maxSeriesPerMetric: -1, buckets: [2, 1] }) });
    const compiling = Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), metrics] }).compile();
    await expect(compiling).rejects.toBeInstanceOf(MetricsOptionsError);
    await expect(compiling).rejects.toMatchObject({
      code: 'METRICS_INVALID_OPTIONS',
      problems: [
        expect.stringMatching(/^buckets\[1\]: must be greater than buckets\[0\]/),
        expect.stringMatching(/^maxSeriesPerMetric: must be/),
      ],
    });
    await expect(compiling).rejects.toThrow(/Invalid MetricsModule options \(fix each and restart\):\n {2}- buckets/);
  });

  it('rejects an invalid path when the module is defined', () => {
    expect(() => MetricsModule.forRoot({ path: 'a b' })).toThrow(MetricsOptionsError);
    expect(() => MetricsModule.forRootAsync({ path: '', useFactory: () => ({}) })).toThrow(/path: must be a URL path/);
  });

  it('mounts its scrape controller under the path extra, a class per module instance', () => {
    const plain = MetricsModule.forRoot();
    const custom = MetricsModule.forRoot({ path: '/ops/metrics' });
    expect(Reflect.getMetadata('path', plain.controllers![0])).toBe('metrics');
    expect(Reflect.getMetadata('path', custom.controllers![0])).toBe('ops/metrics');
    expect(plain.controllers![0]).not.toBe(custom.controllers![0]);
  });

  it('is global unless told otherwise', () => {
    expect(MetricsModule.forRoot().global).toBe(true);
    expect(MetricsModule.forRoot({ isGlobal: false }).global).toBe(false);
  });

  it('exports the registry, the publisher (the service itself) and the RPC interceptor', async () => {
    const registry = new Registry();
    const moduleRef = await Test.createTestingModule({
      imports: [LifecycleModule.forRoot({}), MetricsModule.forRoot({ registry })],
    }).compile();
    try {
      expect(moduleRef.get(METRICS_REGISTRY)).toBe(registry);
      expect(moduleRef.get(METRICS_PUBLISHER)).toBe(moduleRef.get(MetricsService));
      expect(moduleRef.get(MetricsService).registry).toBe(registry);
      expect(moduleRef.get(RpcMetricsInterceptor)).toBeInstanceOf(RpcMetricsInterceptor);
    } finally {
      await moduleRef.close();
    }
  });
});
