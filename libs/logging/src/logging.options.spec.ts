import { REDACTED_HEADER_PATHS } from './logging.constants';
import { LoggingOptionsError } from './logging.errors';
import { DEFAULT_LOGGING_OPTIONS, LOGGING_LEVELS, type LoggingModuleOptions, resolveLoggingOptions } from './logging.options';

function problemsOf(input: unknown): string[] {
  try {
    resolveLoggingOptions(input as LoggingModuleOptions);
  } catch (error) {
    if (error instanceof LoggingOptionsError) return [...error.problems];
    throw error;
  }
  throw new Error('expected the options to be rejected');
}

describe('resolveLoggingOptions', () => {
  it('documents the defaults it applies', () => {
    const resolved = resolveLoggingOptions();
    expect(resolved).toMatchObject({
      level: DEFAULT_LOGGING_OPTIONS.level,
      pretty: false,
      autoLogging: false,
      trustTraceparent: true,
      trustRequestId: true,
      bufferBytes: 4096,
      flushIntervalMs: 1000,
    });
    expect(resolved.redact).toEqual(REDACTED_HEADER_PATHS);
    expect(Object.isFrozen(resolved)).toBe(true);
  });

  it.each(LOGGING_LEVELS)('accepts the level %s', (level) => {
    expect(resolveLoggingOptions({ level }).level).toBe(level);
  });

  it('always redacts the authorization and cookie request headers and the set-cookie response header', () => {
    const { redact } = resolveLoggingOptions({ redact: ['body.password'] });
    expect(redact).toEqual(
      expect.arrayContaining(['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'body.password']),
    );
  });

  it('accepts bufferBytes 0, which writes every line at once', () => {
    expect(resolveLoggingOptions({ bufferBytes: 0 }).bufferBytes).toBe(0);
  });

  it.each<[string, unknown, RegExp]>([
    ['options that are not an object', 'info', /options must be an object/],
    ['an unknown level', { level: 'verbose' }, /^level must be one of silent, fatal, error, warn, info, debug, trace \(got "verbose"\)$/],
    ['a non-boolean pretty', { pretty: 'yes' }, /^pretty must be a boolean/],
    ['a non-boolean autoLogging', { autoLogging: 1 }, /^autoLogging must be a boolean/],
    ['a non-boolean trustTraceparent', { trustTraceparent: 'false' }, /^trustTraceparent must be a boolean/],
    ['a non-boolean trustRequestId', { trustRequestId: null }, /^trustRequestId must be a boolean/],
    ['redact that is not an array', { redact: 'body.password' }, /^redact must be an array/],
    ['an empty redaction path', { redact: [''] }, /^redact: "" is not a path/],
    ['an invalid redaction path', { redact: ['a[b'] }, /^redact: "a\[b" is not a valid pino redaction path/],
    ['an empty service', { service: ' ' }, /^service must be a non-empty string/],
    ['base that is not an object', { base: ['x'] }, /^base must be an object/],
    ['a base field that shadows trace_id', { base: { trace_id: 'x' } }, /^base\.trace_id would overwrite a field/],
    ['a nested base field', { base: { region: { name: 'eu' } } }, /^base\.region must be a string, number or boolean/],
    ['a destination without write', { destination: {} }, /^destination must be a stream with a write\(line\) method/],
    ['a negative bufferBytes', { bufferBytes: -1 }, /^bufferBytes must be a whole number from 0 to 1048576 \(got -1\)/],
    ['a fractional flushIntervalMs', { flushIntervalMs: 1.5 }, /^flushIntervalMs must be a whole number of milliseconds from 1 to 60000/],
    ['flushIntervalMs 0', { flushIntervalMs: 0 }, /^flushIntervalMs must be/],
    ['a misspelt option', { autologging: true }, /^autologging is not an option of LoggingModule \(known: level, pretty,/],
  ])('rejects %s, naming the option', (_case, input, message) => {
    expect(problemsOf(input)).toEqual([expect.stringMatching(message)]);
  });

  it('rejects buffer settings together with a custom destination, since they only apply to standard output', () => {
    const problems = problemsOf({ destination: { write: () => undefined }, bufferBytes: 0, flushIntervalMs: 10 });
    expect(problems).toEqual([
      'bufferBytes applies to the standard-output destination only; remove it or remove destination',
      'flushIntervalMs applies to the standard-output destination only; remove it or remove destination',
    ]);
  });

  it('reports every problem in one error with a stable code', () => {
    let error: unknown;
    try {
      resolveLoggingOptions({ level: 'loud', pretty: 'no', service: '' } as unknown as LoggingModuleOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LoggingOptionsError);
    expect((error as LoggingOptionsError).code).toBe('LOGGING_INVALID_OPTIONS');
    expect((error as LoggingOptionsError).problems).toHaveLength(3);
    expect((error as Error).message).toMatch(/^Invalid LoggingModule options \(fix each and restart\):\n {2}- level/);
  });
});
