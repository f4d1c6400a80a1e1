import { hostname } from 'node:os';
import { LifecycleOptionsError } from './lifecycle.errors';
import { DEFAULT_LIFECYCLE_OPTIONS, LifecycleModuleOptions, resolveLifecycleOptions, shutdownBudgetMs } from './lifecycle.options';

/** Runs the resolver and returns the error it throws (fails the test when it throws none). */
function rejectionOf(input: unknown, env: NodeJS.ProcessEnv = {}): LifecycleOptionsError {
  try {
    resolveLifecycleOptions(input as LifecycleModuleOptions, env);
  } catch (error) {
    expect(error).toBeInstanceOf(LifecycleOptionsError);
    return error as LifecycleOptionsError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('resolveLifecycleOptions', () => {
  describe('defaults', () => {
    it('resolves every option to its documented default', () => {
      expect(resolveLifecycleOptions({}, {})).toEqual({
        warmupTimeoutMs: 30_000,
        minReadyDelayMs: 500,
        drainDelayMs: 5_000,
        drainTaskTimeoutMs: 5_000,
        shutdownTimeoutMs: 15_000,
        hookTimeoutMs: 5_000,
        hardDeadlineMs: 28_000,
        terminationGracePeriodSeconds: undefined,
        signals: ['SIGTERM', 'SIGINT'],
        instanceId: `${hostname()}-${process.pid}`,
        version: '0.0.0',
        color: 'default',
        keepAliveTimeoutMs: 65_000,
        headersTimeoutMs: 66_000,
        exitOnShutdown: true,
      });
    });

    it('derives hardDeadlineMs from the phases plus a 3 s margin (28000 with the defaults)', () => {
      expect(resolveLifecycleOptions({}, {}).hardDeadlineMs).toBe(28_000);
      // max(2000, 7000) + 10000 + 1000 + 3000
      expect(
        resolveLifecycleOptions({ drainDelayMs: 2_000, drainTaskTimeoutMs: 7_000, shutdownTimeoutMs: 10_000, hookTimeoutMs: 1_000 }, {})
          .hardDeadlineMs,
      ).toBe(21_000);
      // max(9000, 5000) + 15000 + 5000 + 3000
      expect(resolveLifecycleOptions({ drainDelayMs: 9_000 }, {}).hardDeadlineMs).toBe(32_000);
    });

    it('derives headersTimeoutMs as keepAliveTimeoutMs + 1000 (66000 with the defaults)', () => {
      expect(resolveLifecycleOptions({}, {}).headersTimeoutMs).toBe(66_000);
      expect(resolveLifecycleOptions({ keepAliveTimeoutMs: 10_000 }, {}).headersTimeoutMs).toBe(11_000);
    });

    it('takes the version from APP_VERSION, then npm_package_version, then 0.0.0', () => {
      expect(resolveLifecycleOptions({}, { APP_VERSION: '1.2.3', npm_package_version: '9.9.9' }).version).toBe('1.2.3');
      expect(resolveLifecycleOptions({}, { npm_package_version: '4.5.6' }).version).toBe('4.5.6');
      expect(resolveLifecycleOptions({}, {}).version).toBe('0.0.0');
    });

    it('resolves every option, unset ones included, so that none is missing from the resolved object', () => {
      expect(Object.keys(resolveLifecycleOptions({}, {})).sort()).toEqual([
        'color',
        'drainDelayMs',
        'drainTaskTimeoutMs',
        'exitOnShutdown',
        'hardDeadlineMs',
        'headersTimeoutMs',
        'hookTimeoutMs',
        'instanceId',
        'keepAliveTimeoutMs',
        'minReadyDelayMs',
        'shutdownTimeoutMs',
        'signals',
        'terminationGracePeriodSeconds',
        'version',
        'warmupTimeoutMs',
      ]);
    });

    it('treats a missing options object as all defaults', () => {
      expect(resolveLifecycleOptions(undefined, {})).toEqual(resolveLifecycleOptions({}, {}));
    });

    it('publishes the static defaults it merges with', () => {
      expect(DEFAULT_LIFECYCLE_OPTIONS).toEqual({
        warmupTimeoutMs: 30_000,
        minReadyDelayMs: 500,
        drainDelayMs: 5_000,
        drainTaskTimeoutMs: 5_000,
        shutdownTimeoutMs: 15_000,
        hookTimeoutMs: 5_000,
        signals: ['SIGTERM', 'SIGINT'],
        color: 'default',
        keepAliveTimeoutMs: 65_000,
        exitOnShutdown: true,
      });
    });
  });

  describe('custom values', () => {
    it('keeps every value it is given', () => {
      const input: Required<LifecycleModuleOptions> = {
        warmupTimeoutMs: 1_000,
        minReadyDelayMs: 0,
        drainDelayMs: 2_000,
        drainTaskTimeoutMs: 1_500,
        shutdownTimeoutMs: 8_000,
        hookTimeoutMs: 2_000,
        hardDeadlineMs: 20_000,
        terminationGracePeriodSeconds: 30,
        signals: ['SIGTERM', 'SIGHUP'],
        instanceId: 'orders-7f9c',
        version: '2.4.0',
        color: 'green',
        keepAliveTimeoutMs: 61_000,
        headersTimeoutMs: 62_500,
        exitOnShutdown: false,
      };
      expect(resolveLifecycleOptions(input, { APP_VERSION: 'ignored' })).toEqual(input);
    });

    it('removes duplicate signals', () => {
      expect(resolveLifecycleOptions({ signals: ['SIGTERM', 'SIGTERM', 'SIGINT'] }, {}).signals).toEqual(['SIGTERM', 'SIGINT']);
    });

    it('accepts every supported signal', () => {
      const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];
      expect(resolveLifecycleOptions({ signals }, {}).signals).toEqual(signals);
    });

    it('returns a frozen object that does not share the caller’s signal array', () => {
      const signals: NodeJS.Signals[] = ['SIGTERM'];
      const resolved = resolveLifecycleOptions({ signals }, {});
      signals.push('SIGINT');
      expect(Object.isFrozen(resolved)).toBe(true);
      expect(resolved.signals).toEqual(['SIGTERM']);
    });
  });

  describe('invalid values', () => {
    it.each<[keyof LifecycleModuleOptions, unknown]>([
      ['warmupTimeoutMs', -1],
      ['warmupTimeoutMs', 1.5],
      ['warmupTimeoutMs', '30000'],
      ['minReadyDelayMs', -500],
      ['minReadyDelayMs', Number.NaN],
      ['drainDelayMs', -1],
      ['drainDelayMs', Number.POSITIVE_INFINITY],
      ['drainTaskTimeoutMs', 0.1],
      ['shutdownTimeoutMs', '15s'],
      ['hookTimeoutMs', -5_000],
      ['hardDeadlineMs', 28_000.5],
      ['hardDeadlineMs', null],
      ['keepAliveTimeoutMs', -65_000],
      ['headersTimeoutMs', '66000'],
      ['terminationGracePeriodSeconds', 0],
      ['terminationGracePeriodSeconds', -30],
      ['terminationGracePeriodSeconds', Number.POSITIVE_INFINITY],
      ['terminationGracePeriodSeconds', '30'],
      ['signals', []],
      ['signals', 'SIGTERM'],
      ['signals', ['SIGKILL']],
      ['signals', ['SIGTERM', 'sigterm']],
      ['instanceId', ''],
      ['instanceId', '   '],
      ['instanceId', 42],
      ['version', ''],
      ['version', 2],
      ['color', 'Blue'],
      ['color', 'blue green'],
      ['color', ''],
      ['color', '1blue'],
      ['color', 'a'.repeat(33)],
      ['exitOnShutdown', 'yes'],
      ['exitOnShutdown', 0],
    ])('rejects %s = %p with an error that names the option', (field, value) => {
      const error = rejectionOf({ [field]: value });
      expect(error.code).toBe('LIFECYCLE_INVALID_OPTIONS');
      expect(error.problems).toHaveLength(1);
      // `<option path>: <what is wrong>`; signals name the rejected element (`signals[1]: ...`).
      expect(error.problems[0]).toMatch(new RegExp(`^${field}(\\[\\d+\\])?: `));
      expect(error.message).toMatch(/^Invalid LifecycleModule options/);
    });

    it.each<[string, unknown, string]>([
      ['drainDelayMs', -1, 'drainDelayMs: must be a whole number of milliseconds >= 0'],
      ['warmupTimeoutMs', '30000', 'warmupTimeoutMs: must be a whole number of milliseconds >= 0'],
      ['terminationGracePeriodSeconds', 0, 'terminationGracePeriodSeconds: must be a positive number'],
      ['signals', [], 'signals: must be a non-empty array of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR2'],
      ['signals', ['SIGTERM', 'SIGKILL'], 'signals[1]: must be one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR2'],
      ['instanceId', ' ', 'instanceId: must be a non-empty string'],
      ['color', 'Blue', 'color: must be a lower-case label such as "blue" or "green"'],
      ['exitOnShutdown', 'yes', 'exitOnShutdown: must be a boolean'],
    ])('says what %s = %p must be, without repeating the value', (field, value, problem) => {
      expect(rejectionOf({ [field]: value }).problems).toEqual([problem]);
    });

    it('rejects an unknown option instead of ignoring it, and suggests the one meant', () => {
      expect(rejectionOf({ drainDelayMS: 10_000 }).problems).toEqual(['drainDelayMS: unknown option (did you mean "drainDelayMs"?)']);
    });

    it('lists the known options when an unknown one resembles none of them', () => {
      const [problem] = rejectionOf({ drainDelay: 10_000 }).problems;
      expect(problem).toMatch(/^drainDelay: unknown option; known options: warmupTimeoutMs, minReadyDelayMs, drainDelayMs, /);
    });

    it('never repeats a rejected value, which may be a secret', () => {
      const secret = 'postgres://orders:hunter2@db.internal/orders';
      const error = rejectionOf({ color: secret, version: { token: 'hunter2' }, instanceId: ['hunter2'], password: 'hunter2' });
      expect(error.problems).toEqual([
        'instanceId: must be a non-empty string',
        'version: must be a non-empty string',
        'color: must be a lower-case label such as "blue" or "green"',
        expect.stringMatching(/^password: unknown option; known options: /),
      ]);
      expect(error.message).not.toContain('hunter2');
    });

    it('accepts the boundary values of the numeric options', () => {
      expect(() => resolveLifecycleOptions({ minReadyDelayMs: 0, drainDelayMs: 0, drainTaskTimeoutMs: 0 }, {})).not.toThrow();
      expect(() => resolveLifecycleOptions({ color: 'a'.repeat(32) }, {})).not.toThrow();
      expect(() => resolveLifecycleOptions({ terminationGracePeriodSeconds: 28.5 }, {})).not.toThrow();
    });

    it.each([null, 'drainDelayMs=5000', 5000])('rejects options that are not an object (%p)', (input) => {
      const error = rejectionOf(input);
      expect(error.problems).toEqual(['options must be an object']);
    });

    it('reports several problems in one error', () => {
      const error = rejectionOf({ drainDelayMs: -1, shutdownTimeoutMs: 'long', signals: ['SIGKILL'], color: 'RED', exitOnShutdown: 'no' });
      expect(error.problems).toHaveLength(5);
      for (const field of ['drainDelayMs', 'shutdownTimeoutMs', 'signals', 'color', 'exitOnShutdown']) {
        expect(error.message).toContain(field);
      }
      // One line per problem, so the operator sees the whole list at once.
      expect(error.message.split('\n').filter((line) => line.startsWith('  - '))).toHaveLength(5);
    });
  });

  describe('time budget', () => {
    it('reports a time-budget conflict together with the other problems', () => {
      const error = rejectionOf({ hardDeadlineMs: 10_000, color: 'Red', drainDelayMS: 1 });
      expect(error.problems).toEqual([
        'color: must be a lower-case label such as "blue" or "green"',
        'drainDelayMS: unknown option (did you mean "drainDelayMs"?)',
        expect.stringMatching(/^hardDeadlineMs: 10000 ms is shorter than the shutdown it must cover/),
      ]);
    });

    it('skips a rule whose options are themselves rejected, and still applies the others', () => {
      const error = rejectionOf({ drainDelayMs: 'long', hardDeadlineMs: 1_000, keepAliveTimeoutMs: 5_000, headersTimeoutMs: 4_000 });
      expect(error.problems).toEqual([
        'drainDelayMs: must be a whole number of milliseconds >= 0',
        'headersTimeoutMs: 4000 ms must be greater than keepAliveTimeoutMs (5000 ms)',
      ]);
    });

    it('rejects a hardDeadlineMs shorter than max(drainDelayMs, drainTaskTimeoutMs) + shutdownTimeoutMs + hookTimeoutMs', () => {
      // 5000 + 15000 + 5000 = 25000 with the defaults.
      expect(() => resolveLifecycleOptions({ hardDeadlineMs: 25_000 }, {})).not.toThrow();
      const error = rejectionOf({ hardDeadlineMs: 24_999 });
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatch(/^hardDeadlineMs: 24999 ms is shorter than the shutdown it must cover: /);
      expect(error.problems[0]).toContain('25000 ms');
    });

    it('counts the longer of the drain delay and the drain task timeout', () => {
      // max(1000, 8000) + 15000 + 5000 = 28000
      expect(() => resolveLifecycleOptions({ drainDelayMs: 1_000, drainTaskTimeoutMs: 8_000, hardDeadlineMs: 28_000 }, {})).not.toThrow();
      expect(rejectionOf({ drainDelayMs: 1_000, drainTaskTimeoutMs: 8_000, hardDeadlineMs: 27_999 }).message).toContain('hardDeadlineMs');
      expect(rejectionOf({ drainDelayMs: 8_000, drainTaskTimeoutMs: 1_000, hardDeadlineMs: 27_999 }).message).toContain('hardDeadlineMs');
    });

    it('rejects a hard deadline that does not end before terminationGracePeriodSeconds', () => {
      // The derived deadline is 28000 ms.
      expect(() => resolveLifecycleOptions({ terminationGracePeriodSeconds: 29 }, {})).not.toThrow();
      const error = rejectionOf({ terminationGracePeriodSeconds: 28 });
      expect(error.problems).toHaveLength(1);
      expect(error.problems[0]).toMatch(/^hardDeadlineMs: 28000 ms must end before /);
      expect(error.problems[0]).toContain('terminationGracePeriodSeconds (28 s = 28000 ms)');
      expect(rejectionOf({ hardDeadlineMs: 40_000, terminationGracePeriodSeconds: 30 }).message).toContain('terminationGracePeriodSeconds');
    });

    it('rejects a headersTimeoutMs that is not greater than keepAliveTimeoutMs', () => {
      expect(() => resolveLifecycleOptions({ keepAliveTimeoutMs: 5_000, headersTimeoutMs: 5_001 }, {})).not.toThrow();
      for (const headersTimeoutMs of [5_000, 4_000]) {
        const error = rejectionOf({ keepAliveTimeoutMs: 5_000, headersTimeoutMs });
        expect(error.problems).toEqual([`headersTimeoutMs: ${headersTimeoutMs} ms must be greater than keepAliveTimeoutMs (5000 ms)`]);
      }
      // An explicit headersTimeoutMs is checked against the default keep-alive (65000) too.
      expect(rejectionOf({ headersTimeoutMs: 60_000 }).message).toContain('keepAliveTimeoutMs (65000 ms)');
    });

    it('reports every time-budget conflict in one error', () => {
      const error = rejectionOf({
        hardDeadlineMs: 10_000,
        terminationGracePeriodSeconds: 5,
        keepAliveTimeoutMs: 5_000,
        headersTimeoutMs: 4_000,
      });
      expect(error.problems).toHaveLength(3);
      expect(error.problems[0]).toContain('shorter than the shutdown it must cover');
      expect(error.problems[1]).toContain('terminationGracePeriodSeconds');
      expect(error.problems[2]).toContain('headersTimeoutMs');
    });
  });
});

describe('shutdownBudgetMs', () => {
  it('adds the longer drain phase, the request timeout and the hook time', () => {
    expect(shutdownBudgetMs({ drainDelayMs: 5_000, drainTaskTimeoutMs: 2_000, shutdownTimeoutMs: 15_000, hookTimeoutMs: 5_000 })).toBe(
      25_000,
    );
    expect(shutdownBudgetMs({ drainDelayMs: 1_000, drainTaskTimeoutMs: 4_000, shutdownTimeoutMs: 2_000, hookTimeoutMs: 500 })).toBe(6_500);
  });
});
