import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { HEALTH_OPTIONS } from './health.constants';
import { HealthOptionsError } from './health.errors';
import { HealthModule } from './health.module';
import type { HealthOptionsFactory } from './health.module-definition';
import type { HealthModuleOptions, ResolvedHealthOptions } from './health.options';

const run = () => undefined;
const CUSTOM: HealthModuleOptions = {
  exposeState: false,
  intervalMs: 2000,
  timeoutMs: 400,
  failureThreshold: 2,
  successThreshold: 3,
  readiness: [{ name: 'db', dependency: 'postgres', run }],
  management: { port: 9464, host: '127.0.0.1' },
  redact: ['hunter22'],
  grpcServices: ['orders.v1.Orders'],
};
const CUSTOM_RESOLVED: ResolvedHealthOptions = {
  exposeState: false,
  intervalMs: 2000,
  timeoutMs: 400,
  maxAgeMs: undefined,
  failureThreshold: 2,
  successThreshold: 3,
  readiness: [
    {
      name: 'db',
      dependency: 'postgres',
      run,
      critical: true,
      intervalMs: 2000,
      timeoutMs: 400,
      maxAgeMs: 12_400,
      failureThreshold: 2,
      successThreshold: 3,
    },
  ],
  management: { port: 9464, host: '127.0.0.1', alsoOnAppPort: false, routes: [] },
  redact: ['hunter22'],
  grpcServices: ['orders.v1.Orders'],
};

const POOL = 'TEST:POOL';
@Injectable()
class HealthConfig implements HealthOptionsFactory {
  createHealthOptions(): HealthModuleOptions {
    return CUSTOM;
  }
}
@Module({ providers: [HealthConfig, { provide: POOL, useValue: { name: 'pool' } }], exports: [HealthConfig, POOL] })
class ConfigModule {}

async function resolvedOptions(health: ReturnType<typeof HealthModule.forRoot>): Promise<ResolvedHealthOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), health] }).compile();
  try {
    return moduleRef.get<ResolvedHealthOptions>(HEALTH_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

describe('HealthModule', () => {
  it('forRoot() resolves the documented defaults', async () => {
    expect(await resolvedOptions(HealthModule.forRoot())).toEqual({
      exposeState: true,
      readiness: [],
      intervalMs: 5000,
      timeoutMs: 1000,
      maxAgeMs: undefined,
      failureThreshold: 1,
      successThreshold: 1,
      management: undefined,
      redact: [],
      grpcServices: [],
    });
  });

  it('forRoot(options) resolves custom options', async () => {
    expect(await resolvedOptions(HealthModule.forRoot(CUSTOM))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useFactory, inject }) resolves options built from injected providers', async () => {
    let injected: unknown;
    const health = HealthModule.forRootAsync({
      imports: [ConfigModule],
      inject: [POOL],
      useFactory: (pool: unknown) => {
        injected = pool;
        return CUSTOM;
      },
    });
    expect(await resolvedOptions(health)).toEqual(CUSTOM_RESOLVED);
    expect(injected).toEqual({ name: 'pool' });
  });

  it('forRootAsync({ useClass }) resolves the options of the factory class', async () => {
    expect(await resolvedOptions(HealthModule.forRootAsync({ useClass: HealthConfig }))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useExisting }) resolves the options of an existing provider', async () => {
    expect(await resolvedOptions(HealthModule.forRootAsync({ imports: [ConfigModule], useExisting: HealthConfig }))).toEqual(
      CUSTOM_RESOLVED,
    );
  });

  it('fails at boot with every problem named, also through forRootAsync', async () => {
    const health = HealthModule.forRootAsync({
      useFactory: () => ({ intervalMs: -1, readiness: [{ name: 'db', run: 'no' as unknown as typeof run }] }),
    });
    const compiling = Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), health] }).compile();
    await expect(compiling).rejects.toBeInstanceOf(HealthOptionsError);
    await expect(compiling).rejects.toMatchObject({
      code: 'HEALTH_INVALID_OPTIONS',
      problems: [expect.stringMatching(/^intervalMs: must be/), expect.stringMatching(/^readiness\[0\]\.run: must be a function/)],
    });
  });

  it('rejects an invalid path when the module is defined', () => {
    expect(() => HealthModule.forRoot({ path: 'a b' })).toThrow(HealthOptionsError);
  });

  it('serves the probes under a custom path and adds the gRPC health controller on request', () => {
    const plain = HealthModule.forRoot({ path: 'ops/health' });
    const withGrpc = HealthModule.forRoot({ grpc: true });
    expect(plain.controllers).toHaveLength(1);
    expect(Reflect.getMetadata('path', plain.controllers![0])).toBe('ops/health');
    expect(withGrpc.controllers!.map((c) => c.name)).toEqual(['HealthController', 'HealthGrpcController']);
  });

  it('is global only when asked', () => {
    expect(HealthModule.forRoot().global).toBe(false);
    expect(HealthModule.forRoot({ isGlobal: true }).global).toBe(true);
  });
});
