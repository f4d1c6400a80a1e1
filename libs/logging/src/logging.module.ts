import { DynamicModule, Module } from '@nestjs/common';
import { Logger, type PinoLogger } from 'nestjs-pino';
import type { Logger as Pino } from 'pino';
import { HttpTraceListener } from './http-trace.listener';
import { LogDestination } from './log.destination';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER } from './logging.constants';
import { LOGGING_MODULE_OPTIONS, LOGGING_OPTIONS_TYPE, LoggingConfigurableModule } from './logging.module-definition';
import { type LoggingModuleOptions, resolveLoggingOptions } from './logging.options';
import { createPinoLogger } from './pino-logger.factory';
import { TraceContext } from './trace-context.service';
import { TraceStorage } from './trace.storage';

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
  exports: [LOGGING_OPTIONS, LOGGING_PINO_LOGGER, Logger, TraceContext],
})
export class LoggingModule extends LoggingConfigurableModule {
  /** `forRoot()` with no argument means every default (Nest's builder requires an object). */
  static override forRoot(options: typeof LOGGING_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
