import { pino, type DestinationStream } from 'pino';
import { LogField, REDACTED_HEADER_PATHS } from './logging.constants';
import { LoggingOptionsError } from './logging.errors';

/** pino's levels, lowest volume first; `silent` writes nothing. */
export const LOGGING_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LoggingLevel = (typeof LOGGING_LEVELS)[number];

/** Options of `LoggingModule.forRoot()`; every field is optional. */
export interface LoggingModuleOptions {
  /**
   * Lowest level written: one of `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`
   * (Nest's `verbose` maps to `trace`). A plain string so that it can come straight from an
   * environment variable; it is validated at boot.
   * @default 'info'
   */
  level?: string;
  /**
   * Human-readable, coloured lines through pino-pretty (an optional peer dependency that must then
   * be installed). For local development only: it is slower and log collectors expect JSON.
   * @default false
   */
  pretty?: boolean;
  /**
   * One `http.request_completed` line per request (method, path, status_code, duration_ms). Off by
   * default: it doubles the log volume of a busy service, and the load balancer or ingress in front
   * already writes an access log. Handler lines carry the trace ids either way.
   * @default false
   */
  autoLogging?: boolean;
  /**
   * Extra paths to redact, in pino's syntax (`'body.password'`, `'*.token'`), on top of the
   * authorization, cookie and set-cookie headers, which are always redacted.
   * @default []
   */
  redact?: string[];
  /**
   * Name of the service, written as `service` on every line.
   * @default undefined (no `service` field)
   */
  service?: string;
  /**
   * Extra fields written on every line, e.g. `{ region: 'eu-west-1' }`.
   * @default {}
   */
  base?: Record<string, string | number | boolean>;
  /**
   * Continue the caller's trace when a request carries a valid W3C `traceparent`. Trusting a
   * client header is normally opt-in; this one only decides which ids the logs carry, so it is on
   * by default. Turn it off on a service exposed directly to the internet if clients must not be
   * able to choose the trace ids in your logs.
   * @default true
   */
  trustTraceparent?: boolean;
  /**
   * Honour a caller's `x-request-id` (1 to 128 visible ASCII characters; anything else is ignored):
   * it is logged as `request_id` and echoed in the response, and when it is 32 hex digits and no
   * valid traceparent came with it, it becomes the trace id. Same trade-off as `trustTraceparent`.
   * @default true
   */
  trustRequestId?: boolean;
  /**
   * Where lines go, instead of standard output: any stream with `write(line)`, such as
   * `pino.destination('/var/log/app.log')`. Its `flushSync()`, when it has one, runs at exit.
   * @default standard output, buffered (see `bufferBytes`)
   */
  destination?: DestinationStream;
  /**
   * Standard output only: bytes gathered before one write, so a busy service makes one system call
   * per few dozen lines instead of one per line. 0 writes every line at once. Buffered lines are
   * written at the latest after `flushIntervalMs`, when the application closes, and on process exit.
   * @default 4096
   */
  bufferBytes?: number;
  /**
   * Standard output only: the longest a line waits in the buffer.
   * @default 1000
   */
  flushIntervalMs?: number;
}

export interface ResolvedLoggingOptions {
  readonly level: LoggingLevel;
  readonly pretty: boolean;
  readonly autoLogging: boolean;
  /** Every redacted path: the always-redacted headers, then the `redact` option. */
  readonly redact: readonly string[];
  readonly service: string | undefined;
  readonly base: Readonly<Record<string, string | number | boolean>>;
  readonly trustTraceparent: boolean;
  readonly trustRequestId: boolean;
  readonly destination: DestinationStream | undefined;
  readonly bufferBytes: number;
  readonly flushIntervalMs: number;
}

export const DEFAULT_LOGGING_OPTIONS = {
  level: 'info',
  pretty: false,
  autoLogging: false,
  redact: [] as readonly string[],
  base: {} as Readonly<Record<string, string | number | boolean>>,
  trustTraceparent: true,
  trustRequestId: true,
  bufferBytes: 4096,
  flushIntervalMs: 1000,
} as const;

/** Beyond this a buffer only delays lines and loses more of them to a SIGKILL. */
const MAX_BUFFER_BYTES = 1024 * 1024;
const MAX_FLUSH_INTERVAL_MS = 60_000;
const BOOLEAN_FIELDS = ['pretty', 'autoLogging', 'trustTraceparent', 'trustRequestId'] as const;
const KNOWN_FIELDS: readonly string[] = [
  'level',
  ...BOOLEAN_FIELDS,
  'redact',
  'service',
  'base',
  'destination',
  'bufferBytes',
  'flushIntervalMs',
];
/** Fields pino or this module write on every line; a `base` field must not shadow them. */
const RESERVED_FIELDS: readonly string[] = ['level', 'time', 'msg', 'pid', 'hostname', 'service', ...Object.values(LogField)];

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveLoggingOptions(input: LoggingModuleOptions = {}): ResolvedLoggingOptions {
  if (input === null || typeof input !== 'object') {
    throw new LoggingOptionsError(['options must be an object']);
  }
  const problems: string[] = [];
  for (const key of Object.keys(input)) {
    if (!KNOWN_FIELDS.includes(key)) problems.push(`${key} is not an option of LoggingModule (known: ${KNOWN_FIELDS.join(', ')})`);
  }
  if (input.level !== undefined && !LOGGING_LEVELS.includes(input.level as LoggingLevel)) {
    problems.push(`level must be one of ${LOGGING_LEVELS.join(', ')} (got ${JSON.stringify(input.level)})`);
  }
  for (const field of BOOLEAN_FIELDS) {
    const value = input[field];
    if (value !== undefined && typeof value !== 'boolean') problems.push(`${field} must be a boolean (got ${JSON.stringify(value)})`);
  }
  if (input.pretty === true && !isInstalled('pino-pretty')) {
    problems.push('pretty is true but pino-pretty is not installed; add it to your devDependencies or set pretty to false');
  }
  problems.push(...redactProblems(input.redact));
  if (input.service !== undefined && !(typeof input.service === 'string' && input.service.trim() !== '')) {
    problems.push(`service must be a non-empty string (got ${JSON.stringify(input.service)})`);
  }
  problems.push(...baseProblems(input.base));
  if (input.destination !== undefined && typeof (input.destination as { write?: unknown } | null)?.write !== 'function') {
    problems.push('destination must be a stream with a write(line) method, such as pino.destination(...)');
  }
  if (
    input.bufferBytes !== undefined &&
    !(Number.isInteger(input.bufferBytes) && input.bufferBytes >= 0 && input.bufferBytes <= MAX_BUFFER_BYTES)
  ) {
    problems.push(`bufferBytes must be a whole number from 0 to ${MAX_BUFFER_BYTES} (got ${JSON.stringify(input.bufferBytes)})`);
  }
  if (
    input.flushIntervalMs !== undefined &&
    !(Number.isInteger(input.flushIntervalMs) && input.flushIntervalMs >= 1 && input.flushIntervalMs <= MAX_FLUSH_INTERVAL_MS)
  ) {
    problems.push(
      `flushIntervalMs must be a whole number of milliseconds from 1 to ${MAX_FLUSH_INTERVAL_MS} (got ${JSON.stringify(input.flushIntervalMs)})`,
    );
  }
  // The buffer belongs to the standard-output destination; a custom destination buffers (or not)
  // by its own settings, and silently ignoring these would hide a misunderstanding.
  if (input.destination !== undefined) {
    for (const field of ['bufferBytes', 'flushIntervalMs'] as const) {
      if (input[field] !== undefined)
        problems.push(`${field} applies to the standard-output destination only; remove it or remove destination`);
    }
  }
  if (problems.length > 0) throw new LoggingOptionsError(problems);

  const d = DEFAULT_LOGGING_OPTIONS;
  return Object.freeze({
    level: (input.level ?? d.level) as LoggingLevel,
    pretty: input.pretty ?? d.pretty,
    autoLogging: input.autoLogging ?? d.autoLogging,
    redact: Object.freeze([...REDACTED_HEADER_PATHS, ...(input.redact ?? d.redact)]),
    service: input.service,
    base: Object.freeze({ ...(input.base ?? d.base) }),
    trustTraceparent: input.trustTraceparent ?? d.trustTraceparent,
    trustRequestId: input.trustRequestId ?? d.trustRequestId,
    destination: input.destination,
    bufferBytes: input.bufferBytes ?? d.bufferBytes,
    flushIntervalMs: input.flushIntervalMs ?? d.flushIntervalMs,
  });
}

function redactProblems(redact: unknown): string[] {
  if (redact === undefined) return [];
  if (!Array.isArray(redact)) return [`redact must be an array of paths such as ["body.password"] (got ${JSON.stringify(redact)})`];
  const problems: string[] = [];
  for (const path of redact) {
    if (typeof path !== 'string' || path.trim() === '') {
      problems.push(`redact: ${JSON.stringify(path)} is not a path; use pino's syntax, e.g. "body.password" or "*.token"`);
      continue;
    }
    // pino compiles the paths when the logger is built; compiling each here names the bad one at
    // boot instead of failing later with pino's own message.
    try {
      pino({ redact: [path] }, { write: () => undefined });
    } catch {
      problems.push(`redact: ${JSON.stringify(path)} is not a valid pino redaction path (e.g. "body.password", 'headers["x-api-key"]')`);
    }
  }
  return problems;
}

function baseProblems(base: unknown): string[] {
  if (base === undefined) return [];
  if (base === null || typeof base !== 'object' || Array.isArray(base)) {
    return [`base must be an object of fields, e.g. { region: "eu-west-1" } (got ${JSON.stringify(base)})`];
  }
  const problems: string[] = [];
  for (const [key, value] of Object.entries(base)) {
    if (RESERVED_FIELDS.includes(key)) problems.push(`base.${key} would overwrite a field every line already carries; rename it`);
    if (!['string', 'number', 'boolean'].includes(typeof value)) {
      problems.push(`base.${key} must be a string, number or boolean (got ${JSON.stringify(value)})`);
    }
  }
  return problems;
}

function isInstalled(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}
