import { DynamicModule, Module, Logger as NestLogger } from '@nestjs/common';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { Logger, type PinoLogger } from 'nestjs-pino';
import type { Logger as Pino } from 'pino';
import type { AppLogger } from './app-logger';
import { HttpTraceListener } from './http-trace.listener';
import { LogDestination } from './log.destination';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER } from './logging.constants';
import { LOGGING_MODULE_OPTIONS, LOGGING_OPTIONS_TYPE, LoggingConfigurableModule } from './logging.module-definition';
import { type LoggingModuleOptions, resolveLoggingOptions } from './logging.options';
import { createPinoLogger } from './pino-logger.factory';
import { TraceContext } from './trace-context.service';
import { TraceStorage } from './trace.storage';

const LOGGING_EXPORTS = [LOGGING_OPTIONS, LOGGING_PINO_LOGGER, Logger, TraceContext];

/**
 * Structured JSON logs on nestjs-pino, with trace ids on every line.
 *
 * nestjs-pino's `Logger` (the Nest `LoggerService` that turns `logger.log({ event, ... }, context)`
 * into top-level JSON fields) is used as is; its `LoggerModule` is not. That module keeps its
 * pino-http middleware and root logger in module-level singletons, so the first application in a
 * process fixes the destination for every later one (tests create many), and its middleware
 * builds child loggers per request. Here each application owns its pino logger, and the trace
 * context comes from `HttpTraceListener` and a pino mixin.
 */
@Module({
  providers: [
    {
      provide: LOGGING_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: LoggingModuleOptions) => resolveLoggingOptions(options),
      inject: [LOGGING_MODULE_OPTIONS],
    },
    LogDestination,
    TraceStorage,
    TraceContext,
    { provide: LOGGING_PINO_LOGGER, useFactory: createPinoLogger, inject: [LOGGING_OPTIONS, LogDestination, TraceStorage] },
    {
      provide: Logger,
      // nestjs-pino's Logger only ever calls `trace/debug/info/warn/error/fatal(obj, ...args)` on
      // its PinoLogger, which a pino logger has with the same signatures; handing it ours avoids
      // PinoLogger's constructor, which builds the process-wide root logger described above.
      useFactory: (pino: Pino) => new Logger(pino as unknown as PinoLogger, {}),
      inject: [LOGGING_PINO_LOGGER],
    },
    HttpTraceListener,
  ],
  exports: LOGGING_EXPORTS,
})
export class LoggingModule extends LoggingConfigurableModule {
  /** `forRoot()` with no argument means every default (Nest's builder requires an object). */
  static override forRoot(options: typeof LOGGING_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }

  /**
   * The module around an `AppLogger` made before the application (see `AppLogger`): the same
   * providers as `forRoot`, built from that logger's options, destination and trace context
   * instead of new ones. Global unless `isGlobal` is false.
   */
  static forLogger(logger: AppLogger, extras: { isGlobal?: boolean } = {}): DynamicModule {
    return {
      module: AppLoggerModule,
      global: extras.isGlobal ?? true,
      providers: [
        { provide: LOGGING_OPTIONS, useValue: logger.options },
        { provide: LogDestination, useValue: logger.destination },
        {
          provide: TraceStorage,
          useFactory: (lifecycle: LifecycleService | undefined) => {
            logger.traces.follow(lifecycle);
            // The logger's lines carried a boot trace id of its own until now. Nest held its first
            // lines (`bufferLogs`) for this moment: written now, they carry the lifecycle's boot
            // trace id like everything after them, and the rest of the boot is written as it happens.
            NestLogger.flush();
            return logger.traces;
          },
          inject: [{ token: LifecycleService, optional: true }],
        },
        TraceContext,
        { provide: LOGGING_PINO_LOGGER, useValue: logger.pino },
        { provide: Logger, useValue: logger },
        HttpTraceListener,
      ],
      exports: LOGGING_EXPORTS,
    };
  }
}

/** What `LoggingModule.forLogger` returns: a module of its own, so that none of forRoot's providers builds a second logger. */
@Module({})
class AppLoggerModule {}
