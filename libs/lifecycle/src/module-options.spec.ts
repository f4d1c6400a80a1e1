import { z } from 'zod';
import {
  EVEN_WITH_OTHER_PROBLEMS,
  describeOptionIssues,
  optionGroup,
  parseModuleOptions,
  rejected,
  withoutDefault,
} from './module-options';

class TestOptionsError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

function problemsOf(schema: z.ZodType, input: unknown): string[] {
  try {
    parseModuleOptions(schema, input, (problems) => new TestOptionsError(problems));
  } catch (error) {
    expect(error).toBeInstanceOf(TestOptionsError);
    return (error as TestOptionsError).problems;
  }
  throw new Error('expected the options to be rejected');
}

const ms = z.int({ error: 'must be a whole number of milliseconds' }).min(0, 'must be a whole number of milliseconds');

const checkSchema = optionGroup({
  name: z.string({ error: 'must be a string' }),
  timeoutMs: ms.optional(),
});

const schema = optionGroup({
  drainDelayMs: ms.default(5000),
  consul: optionGroup({
    url: z.string().default('http://127.0.0.1:8500'),
    check: optionGroup({ ttlMs: ms.default(15_000) }).prefault({}),
  }).prefault({}),
  readiness: z.array(checkSchema).default(() => []),
  matrix: z.array(z.array(ms)).optional(),
  routes: z.record(z.string(), optionGroup({ path: z.string(), method: z.string().optional() })).optional(),
  tls: z.union([z.boolean(), optionGroup({ cert: z.string().optional(), key: z.string().optional() })]).optional(),
  level: z
    .string()
    .pipe(z.enum(['info', 'debug']))
    .optional(),
}).transform((options) => ({ ...options, resolved: true }));

describe('parseModuleOptions', () => {
  it('returns the output with defaults applied, and treats a missing options object as all defaults', () => {
    expect(parseModuleOptions(schema, undefined, (problems) => new TestOptionsError(problems))).toMatchObject({
      drainDelayMs: 5000,
      consul: { url: 'http://127.0.0.1:8500', check: { ttlMs: 15_000 } },
      readiness: [],
      resolved: true,
    });
  });

  it('hands every problem to the error at once', () => {
    expect(problemsOf(schema, { drainDelayMs: -1, readiness: [{ name: 1 }], level: 'loud' })).toEqual([
      'drainDelayMs: must be a whole number of milliseconds',
      'readiness[0].name: must be a string',
      expect.stringMatching(/^level: /),
    ]);
  });
});

describe('describeOptionIssues', () => {
  it('names each problem by its option path: dots between keys, array indexes in brackets', () => {
    expect(
      problemsOf(schema, {
        consul: { check: { ttlMs: 1.5 } },
        readiness: [{ name: 'db' }, { name: 'cache', timeoutMs: -1 }],
        matrix: [[1], [2, 'x']],
      }),
    ).toEqual([
      'consul.check.ttlMs: must be a whole number of milliseconds',
      'readiness[1].timeoutMs: must be a whole number of milliseconds',
      'matrix[1][1]: must be a whole number of milliseconds',
    ]);
  });

  it('suggests the option meant for a misspelt top-level key, and lists the known ones otherwise', () => {
    expect(problemsOf(schema, { drainDelayMS: 1 })).toEqual(['drainDelayMS: unknown option (did you mean "drainDelayMs"?)']);
    expect(problemsOf(schema, { colour: 'blue' })).toEqual([
      'colour: unknown option; known options: drainDelayMs, consul, readiness, matrix, routes, tls, level',
    ]);
  });

  it('gives the same help for an unknown key in a nested option', () => {
    expect(problemsOf(schema, { consul: { URL: 'http://consul:8500', check: { ttl: 1000 } } })).toEqual([
      'consul.check.ttl: unknown option; known options: ttlMs',
      'consul.URL: unknown option (did you mean "url"?)',
    ]);
  });

  it('gives the same help for an unknown key inside an array element', () => {
    expect(problemsOf(schema, { readiness: [{ name: 'db' }, { name: 'cache', timeout: 500 }] })).toEqual([
      'readiness[1].timeout: unknown option; known options: name, timeoutMs',
    ]);
    expect(problemsOf(schema, { readiness: [{ name: 'db', timeoutms: 500 }] })).toEqual([
      'readiness[0].timeoutms: unknown option (did you mean "timeoutMs"?)',
    ]);
  });

  it('gives the same help for an unknown key inside a record value or a union member', () => {
    expect(problemsOf(schema, { routes: { metrics: { path: '/metrics', methd: 'GET' } } })).toEqual([
      'routes.metrics.methd: unknown option; known options: path, method',
    ]);
    expect(problemsOf(schema, { tls: { Cert: 'pem', key: 'pem' } })).toEqual(['tls.Cert: unknown option (did you mean "cert"?)']);
  });

  it('says only "unknown option" where it cannot tell the known keys', () => {
    expect(describeOptionIssues([unknownKeysAt(['nowhere'], ['x'])], schema)).toEqual(['nowhere.x: unknown option']);
    expect(describeOptionIssues([unknownKeysAt([], ['x'])])).toEqual(['x: unknown option']);
  });

  it.each([null, 'drainDelayMs=5000', 5000, []])('reports options that are not an object (%p) in one line', (input) => {
    expect(problemsOf(schema, input)).toEqual(['options must be an object']);
  });

  it('never echoes a value it rejects, which may be a secret', () => {
    const secret = 'postgres://app:s3cr3t@db/orders';
    const problems = problemsOf(schema, {
      drainDelayMs: secret,
      consul: { url: 42, token: secret },
      readiness: [{ name: 42, timeoutMs: secret }],
      matrix: [[secret]],
      routes: { orders: { path: secret, method: 42 } },
      tls: secret,
      level: secret,
      password: secret,
    });
    expect(problems).toHaveLength(10);
    expect(problems.join('\n')).not.toMatch(/s3cr3t|42/);
  });
});

/** An unknown-keys issue at a place the schema does not describe, which zod alone would not report. */
function unknownKeysAt(path: PropertyKey[], keys: string[]): z.core.$ZodIssue {
  return { code: 'unrecognized_keys', path, keys, message: 'Unrecognized key', input: {} } as z.core.$ZodIssue;
}

describe('optionGroup', () => {
  const group = optionGroup({ port: z.int() }, 'must be an object such as { port: 9000 }');

  it('rejects unknown keys instead of ignoring them', () => {
    expect(group.safeParse({ port: 1, prot: 2 }).success).toBe(false);
  });

  it('freezes what it parses', () => {
    expect(Object.isFrozen(group.parse({ port: 1 }))).toBe(true);
  });

  it('rejects a value that is not an object with its own message', () => {
    expect(optionGroup({ group }).safeParse({ group: 9000 }).error?.issues[0].message).toBe('must be an object such as { port: 9000 }');
  });
});

describe('withoutDefault', () => {
  it('lets the option be left out, and keeps its key in the output', () => {
    const options = optionGroup({ service: withoutDefault(z.string()) }).parse({});
    expect(options).toEqual({ service: undefined });
    expect('service' in options).toBe(true);
  });
});

describe('EVEN_WITH_OTHER_PROBLEMS and rejected', () => {
  const seen: string[][] = [];
  const timings = optionGroup({
    intervalMs: ms.default(1000),
    timeoutMs: ms.default(500),
    color: z.string().optional(),
    checks: z
      .array(optionGroup({ name: z.string({ error: 'must be a string' }) }))
      .superRefine((checks, ctx) => {
        checks.forEach((check, index) => {
          if (rejected(ctx, `[${index}].name`) || check.name !== 'lifecycle') return;
          ctx.addIssue({ code: 'custom', path: [index, 'name'], message: 'is reserved' });
        });
      }, EVEN_WITH_OTHER_PROBLEMS)
      .optional(),
  }).superRefine((options, ctx) => {
    seen.push(ctx.issues.map((issue) => issue.code));
    if (rejected(ctx, 'intervalMs', 'timeoutMs') || options.timeoutMs < options.intervalMs) return;
    ctx.addIssue({ code: 'custom', path: ['timeoutMs'], message: 'must be shorter than intervalMs' });
  }, EVEN_WITH_OTHER_PROBLEMS);

  it('runs a rule across options even when another option was rejected', () => {
    expect(problemsOf(timings, { color: 5, timeoutMs: 2000 })).toEqual([
      expect.stringMatching(/^color: /),
      'timeoutMs: must be shorter than intervalMs',
    ]);
  });

  it('skips a rule when an option it reads was rejected, but not for an unknown key beside it', () => {
    expect(problemsOf(timings, { intervalMs: 'often', timeoutMs: 2000 })).toEqual(['intervalMs: must be a whole number of milliseconds']);
    expect(problemsOf(timings, { timeoutMs: 2000, timeout: 1 })).toEqual([
      'timeout: unknown option; known options: intervalMs, timeoutMs, color, checks',
      'timeoutMs: must be shorter than intervalMs',
    ]);
  });

  it('tells array elements apart: a rejected element is skipped, the others still checked', () => {
    expect(problemsOf(timings, { checks: [{ name: 1 }, { name: 'lifecycle' }] })).toEqual([
      'checks[0].name: must be a string',
      'checks[1].name: is reserved',
    ]);
  });

  it('skips the rule when the options are not an object at all', () => {
    seen.length = 0;
    expect(problemsOf(timings, 'fast')).toEqual(['options must be an object']);
    expect(seen).toEqual([]);
  });
});
