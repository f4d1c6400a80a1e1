/**
 * nestjs-pino's Nest `LoggerService`, exported under its own name. Hand it to Nest so that every
 * `new Logger(context)` of `@nestjs/common` (the one other nest-rollout libs log with) writes
 * through pino with trace ids:
 *
 * ```ts
 * const app = await NestFactory.create(AppModule, { bufferLogs: true });
 * app.useLogger(app.get(Logger)); // Logger of this package
 * ```
 *
 * An object message becomes top-level fields: `logger.log({ event: 'orders.created', id })`
 * writes `{"context":"Orders","event":"orders.created","id":...}`. Where a file also needs
 * `@nestjs/common`'s Logger, import this one under an alias (`Logger as PinoNestLogger`).
 */
export { Logger } from 'nestjs-pino';
export { AppLogger } from './app-logger';
export {
  LOGGING_OPTIONS,
  LOGGING_PINO_LOGGER,
  LogField,
  LoggingEvent,
  REDACTED,
  REDACTED_HEADER_PATHS,
  REQUEST_ID_HEADER,
  TRACEPARENT_HEADER,
} from './logging.constants';
export { LoggingError, LoggingOptionsError } from './logging.errors';
export { LOGGING_MODULE_OPTIONS } from './logging.module-definition';
export type { LoggingOptionsFactory } from './logging.module-definition';
export { LoggingModule } from './logging.module';
export { DEFAULT_LOGGING_OPTIONS, LOGGING_LEVELS, resolveLoggingOptions } from './logging.options';
export type { LoggingLevel, LoggingModuleOptions, ResolvedLoggingOptions } from './logging.options';
export { TraceContext } from './trace-context.service';
export type { LogFieldValue, TraceIds } from './trace.storage';
