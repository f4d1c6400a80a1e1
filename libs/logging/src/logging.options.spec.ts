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
    ['options that are not an object', 'info', /^options must be an object$/],
    ['null options', null, /^options must be an object$/],
    ['an unknown level', { level: 'verbose' }, /^level: must be one of silent, fatal, error, warn, info, debug, trace$/],
    ['a non-boolean pretty', { pretty: 'yes' }, /^pretty: must be a boolean$/],
    ['a non-boolean autoLogging', { autoLogging: 1 }, /^autoLogging: must be a boolean$/],
    ['a non-boolean trustTraceparent', { trustTraceparent: 'false' }, /^trustTraceparent: must be a boolean$/],
    ['a non-boolean trustRequestId', { trustRequestId: null }, /^trustRequestId: must be a boolean$/],
    ['redact that is not an array', { redact: 'body.password' }, /^redact: must be an array/],
    ['an empty redaction path', { redact: [''] }, /^redact\[0\]: is not a path/],
    ['a redaction path that is not a string', { redact: ['body.password', 42] }, /^redact\[1\]: is not a path/],
    ['an invalid redaction path', { redact: ['a[b'] }, /^redact\[0\]: is not a valid pino redaction path/],
    ['an empty service', { service: ' ' }, /^service: must be a non-empty string$/],
    ['base that is not an object', { base: ['x'] }, /^base: must be an object/],
    ['a base field that shadows trace_id', { base: { trace_id: 'x' } }, /^base\.trace_id: would overwrite a field/],
    ['a nested base field', { base: { region: { name: 'eu' } } }, /^base\.region: must be a string, number or boolean$/],
    ['a destination without write', { destination: {} }, /^destination: must be a stream with a write\(line\) method/],
    ['a negative bufferBytes', { bufferBytes: -1 }, /^bufferBytes: must be a whole number from 0 to 1048576$/],
    ['a fractional flushIntervalMs', { flushIntervalMs: 1.5 }, /^flushIntervalMs: must be a whole number of milliseconds from 1 to 60000$/],
    ['flushIntervalMs 0', { flushIntervalMs: 0 }, /^flushIntervalMs: must be/],
    ['a misspelt option', { autologging: true }, /^autologging: unknown option \(did you mean "autoLogging"\?\)$/],
    ['an unknown option', { format: 'json' }, /^format: unknown option; known options: level, pretty, autoLogging, /],
  ])('rejects %s, naming the option', (_case, input, message) => {
    expect(problemsOf(input)).toEqual([expect.stringMatching(message)]);
  });

  it('rejects buffer settings together with a custom destination, since they only apply to standard output', () => {
    const problems = problemsOf({ destination: { write: () => undefined }, bufferBytes: 0, flushIntervalMs: 10 });
    expect(problems).toEqual([
      'bufferBytes: applies to the standard-output destination only; remove it or remove destination',
      'flushIntervalMs: applies to the standard-output destination only; remove it or remove destination',
    ]);
  });

  it('reports buffer settings next to a custom destination together with the other problems', () => {
    const problems = problemsOf({ level: 'loud', destination: { write: () => undefined }, bufferBytes: 0, colour: true });
    expect(problems).toEqual([
      expect.stringMatching(/^level: must be one of/),
      'colour: unknown option; known options: level, pretty, autoLogging, redact, service, base, trustTraceparent, trustRequestId, destination, bufferBytes, flushIntervalMs',
      'bufferBytes: applies to the standard-output destination only; remove it or remove destination',
    ]);
  });

  it('reports every unknown option at once', () => {
    // The options have no nested object with fixed keys (base is a free-form record of fields,
    // checked against the reserved names instead), so an unknown key can only sit at the top level.
    expect(problemsOf({ autoLoging: true, prety: true })).toEqual([
      expect.stringMatching(/^autoLoging: unknown option; known options: /),
      expect.stringMatching(/^prety: unknown option; known options: /),
    ]);
  });

  it('never repeats a rejected value, which may be a secret', () => {
    const secret = 'Bearer eyJhbGciOiJIUzI1NiJ9.hunter2';
    const problems = problemsOf({
      level: secret,
      service: 42,
      redact: [secret + '[', { token: secret }],
      base: { token: { value: secret } },
      apiKey: secret,
    });
    expect(problems).toEqual([
      expect.stringMatching(/^level: /),
      expect.stringMatching(/^redact\[0\]: /),
      expect.stringMatching(/^redact\[1\]: /),
      expect.stringMatching(/^service: /),
      expect.stringMatching(/^base\.token: /),
      expect.stringMatching(/^apiKey: unknown option/),
    ]);
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('keeps the destination it is given, not a copy', () => {
    const destination = { write: () => undefined, flushSync: () => undefined };
    expect(resolveLoggingOptions({ destination }).destination).toBe(destination);
  });

  it('resolves every option, unset ones included, so that none is missing from the resolved object', () => {
    expect(Object.keys(resolveLoggingOptions()).sort()).toEqual([
      'autoLogging',
      'base',
      'bufferBytes',
      'destination',
      'flushIntervalMs',
      'level',
      'pretty',
      'redact',
      'service',
      'trustRequestId',
      'trustTraceparent',
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
