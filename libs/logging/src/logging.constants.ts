/** Injection tokens, header names, field names and stable event names of @nest-rollout/logging. */
export const LOGGING_OPTIONS = 'LOGGING:RESOLVED_OPTIONS';

/**
 * The application's root pino logger. Nest's `Logger` is the usual way in; inject this for a hot
 * path that wants pino's own API (`logger.info({ ... })`) without the Nest facade in between.
 */
export const LOGGING_PINO_LOGGER = 'LOGGING:PINO_LOGGER';

/** W3C Trace Context header, read on requests and written on responses. */
export const TRACEPARENT_HEADER = 'traceparent';
export const REQUEST_ID_HEADER = 'x-request-id';

/** Fields the module adds to every line. */
export const LogField = {
  TRACE_ID: 'trace_id',
  SPAN_ID: 'span_id',
  /** Only when a caller's `x-request-id` was honoured and differs from the trace id. */
  REQUEST_ID: 'request_id',
} as const;

/** Log event names; one event per line, with stable names that dashboards can match. */
export const LoggingEvent = {
  REQUEST_COMPLETED: 'http.request_completed',
  REQUEST_ABORTED: 'http.request_aborted',
} as const;

/**
 * Redacted on every line whatever the options say: credentials in request headers and the
 * session cookies a response sets. Covers objects logged as `req`/`res` (pino's serializers) and
 * a bare `headers` object. Node lower-cases header names, so one spelling each is enough.
 */
export const REDACTED_HEADER_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["set-cookie"]',
];

/** What redacted values are replaced with. */
export const REDACTED = '[Redacted]';
