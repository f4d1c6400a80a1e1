import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';
import { REDACTED } from './logging.constants';
import type { ResolvedLoggingOptions } from './logging.options';
import type { TraceStorage } from './trace.storage';

/**
 * The application's one pino logger. Trace ids come from a `mixin` that reads the request's
 * AsyncLocalStorage store on each line, rather than from a child logger built per request: a
 * request that logs nothing costs nothing, and no bindings are serialised per request.
 */
export function createPinoLogger(options: ResolvedLoggingOptions, destination: DestinationStream, traces: TraceStorage): Logger {
  return pino(
    {
      level: options.level,
      base: {
        pid: process.pid,
        hostname: hostname(),
        ...(options.service === undefined ? {} : { service: options.service }),
        ...options.base,
      },
      redact: { paths: [...options.redact], censor: REDACTED },
      // `req` and `res` objects (raw Node, Express or Fastify) are reduced to method, url,
      // headers and status, which the redaction paths then cover.
      serializers: { req: pino.stdSerializers.req, res: pino.stdSerializers.res, err: pino.stdSerializers.err },
      mixin: () => traces.logFields(),
    },
    destination,
  );
}
