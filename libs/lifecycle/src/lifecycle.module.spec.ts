import { hostname } from 'node:os';
import { Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LIFECYCLE_OPTIONS } from './lifecycle.constants';
import { LifecycleOptionsError } from './lifecycle.errors';
import { LifecycleModule } from './lifecycle.module';
import type { LifecycleModuleOptions, ResolvedLifecycleOptions } from './lifecycle.options';
import { LifecycleService } from './lifecycle.service';

const DRAIN_DELAY_MS = 'TEST:DRAIN_DELAY_MS';

/** Stands in for a config module that exports a value the async options depend on. */
@Module({ providers: [{ provide: DRAIN_DELAY_MS, useValue: 2_000 }], exports: [DRAIN_DELAY_MS] })
class TestConfigModule {}

@Injectable()
class LifecycleOptionsFactory {
  constructor(@Inject(DRAIN_DELAY_MS) private readonly drainDelayMs: number) {}

  create(): LifecycleModuleOptions {
    return { drainDelayMs: this.drainDelayMs, color: 'blue', instanceId: 'from-class' };
  }
}

@Module({ imports: [TestConfigModule], providers: [LifecycleOptionsFactory], exports: [LifecycleOptionsFactory] })
class OptionsFactoryModule {}

/** A provider in a module that does not import LifecycleModule. */
@Injectable()
class LifecycleConsumer {
  constructor(readonly lifecycle: LifecycleService) {}
}

@Module({ providers: [LifecycleConsumer] })
class ConsumerModule {}

async function resolvedOptions(lifecycleModule: ReturnType<typeof LifecycleModule.forRoot>): Promise<ResolvedLifecycleOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [lifecycleModule] }).compile();
  try {
    return moduleRef.get<ResolvedLifecycleOptions>(LIFECYCLE_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

async function compileError(lifecycleModule: ReturnType<typeof LifecycleModule.forRoot>): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({ imports: [lifecycleModule] }).compile();
    await moduleRef.close();
  } catch (error) {
    return error;
  }
  throw new Error('expected the module to fail to compile');
}

describe('LifecycleModule', () => {
  it('exposes the resolved options under the readable token LIFECYCLE:RESOLVED_OPTIONS', () => {
    expect(LIFECYCLE_OPTIONS).toBe('LIFECYCLE:RESOLVED_OPTIONS');
  });

  describe('forRoot', () => {
    it('resolves the defaults', async () => {
      expect(await resolvedOptions(LifecycleModule.forRoot({}))).toEqual({
        warmupTimeoutMs: 30_000,
        minReadyDelayMs: 500,
        drainDelayMs: 5_000,
        drainTaskTimeoutMs: 5_000,
        shutdownTimeoutMs: 15_000,
        hookTimeoutMs: 5_000,
        hardDeadlineMs: 28_000,
        terminationGracePeriodSeconds: undefined,
        signals: ['SIGTERM', 'SIGINT'],
        instanceId: `${hostname()}-${process.pid}`,
        version: process.env.APP_VERSION ?? process.env.npm_package_version ?? '0.0.0',
        color: 'default',
        keepAliveTimeoutMs: 65_000,
        headersTimeoutMs: 66_000,
        exitOnShutdown: true,
      });
    });

    it('resolves custom options and re-derives the dependent ones', async () => {
      const options = await resolvedOptions(
        LifecycleModule.forRoot({
          drainDelayMs: 1_000,
          shutdownTimeoutMs: 4_000,
          keepAliveTimeoutMs: 70_000,
          color: 'green',
          version: '3.1.0',
        }),
      );
      expect(options).toMatchObject({
        drainDelayMs: 1_000,
        shutdownTimeoutMs: 4_000,
        // max(1000, 5000) + 4000 + 5000 + 3000
        hardDeadlineMs: 17_000,
        keepAliveTimeoutMs: 70_000,
        headersTimeoutMs: 71_000,
        color: 'green',
        version: '3.1.0',
      });
    });

    it('keeps the isGlobal extra out of the options', async () => {
      expect(await resolvedOptions(LifecycleModule.forRoot({ isGlobal: true, drainDelayMs: 10 }))).not.toHaveProperty('isGlobal');
    });

    it('fails at compile time with a LifecycleOptionsError that names each invalid option', async () => {
      const error = await compileError(LifecycleModule.forRoot({ drainDelayMs: -1, color: 'Green' }));
      expect(error).toBeInstanceOf(LifecycleOptionsError);
      expect((error as LifecycleOptionsError).problems).toHaveLength(2);
      expect((error as Error).message).toContain('drainDelayMs');
      expect((error as Error).message).toContain('color');
    });
  });

  describe('forRootAsync', () => {
    it('resolves options from useFactory with inject', async () => {
      const options = await resolvedOptions(
        LifecycleModule.forRootAsync({
          imports: [TestConfigModule],
          inject: [DRAIN_DELAY_MS],
          useFactory: async (drainDelayMs: number) => ({ drainDelayMs, shutdownTimeoutMs: 3_000 }),
        }),
      );
      expect(options).toMatchObject({ drainDelayMs: 2_000, shutdownTimeoutMs: 3_000, hardDeadlineMs: 16_000, color: 'default' });
    });

    it('resolves options from useClass', async () => {
      const options = await resolvedOptions(
        LifecycleModule.forRootAsync({ imports: [TestConfigModule], useClass: LifecycleOptionsFactory }),
      );
      expect(options).toMatchObject({ drainDelayMs: 2_000, color: 'blue', instanceId: 'from-class', hardDeadlineMs: 28_000 });
    });

    it('resolves options from useExisting', async () => {
      const options = await resolvedOptions(
        LifecycleModule.forRootAsync({ imports: [OptionsFactoryModule], useExisting: LifecycleOptionsFactory }),
      );
      expect(options).toMatchObject({ drainDelayMs: 2_000, color: 'blue', instanceId: 'from-class' });
    });

    it('fails at compile time when a factory returns invalid options', async () => {
      const error = await compileError(
        LifecycleModule.forRootAsync({ useFactory: () => ({ shutdownTimeoutMs: 1.5, signals: ['SIGKILL'] }) }),
      );
      expect(error).toBeInstanceOf(LifecycleOptionsError);
      expect((error as Error).message).toContain('shutdownTimeoutMs');
      expect((error as Error).message).toContain('signals[0]: must be one of');
    });

    it('fails at compile time when useClass yields options that break the time budget', async () => {
      @Injectable()
      class TooShortDeadline {
        create(): LifecycleModuleOptions {
          return { hardDeadlineMs: 1_000, terminationGracePeriodSeconds: 30 };
        }
      }
      const error = await compileError(LifecycleModule.forRootAsync({ useClass: TooShortDeadline }));
      expect(error).toBeInstanceOf(LifecycleOptionsError);
      expect((error as Error).message).toContain('hardDeadlineMs: 1000 ms is shorter than the shutdown');
    });
  });

  describe('scope', () => {
    it('is global by default: a provider in another module injects LifecycleService', async () => {
      const moduleRef = await Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), ConsumerModule] }).compile();
      try {
        expect(moduleRef.get(LifecycleConsumer).lifecycle).toBe(moduleRef.get(LifecycleService));
      } finally {
        await moduleRef.close();
      }
    });

    it('is global for forRootAsync too', async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [LifecycleModule.forRootAsync({ useFactory: () => ({ color: 'blue' }) }), ConsumerModule],
      }).compile();
      try {
        expect(moduleRef.get(LifecycleConsumer).lifecycle.identity.color).toBe('blue');
      } finally {
        await moduleRef.close();
      }
    });

    it('is not visible to other modules with isGlobal: false', async () => {
      await expect(
        Test.createTestingModule({ imports: [LifecycleModule.forRoot({ isGlobal: false }), ConsumerModule] }).compile(),
      ).rejects.toThrow(/LifecycleService/);
    });
  });
});
