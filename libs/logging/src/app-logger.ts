import { Logger, type PinoLogger } from 'nestjs-pino';
import type { Logger as Pino } from 'pino';
import { LogDestination } from './log.destination';
import { type LoggingModuleOptions, type ResolvedLoggingOptions, resolveLoggingOptions } from './logging.options';
import { createPinoLogger } from './pino-logger.factory';
import { TraceStorage } from './trace.storage';

/**
 * The application's logger, made before the application is: the same pino-backed Nest logger as
 * `LoggingModule.forRoot` gives (same options, same validation, same trace ids), but it exists when
 * `NestFactory.create` starts, so Nest's first lines ("Starting Nest application...", each module's
 * initialisation), a failed boot's error and everything logged by the libraries are JSON too:
 *
 * ```ts
 * const logger = new AppLogger({ level: 'info' });
 * const app = await NestFactory.create(AppModule.forRoot(logger), { logger, bufferLogs: true });
 * // in AppModule: imports: [LoggingModule.forLogger(logger), LifecycleModule.forRoot(), ...]
 * ```
 *
 * `LoggingModule.forLogger(logger)` reuses its destination, pino logger and trace context rather
 * than building a second set, so lines keep their order and there is one exit flush. With
 * `bufferLogs: true`, Nest holds its first lines only until the module knows the lifecycle, so
 * that from the first line to READY every line carries the lifecycle's boot trace id.
 *
 * @throws LoggingOptionsError when the options are invalid, naming each problem.
 */
export class AppLogger extends Logger {
  readonly options: ResolvedLoggingOptions;
  /** The root pino logger, the one `LOGGING_PINO_LOGGER` injects. */
  readonly pino: Pino;
  /** @internal Where lines go; reused by `LoggingModule.forLogger`. */
  readonly destination: LogDestination;
  /** @internal The trace ids every line carries; reused by `LoggingModule.forLogger`. */
  readonly traces: TraceStorage;

  constructor(options: LoggingModuleOptions = {}) {
    const resolved = resolveLoggingOptions(options);
    const destination = new LogDestination(resolved);
    const traces = new TraceStorage();
    const pino = createPinoLogger(resolved, destination, traces);
    // As in LoggingModule: nestjs-pino's Logger only calls the level methods of its PinoLogger,
    // which a pino logger has with the same signatures.
    super(pino as unknown as PinoLogger, {});
    this.options = resolved;
    this.pino = pino;
    this.destination = destination;
    this.traces = traces;
  }
}
