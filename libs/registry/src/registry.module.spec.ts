import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { REGISTRY_DRIVER, REGISTRY_OPTIONS } from './registry.constants';
import { RegistryClient } from './registry.client';
import { RegistryOptionsError } from './registry.errors';
import { RegistryModule } from './registry.module';
import type { RegistryOptionsFactory } from './registry.module-definition';
import { RegistryModuleOptions, ResolvedRegistryOptions, resolveRegistryOptions } from './registry.options';
import { RegistryService } from './registry.service';
import { RegistryStats } from './registry.stats';

const CUSTOM: RegistryModuleOptions = {
  driver: 'consul',
  service: 'orders',
  tags: ['green'],
  track: 'canary',
  consul: { url: 'http://consul.local:8500', token: 'secret', check: { type: 'ttl', ttlMs: 30_000 } },
};
const CUSTOM_RESOLVED = resolveRegistryOptions(CUSTOM);

@Injectable()
class RegistryConfig implements RegistryOptionsFactory {
  createRegistryOptions(): RegistryModuleOptions {
    return CUSTOM;
  }
}
const SERVICE_NAME = 'TEST:SERVICE_NAME';
@Module({ providers: [RegistryConfig, { provide: SERVICE_NAME, useValue: 'orders' }], exports: [RegistryConfig, SERVICE_NAME] })
class ConfigModule {}

async function resolvedOptions(registry: ReturnType<typeof RegistryModule.forRoot>): Promise<ResolvedRegistryOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), registry] }).compile();
  try {
    return moduleRef.get<ResolvedRegistryOptions>(REGISTRY_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

describe('RegistryModule', () => {
  it('forRoot() resolves the defaults (driver none) and provides the service, client and stats', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), RegistryModule.forRoot()] }).compile();
    await moduleRef.init();
    expect(moduleRef.get(REGISTRY_OPTIONS)).toEqual(resolveRegistryOptions({}));
    expect(moduleRef.get(REGISTRY_DRIVER).kind).toBe('none');
    expect(moduleRef.get(RegistryService).enabled).toBe(false);
    expect(moduleRef.get(RegistryClient)).toBeInstanceOf(RegistryClient);
    expect(moduleRef.get(RegistryStats).snapshot()).toMatchObject({ driver: 'none', state: 'DISABLED', registered: false });
    await moduleRef.close();
  });

  it('forRoot(options) resolves custom options and builds the configured driver', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), RegistryModule.forRoot(CUSTOM)] }).compile();
    expect(moduleRef.get(REGISTRY_OPTIONS)).toEqual(CUSTOM_RESOLVED);
    expect(moduleRef.get(REGISTRY_DRIVER)).toMatchObject({
      kind: 'consul',
      target: 'http://consul.local:8500',
      heartbeatIntervalMs: 10_000,
    });
    await moduleRef.close();
  });

  it('builds the etcd driver, lazily loading etcd3', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        LifecycleModule.forRoot({}),
        RegistryModule.forRoot({ driver: 'etcd', service: 'orders', etcd: { endpoints: ['http://127.0.0.1:2379'] } }),
      ],
    }).compile();
    expect(moduleRef.get(REGISTRY_DRIVER)).toMatchObject({ kind: 'etcd', expiresAfterMs: 10_000, heartbeatIntervalMs: 3333 });
    await moduleRef.close();
  });

  it('forRootAsync({ useFactory, inject }) resolves options built from injected providers', async () => {
    const registry = RegistryModule.forRootAsync({
      imports: [ConfigModule],
      inject: [SERVICE_NAME],
      useFactory: (service: string) => ({ ...CUSTOM, service }),
    });
    expect(await resolvedOptions(registry)).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useClass }) resolves the options of the factory class', async () => {
    expect(await resolvedOptions(RegistryModule.forRootAsync({ useClass: RegistryConfig }))).toEqual(CUSTOM_RESOLVED);
  });

  it('forRootAsync({ useExisting }) resolves the options of an existing provider', async () => {
    expect(await resolvedOptions(RegistryModule.forRootAsync({ imports: [ConfigModule], useExisting: RegistryConfig }))).toEqual(
      CUSTOM_RESOLVED,
    );
  });

  it('fails at boot with every problem named, also through forRootAsync', async () => {
    const registry = RegistryModule.forRootAsync({ useFactory: () => ({ driver: 'consul' as const, port: 0 }) });
    const compiling = Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), registry] }).compile();
    await expect(compiling).rejects.toBeInstanceOf(RegistryOptionsError);
    await expect(compiling).rejects.toMatchObject({
      code: 'REGISTRY_INVALID_OPTIONS',
      problems: [expect.stringMatching(/^port: must be/), expect.stringMatching(/^service: is required/)],
    });
  });

  it('is global by default, so the canary module can inject RegistryClient', () => {
    expect(RegistryModule.forRoot().global).toBe(true);
    expect(RegistryModule.forRoot({ isGlobal: false }).global).toBe(false);
  });
});
