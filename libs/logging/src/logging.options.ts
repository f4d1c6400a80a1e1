import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected, withoutDefault } from '@nest-rollout/lifecycle';
import { pino, type DestinationStream } from 'pino';
import { z } from 'zod';
import { LogField, REDACTED_HEADER_PATHS } from './logging.constants';
import { LoggingOptionsError } from './logging.errors';

/** pino's levels, lowest volume first; `silent` writes nothing. */
export const LOGGING_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LoggingLevel = (typeof LOGGING_LEVELS)[number];

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
/** Fields pino or this module write on every line; a `base` field must not shadow them. */
const RESERVED_FIELDS: readonly string[] = ['level', 'time', 'msg', 'pid', 'hostname', 'service', ...Object.values(LogField)];

const BOOLEAN = 'must be a boolean';
const boolean = z.boolean({ error: BOOLEAN });
const LEVEL = `must be one of ${LOGGING_LEVELS.join(', ')}`;
const NOT_A_PATH = `is not a path; use pino's syntax, e.g. "body.password" or "*.token"`;
const NON_EMPTY_STRING = 'must be a non-empty string';
const BUFFER_BYTES = `must be a whole number from 0 to ${MAX_BUFFER_BYTES}`;
const FLUSH_INTERVAL = `must be a whole number of milliseconds from 1 to ${MAX_FLUSH_INTERVAL_MS}`;
const DESTINATION = 'must be a stream with a write(line) method, such as pino.destination(...)';
const STANDARD_OUTPUT_ONLY = 'applies to the standard-output destination only; remove it or remove destination';

/** What pino needs of a destination. */
const writable = z.looseObject({ write: z.function() });

const loggingOptionsObject = optionGroup({
  /**
   * Lowest level written: one of `fatal`, `error`, `warn`, `info`, `debug`, `trace`, `silent`
   * (Nest's `verbose` maps to `trace`). A plain string so that it can come straight from an
   * environment variable; it is validated at boot.
   * @default 'info'
   */
  level: z
    .string({ error: LEVEL })
    .pipe(z.enum(LOGGING_LEVELS, { error: LEVEL }))
    .default(DEFAULT_LOGGING_OPTIONS.level),
  /**
   * Human-readable, coloured lines through pino-pretty (an optional peer dependency that must then
   * be installed). For local development only: it is slower and log collectors expect JSON.
   * @default false
   */
  pretty: boolean
    .refine((pretty) => !pretty || isInstalled('pino-pretty'), {
      error: 'needs pino-pretty, which is not installed; add it to your devDependencies or set pretty to false',
    })
    .default(DEFAULT_LOGGING_OPTIONS.pretty),
  /**
   * One `http.request_completed` line per request (method, path, status_code, duration_ms). Off by
   * default: it doubles the log volume of a busy service, and the load balancer or ingress in front
   * already writes an access log. Handler lines carry the trace ids either way.
   * @default false
   */
  autoLogging: boolean.default(DEFAULT_LOGGING_OPTIONS.autoLogging),
  /**
   * Extra paths to redact, in pino's syntax (`'body.password'`, `'*.token'`), on top of the
   * authorization, cookie and set-cookie headers, which are always redacted.
   * @default []
   */
  redact: z
    .array(
      z
        .string({ error: NOT_A_PATH })
        .regex(/\S/, { error: NOT_A_PATH, abort: true })
        .refine(isRedactionPath, { error: `is not a valid pino redaction path (e.g. "body.password", 'headers["x-api-key"]')` }),
      { error: 'must be an array of paths such as ["body.password"]' },
    )
    .default(() => [...DEFAULT_LOGGING_OPTIONS.redact]),
  /**
   * Name of the service, written as `service` on every line.
   * @default undefined (no `service` field)
   */
  service: withoutDefault(z.string({ error: NON_EMPTY_STRING }).regex(/\S/, { error: NON_EMPTY_STRING })),
  /**
   * Extra fields written on every line, e.g. `{ region: 'eu-west-1' }`.
   * @default {}
   */
  base: z
    .record(
      z
        .string()
        .refine((field) => !RESERVED_FIELDS.includes(field), { error: 'would overwrite a field every line already carries; rename it' }),
      z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or boolean' }),
      { error: 'must be an object of fields, e.g. { region: "eu-west-1" }' },
    )
    .default(() => ({ ...DEFAULT_LOGGING_OPTIONS.base })),
  /**
   * Continue the caller's trace when a request carries a valid W3C `traceparent`. Trusting a
   * client header is normally opt-in; this one only decides which ids the logs carry, so it is on
   * by default. Turn it off on a service exposed directly to the internet if clients must not be
   * able to choose the trace ids in your logs.
   * @default true
   */
  trustTraceparent: boolean.default(DEFAULT_LOGGING_OPTIONS.trustTraceparent),
  /**
   * Honour a caller's `x-request-id` (1 to 128 visible ASCII characters; anything else is ignored):
   * it is logged as `request_id` and echoed in the response, and when it is 32 hex digits and no
   * valid traceparent came with it, it becomes the trace id. Same trade-off as `trustTraceparent`.
   * @default true
   */
  trustRequestId: boolean.default(DEFAULT_LOGGING_OPTIONS.trustRequestId),
  /**
   * Where lines go, instead of standard output: any stream with `write(line)`, such as
   * `pino.destination('/var/log/app.log')`. Its `flushSync()`, when it has one, runs at exit.
   * @default standard output, buffered (see `bufferBytes`)
   */
  // Checked, then passed on as it is: parsing it as an object would copy it without its
  // prototype, and with it the stream's flushSync and file descriptor.
  destination: withoutDefault(z.custom<DestinationStream>((value) => writable.safeParse(value).success, { error: DESTINATION })),
  /**
   * Standard output only: bytes gathered before one write, so a busy service makes one system call
   * per few dozen lines instead of one per line. 0 writes every line at once. Buffered lines are
   * written at the latest after `flushIntervalMs`, when the application closes, and on process exit.
   * @default 4096
   */
  // No schema default: an explicit value next to a custom destination is an error (see below).
  bufferBytes: z.int({ error: BUFFER_BYTES }).min(0, { error: BUFFER_BYTES }).max(MAX_BUFFER_BYTES, { error: BUFFER_BYTES }).optional(),
  /**
   * Standard output only: the longest a line waits in the buffer.
   * @default 1000
   */
  flushIntervalMs: z
    .int({ error: FLUSH_INTERVAL })
    .min(1, { error: FLUSH_INTERVAL })
    .max(MAX_FLUSH_INTERVAL_MS, { error: FLUSH_INTERVAL })
    .optional(),
});

type ParsedLoggingOptions = z.output<typeof loggingOptionsObject>;

/**
 * The buffer belongs to the standard-output destination; a custom destination buffers (or not)
 * by its own settings, and silently ignoring these would hide a misunderstanding.
 */
function checkBufferOnlyForStandardOutput(o: ParsedLoggingOptions, ctx: z.RefinementCtx<ParsedLoggingOptions>): void {
  if (o.destination === undefined) return;
  for (const field of ['bufferBytes', 'flushIntervalMs'] as const) {
    if (o[field] !== undefined && !rejected(ctx, field)) ctx.addIssue({ code: 'custom', path: [field], message: STANDARD_OUTPUT_ONLY });
  }
}

const loggingOptionsSchema = loggingOptionsObject
  .superRefine(checkBufferOnlyForStandardOutput, EVEN_WITH_OTHER_PROBLEMS)
  .transform((o) => ({
    ...o,
    /** Every redacted path: the always-redacted headers, then the `redact` option. */
    redact: Object.freeze([...REDACTED_HEADER_PATHS, ...o.redact]),
    base: Object.freeze(o.base),
    bufferBytes: o.bufferBytes ?? DEFAULT_LOGGING_OPTIONS.bufferBytes,
    flushIntervalMs: o.flushIntervalMs ?? DEFAULT_LOGGING_OPTIONS.flushIntervalMs,
  }));

/** Options of `LoggingModule.forRoot()`; every field is optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface LoggingModuleOptions extends z.input<typeof loggingOptionsSchema> {}

/** The options after one merge with the defaults, as `LOGGING_OPTIONS` provides them. */
export type ResolvedLoggingOptions = Readonly<z.output<typeof loggingOptionsSchema>>;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveLoggingOptions(input: LoggingModuleOptions = {}): ResolvedLoggingOptions {
  return Object.freeze(parseModuleOptions(loggingOptionsSchema, input, (problems) => new LoggingOptionsError(problems)));
}

/**
 * pino compiles the redaction paths when the logger is built; compiling each here names the bad
 * one at boot instead of failing later with pino's own message.
 */
function isRedactionPath(path: string): boolean {
  try {
    pino({ redact: [path] }, { write: () => undefined });
    return true;
  } catch {
    return false;
  }
}

function isInstalled(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}
