import { Inject, Injectable, Logger as NestLogger, Module, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { LifecycleModule, LifecycleService } from '@nest-rollout/lifecycle';
import { Logger } from 'nestjs-pino';
import type { Logger as Pino } from 'pino';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER, REDACTED_HEADER_PATHS } from './logging.constants';
import { LoggingOptionsError } from './logging.errors';
import type { LoggingOptionsFactory } from './logging.module-definition';
import { LoggingModule } from './logging.module';
import type { LoggingModuleOptions, ResolvedLoggingOptions } from './logging.options';
import { TraceContext } from './trace-context.service';
import { bootstrapLoggingApp, CapturedLines, type LoggingTestApp } from '../testing/logging-test-app';

const LOG_LEVEL = 'TEST:LOG_LEVEL';

/** Stands in for a config module that exports a value the async options depend on. */
@Module({ providers: [{ provide: LOG_LEVEL, useValue: 'debug' }], exports: [LOG_LEVEL] })
class TestConfigModule {}

@Injectable()
class LoggingOptionsFromConfig implements LoggingOptionsFactory {
  constructor(@Inject(LOG_LEVEL) private readonly level: string) {}

  createLoggingOptions(): LoggingModuleOptions {
    return { level: this.level, service: 'from-class', autoLogging: true };
  }
}

@Module({ imports: [TestConfigModule], providers: [LoggingOptionsFromConfig], exports: [LoggingOptionsFromConfig] })
class OptionsFactoryModule {}

type LoggingDynamicModule = ReturnType<typeof LoggingModule.forRoot>;

async function resolvedOptions(loggingModule: LoggingDynamicModule): Promise<ResolvedLoggingOptions> {
  const moduleRef = await Test.createTestingModule({ imports: [loggingModule] }).compile();
  try {
    return moduleRef.get<ResolvedLoggingOptions>(LOGGING_OPTIONS);
  } finally {
    await moduleRef.close();
  }
}

async function compileError(loggingModule: LoggingDynamicModule): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({ imports: [loggingModule] }).compile();
    await moduleRef.close();
  } catch (error) {
    return error;
  }
  throw new Error('expected the module to fail to compile');
}

const DEFAULTS: ResolvedLoggingOptions = {
  level: 'info',
  pretty: false,
  autoLogging: false,
  redact: [...REDACTED_HEADER_PATHS],
  service: undefined,
  base: {},
  trustTraceparent: true,
  trustRequestId: true,
  destination: undefined,
  bufferBytes: 4096,
  flushIntervalMs: 1000,
};

describe('LoggingModule', () => {
  it('exposes the resolved options under the readable token LOGGING:RESOLVED_OPTIONS', () => {
    expect(LOGGING_OPTIONS).toBe('LOGGING:RESOLVED_OPTIONS');
  });

  describe('forRoot', () => {
    it('resolves the defaults', async () => {
      expect(await resolvedOptions(LoggingModule.forRoot({}))).toEqual(DEFAULTS);
    });

    it('resolves the defaults when called without options', async () => {
      expect(await resolvedOptions(LoggingModule.forRoot())).toEqual(DEFAULTS);
    });

    it('resolves custom options, adding extra redaction paths to the always-redacted headers', async () => {
      const destination = new CapturedLines();
      expect(
        await resolvedOptions(
          LoggingModule.forRoot({
            level: 'warn',
            autoLogging: true,
            redact: ['body.password'],
            service: 'orders',
            base: { region: 'eu-west-1' },
            trustTraceparent: false,
            trustRequestId: false,
            destination,
          }),
        ),
      ).toEqual({
        ...DEFAULTS,
        level: 'warn',
        autoLogging: true,
        redact: [...REDACTED_HEADER_PATHS, 'body.password'],
        service: 'orders',
        base: { region: 'eu-west-1' },
        trustTraceparent: false,
        trustRequestId: false,
        destination,
      });
    });

    it('rejects invalid options at boot, naming each bad option', async () => {
      const error = await compileError(
        LoggingModule.forRoot({ level: 'loud', bufferBytes: -1, autologging: true } as LoggingModuleOptions),
      );
      expect(error).toBeInstanceOf(LoggingOptionsError);
      expect((error as LoggingOptionsError).code).toBe('LOGGING_INVALID_OPTIONS');
      expect((error as Error).message).toMatch(/level: must be one of/);
      expect((error as Error).message).toMatch(/bufferBytes: must be/);
      expect((error as Error).message).toMatch(/autologging: unknown option \(did you mean "autoLogging"\?\)/);
    });

    it('makes TraceContext and the Logger available to modules that do not import it', async () => {
      @Injectable()
      class Consumer {
        constructor(
          readonly traces: TraceContext,
          readonly logger: Logger,
        ) {}
      }
      @Module({ providers: [Consumer] })
      class ConsumerModule {}

      const moduleRef = await Test.createTestingModule({
        imports: [LoggingModule.forRoot({ destination: new CapturedLines() }), ConsumerModule],
      }).compile();
      const consumer = moduleRef.get(Consumer);
      expect(consumer.traces).toBeInstanceOf(TraceContext);
      expect(consumer.logger).toBeInstanceOf(Logger);
      await moduleRef.close();
    });
  });

  describe('forRootAsync', () => {
    it('resolves options from useFactory with inject', async () => {
      const options = await resolvedOptions(
        LoggingModule.forRootAsync({
          imports: [TestConfigModule],
          inject: [LOG_LEVEL],
          useFactory: (level: string) => ({ level, pretty: false, service: 'from-factory' }),
        }),
      );
      expect(options).toEqual({ ...DEFAULTS, level: 'debug', service: 'from-factory' });
    });

    it('resolves options from useClass', async () => {
      const options = await resolvedOptions(
        LoggingModule.forRootAsync({ imports: [TestConfigModule], useClass: LoggingOptionsFromConfig }),
      );
      expect(options).toEqual({ ...DEFAULTS, level: 'debug', service: 'from-class', autoLogging: true });
    });

    it('resolves options from useExisting', async () => {
      const options = await resolvedOptions(
        LoggingModule.forRootAsync({ imports: [OptionsFactoryModule], useExisting: LoggingOptionsFromConfig }),
      );
      expect(options).toEqual({ ...DEFAULTS, level: 'debug', service: 'from-class', autoLogging: true });
    });

    it('validates options from an async factory too', async () => {
      const error = await compileError(LoggingModule.forRootAsync({ useFactory: () => ({ service: '', redact: ['a..b'] }) }));
      expect(error).toBeInstanceOf(LoggingOptionsError);
      expect((error as Error).message).toMatch(/service: must be a non-empty string/);
      expect((error as Error).message).toMatch(/redact\[0\]: is not a valid pino redaction path/);
    });
  });

  it('fails NestFactory.create with a message naming the bad option', async () => {
    @Module({ imports: [LoggingModule.forRoot({ level: 'verbose' })] })
    class BadAppModule {}

    await expect(NestFactory.create(BadAppModule, { logger: false, abortOnError: false })).rejects.toThrow(/level: must be one of /);
  });

  it('removes its process exit listener when the application closes', async () => {
    const before = process.listenerCount('exit');
    const moduleRef = await Test.createTestingModule({ imports: [LoggingModule.forRoot()] }).compile();
    expect(process.listenerCount('exit')).toBe(before + 1);

    await moduleRef.close();
    expect(process.listenerCount('exit')).toBe(before);
  });
});

describe('lines logged outside requests', () => {
  let t: LoggingTestApp | undefined;

  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('carry the lifecycle’s boot trace id, and its shutdown trace id once the shutdown has begun', async () => {
    t = await bootstrapLoggingApp('express', {
      imports: [LifecycleModule.forRoot({ exitOnShutdown: false, drainDelayMs: 0, minReadyDelayMs: 0 })],
    });
    const lifecycle = t.app.get(LifecycleService);
    const bootTraceId = lifecycle.traceId;
    const logger = new NestLogger('Outside');

    logger.log({ event: 'test.during_boot' });
    await lifecycle.shutdown('test');
    logger.log({ event: 'test.during_shutdown' });

    expect(t.logs.one('test.during_boot')).toMatchObject({ trace_id: bootTraceId });
    expect(t.logs.one('test.during_boot')).not.toHaveProperty('span_id');
    expect(lifecycle.traceId).not.toBe(bootTraceId);
    expect(t.logs.one('test.during_shutdown')).toMatchObject({ trace_id: lifecycle.traceId });
    // Nest's own start-up lines, buffered until useLogger, carry the boot trace as well.
    expect(t.logs.lines.find((line) => line.context === 'NestApplication')).toMatchObject({ trace_id: bootTraceId });
  });

  it('carry the trace id of the lifecycle in hooks that run when the application closes', async () => {
    @Injectable()
    class HookLogger implements OnModuleInit, OnApplicationShutdown {
      private readonly logger = new NestLogger('Hooks');
      onModuleInit(): void {
        this.logger.log({ event: 'test.module_init' });
      }
      onApplicationShutdown(): void {
        this.logger.log({ event: 'test.application_shutdown' });
      }
    }

    t = await bootstrapLoggingApp('fastify', { imports: [LifecycleModule.forRoot({ exitOnShutdown: false })], providers: [HookLogger] });
    const traceId = t.app.get(LifecycleService).traceId;
    const logs = t.logs;
    await t.close();
    t = undefined;

    expect(logs.one('test.module_init')).toMatchObject({ trace_id: traceId });
    expect(logs.one('test.application_shutdown')).toMatchObject({ trace_id: traceId });
  });

  it('carry a boot trace id of the module’s own when there is no LifecycleModule', async () => {
    t = await bootstrapLoggingApp('express');
    new NestLogger('Outside').log({ event: 'test.first' });
    new NestLogger('Outside').log({ event: 'test.second' });

    const first = t.logs.one('test.first');
    expect(first.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(t.logs.one('test.second').trace_id).toBe(first.trace_id);
    expect(t.app.get(TraceContext).traceId()).toBe(first.trace_id);
  });
});

describe('the Logger handed to Nest', () => {
  let t: LoggingTestApp;

  beforeEach(async () => {
    t = await bootstrapLoggingApp('express', { options: { service: 'orders', base: { region: 'eu-west-1' }, level: 'debug' } });
  });

  afterEach(async () => {
    await t.close();
  });

  it('writes an object message as top-level JSON fields, not as a string', () => {
    new NestLogger('Lifecycle').log({ event: 'lifecycle.state_changed', from: 'A', to: 'B' });

    const line = t.logs.one('lifecycle.state_changed');
    expect(line).toMatchObject({ level: 30, context: 'Lifecycle', event: 'lifecycle.state_changed', from: 'A', to: 'B' });
    expect(line).not.toHaveProperty('msg');
  });

  it('writes a string message as msg with its context', () => {
    new NestLogger('Orders').warn('stock low');

    expect(t.logs.lines.find((line) => line.msg === 'stock low')).toMatchObject({ level: 40, context: 'Orders' });
  });

  it('writes an Error as a serialized err with its stack', () => {
    new NestLogger('Orders').error(new Error('db down'));

    const line = t.logs.lines.find((l) => (l.err as { message?: string } | undefined)?.message === 'db down');
    expect(line).toMatchObject({ level: 50, context: 'Orders', err: { type: 'Error', message: 'db down' } });
    expect((line?.err as { stack: string }).stack).toMatch(/db down/);
  });

  it('adds the service name and base fields to every line and honours the level', () => {
    new NestLogger('Orders').debug('shown');
    new NestLogger('Orders').verbose('hidden');

    const line = t.logs.lines.find((l) => l.msg === 'shown');
    expect(line).toMatchObject({ service: 'orders', region: 'eu-west-1', pid: process.pid });
    expect(t.logs.lines.find((l) => l.msg === 'hidden')).toBeUndefined();
  });

  it('shares its pino logger under LOGGING_PINO_LOGGER, with the same trace fields', () => {
    t.app.get<Pino>(LOGGING_PINO_LOGGER).info({ event: 'test.direct' });

    expect(t.logs.one('test.direct')).toMatchObject({ service: 'orders', trace_id: t.app.get(TraceContext).traceId() });
  });
});
