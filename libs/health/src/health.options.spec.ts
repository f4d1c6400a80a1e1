import { HealthOptionsError } from './health.errors';
import { DEFAULT_HEALTH_OPTIONS, HealthModuleOptions, resolveHealthOptions, validateHealthPath } from './health.options';

const noop = () => undefined;

function problemsOf(options: unknown): string[] {
  try {
    resolveHealthOptions(options as HealthModuleOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(HealthOptionsError);
    expect((error as HealthOptionsError).code).toBe('HEALTH_INVALID_OPTIONS');
    return [...(error as HealthOptionsError).problems];
  }
  throw new Error('expected the options to be rejected');
}

describe('resolveHealthOptions', () => {
  it('applies the documented defaults', () => {
    expect(resolveHealthOptions()).toEqual({
      exposeState: true,
      readiness: [],
      intervalMs: 5000,
      timeoutMs: 1000,
      maxAgeMs: undefined,
      failureThreshold: 1,
      successThreshold: 1,
      management: undefined,
      redact: [],
      grpcServices: [],
    });
    expect(DEFAULT_HEALTH_OPTIONS).toMatchObject({
      exposeState: true,
      intervalMs: 5000,
      timeoutMs: 1000,
      failureThreshold: 1,
      successThreshold: 1,
    });
  });

  it('gives each check the module-wide settings unless it sets its own, and a default max age with room for a missed run', () => {
    const resolved = resolveHealthOptions({
      intervalMs: 2000,
      timeoutMs: 500,
      failureThreshold: 3,
      successThreshold: 2,
      readiness: [
        { name: 'db', run: noop },
        {
          name: 'cache',
          dependency: 'redis',
          run: noop,
          critical: false,
          timeoutMs: 200,
          intervalMs: 1000,
          failureThreshold: 1,
          successThreshold: 1,
        },
      ],
    });
    expect(resolved.readiness).toEqual([
      {
        name: 'db',
        dependency: 'custom',
        run: noop,
        critical: true,
        intervalMs: 2000,
        timeoutMs: 500,
        maxAgeMs: 12_500,
        failureThreshold: 3,
        successThreshold: 2,
      },
      {
        name: 'cache',
        dependency: 'redis',
        run: noop,
        critical: false,
        intervalMs: 1000,
        timeoutMs: 200,
        maxAgeMs: 11_200,
        failureThreshold: 1,
        successThreshold: 1,
      },
    ]);
  });

  it('derives the default max age from the interval when runs are far apart', () => {
    expect(
      resolveHealthOptions({ intervalMs: 30_000, timeoutMs: 2000, readiness: [{ name: 'db', run: noop }] }).readiness[0].maxAgeMs,
    ).toBe(62_000);
  });

  it('uses a module-wide maxAgeMs for every check', () => {
    const resolved = resolveHealthOptions({ maxAgeMs: 60_000, readiness: [{ name: 'db', run: noop }] });
    expect(resolved.readiness[0].maxAgeMs).toBe(60_000);
  });

  it('resolves the management server with its defaults', () => {
    const metrics = { path: '/metrics', handle: noop };
    expect(resolveHealthOptions({ management: { port: 9000, routes: [metrics] } }).management).toEqual({
      port: 9000,
      host: '0.0.0.0',
      alsoOnAppPort: false,
      routes: [metrics],
    });
  });

  it('freezes the result', () => {
    const resolved = resolveHealthOptions({ readiness: [{ name: 'db', run: noop }] });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(resolved.readiness[0])).toBe(true);
  });

  const MS_FROM_1 = 'must be a whole number of milliseconds from 1 to 2147483647';

  it.each([
    ['intervalMs', { intervalMs: 5 }, 'intervalMs: must be a whole number of milliseconds from 10 to 2147483647'],
    ['timeoutMs', { timeoutMs: 0 }, `timeoutMs: ${MS_FROM_1}`],
    ['timeoutMs', { timeoutMs: 1.5 }, `timeoutMs: ${MS_FROM_1}`],
    ['maxAgeMs', { maxAgeMs: -1 }, `maxAgeMs: ${MS_FROM_1}`],
    ['failureThreshold', { failureThreshold: 0 }, 'failureThreshold: must be a whole number from 1 to 1000'],
    ['successThreshold', { successThreshold: '2' }, 'successThreshold: must be a whole number from 1 to 1000'],
    ['exposeState', { exposeState: 'yes' }, 'exposeState: must be a boolean'],
    ['readiness', { readiness: {} }, 'readiness: must be an array of checks'],
    ['readiness[0]', { readiness: [null] }, "readiness[0]: must be a check object such as postgresCheck('database', { pool })"],
    [
      'readiness[0].name',
      { readiness: [{ name: 'has space', run: noop }] },
      'readiness[0].name: must be 1-63 letters, digits, "_", "-" or "."',
    ],
    [
      'readiness[0].run',
      { readiness: [{ name: 'db', run: 'SELECT 1' }] },
      'readiness[0].run: must be a function that resolves when the dependency is up and throws when it is down',
    ],
    ['readiness[0].critical', { readiness: [{ name: 'db', run: noop, critical: 'no' }] }, 'readiness[0].critical: must be a boolean'],
    ['readiness[0].timeoutMs', { readiness: [{ name: 'db', run: noop, timeoutMs: -5 }] }, `readiness[0].timeoutMs: ${MS_FROM_1}`],
    [
      'readiness[0].dependency',
      { readiness: [{ name: 'db', run: noop, dependency: '' }] },
      'readiness[0].dependency: must be a non-empty string',
    ],
    ['management', { management: 9000 }, 'management: must be an object such as { port: 9000 }'],
    ['management.port', { management: { port: 70000 } }, 'management.port: must be a port number from 0 to 65535'],
    ['management.host', { management: { port: 1, host: '' } }, 'management.host: must be a non-empty host name or address'],
    ['management.alsoOnAppPort', { management: { port: 1, alsoOnAppPort: 1 } }, 'management.alsoOnAppPort: must be a boolean'],
    [
      'management.routes',
      { management: { port: 1, routes: [{ path: 'metrics', handle: noop }] } },
      'management.routes[0].path: must start with "/" and hold only URL path characters',
    ],
    ['redact', { redact: ['abc'] }, 'redact[0]: must be at least 4 characters long'],
    ['grpcServices', { grpcServices: ['not a name'] }, 'grpcServices[0]: must be a gRPC service name such as "orders.v1.Orders"'],
  ])('rejects an invalid %s with a message naming it', (_field, options, message) => {
    expect(problemsOf(options)).toEqual([message]);
  });

  it('rejects an unknown option, at the top level and inside a check or the management server, naming its path', () => {
    expect(problemsOf({ intervalMS: 1000 })).toEqual(['intervalMS: unknown option (did you mean "intervalMs"?)']);
    expect(
      problemsOf({
        readiness: [
          { name: 'db', run: noop },
          { name: 'cache', run: noop, timeout: 500 },
        ],
      }),
    ).toEqual([expect.stringMatching(/^readiness\[1\]\.timeout: unknown option/)]);
    expect(problemsOf({ management: { port: 9000, hostname: 'localhost' } })).toEqual([
      expect.stringMatching(/^management\.hostname: unknown option/),
    ]);
  });

  it('rejects a check named like one of the probes’ own indicators', () => {
    expect(problemsOf({ readiness: [{ name: 'lifecycle', run: noop }] })).toEqual([
      'readiness[0].name: "lifecycle" is reserved for the probes\' own indicators; choose another',
    ]);
  });

  it('rejects two checks with one name', () => {
    expect(
      problemsOf({
        readiness: [
          { name: 'db', run: noop },
          { name: 'db', run: noop },
        ],
      }),
    ).toEqual(['readiness[1].name: is used twice (also readiness[0].name); check names are keys in the probe body and must be unique']);
  });

  it('reports a duplicate name alongside problems of other checks and options', () => {
    expect(
      problemsOf({
        timeoutMs: 0,
        readiness: [
          { name: 'db', run: noop },
          { name: 'db', run: 'SELECT 1', critical: 'yes' },
        ],
      }),
    ).toEqual([
      `timeoutMs: ${MS_FROM_1}`,
      'readiness[1].run: must be a function that resolves when the dependency is up and throws when it is down',
      'readiness[1].critical: must be a boolean',
      'readiness[1].name: is used twice (also readiness[0].name); check names are keys in the probe body and must be unique',
    ]);
  });

  it('rejects a maxAgeMs under a check’s interval + timeout, naming the check', () => {
    expect(problemsOf({ maxAgeMs: 1000, intervalMs: 1000, timeoutMs: 500, readiness: [{ name: 'db', run: noop }] })).toEqual([
      'maxAgeMs: shorter than readiness[0] ("db")\'s intervalMs + timeoutMs (1000 + 500 = 1500): its results would turn stale between two normal runs; raise maxAgeMs or shorten the interval',
    ]);
  });

  it('checks maxAgeMs against a check’s own timings, even when another option is rejected', () => {
    expect(
      problemsOf({
        maxAgeMs: 20_000,
        exposeState: 1,
        readiness: [
          { name: 'db', run: noop },
          { name: 'batch', run: noop, intervalMs: 30_000 },
        ],
      }),
    ).toEqual([
      'exposeState: must be a boolean',
      expect.stringMatching(/^maxAgeMs: shorter than readiness\[1\] \("batch"\)'s intervalMs \+ timeoutMs \(30000 \+ 1000 = 31000\)/),
    ]);
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({ intervalMs: 0, timeoutMs: 0, management: { port: -1 }, readiness: [{ name: '', run: 1 }] });
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(
      /intervalMs[\s\S]*timeoutMs[\s\S]*readiness\[0\]\.name[\s\S]*readiness\[0\]\.run[\s\S]*management\.port/,
    );
  });

  it('never echoes a value it rejects, which may be a secret', () => {
    const secret = 's3cr3t-Pa55';
    const problems = problemsOf({
      redact: ['pw'],
      management: { port: 1, host: 42 },
      readiness: [{ name: `postgres://app:${secret}@db/orders`, run: secret, dependency: 42 }],
      grpcServices: [`token=${secret}`],
      password: secret,
    });
    expect(problems).toHaveLength(7);
    expect(problems.join('\n')).not.toMatch(/pw|s3cr3t|42/);
  });

  it('rejects options that are not an object', () => {
    expect(problemsOf('fast')).toEqual(['options must be an object']);
  });
});

describe('validateHealthPath', () => {
  it('trims slashes', () => {
    expect(validateHealthPath('/ops/health/')).toBe('ops/health');
  });

  it('rejects a path that is not a URL path', () => {
    expect(() => validateHealthPath('../x?y')).toThrow(/path: must be a URL path such as "health"/);
  });
});
