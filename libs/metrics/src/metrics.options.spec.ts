import { register, Registry } from 'prom-client';
import { MetricsOptionsError } from './metrics.errors';
import { DEFAULT_METRICS_OPTIONS, MetricsModuleOptions, resolveMetricsOptions, validateMetricsPath } from './metrics.options';

function problemsOf(input: unknown, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    resolveMetricsOptions(input as MetricsModuleOptions, env);
  } catch (error) {
    if (error instanceof MetricsOptionsError) return error.problems;
    throw error;
  }
  throw new Error('expected MetricsOptionsError');
}

describe('resolveMetricsOptions', () => {
  it('resolves the documented defaults, with prom-client’s global registry', () => {
    expect(resolveMetricsOptions({}, {})).toEqual({
      registry: register,
      defaultMetrics: true,
      defaultMetricsPrefix: '',
      http: true,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      excludeRoutes: [],
      maxSeriesPerMetric: 1000,
      serveOnAppPort: true,
      track: 'stable',
      commit: 'unknown',
    });
    expect(DEFAULT_METRICS_OPTIONS.registry).toBe(register);
  });

  it('takes track and commit from APP_TRACK and APP_COMMIT, and options over the environment', () => {
    const env = { APP_TRACK: 'canary', APP_COMMIT: '3f2c1ab' };
    expect(resolveMetricsOptions({}, env)).toMatchObject({ track: 'canary', commit: '3f2c1ab' });
    expect(resolveMetricsOptions({ track: 'stable', commit: 'abc' }, env)).toMatchObject({ track: 'stable', commit: 'abc' });
  });

  it('keeps custom options and freezes the result', () => {
    const registry = new Registry();
    const resolved = resolveMetricsOptions(
      {
        registry,
        defaultMetricsPrefix: 'orders_',
        buckets: [0.1, 1],
        excludeRoutes: ['/health/live'],
        maxSeriesPerMetric: 10,
        serveOnAppPort: false,
      },
      {},
    );
    expect(resolved).toMatchObject({
      registry,
      defaultMetricsPrefix: 'orders_',
      buckets: [0.1, 1],
      excludeRoutes: ['/health/live'],
      maxSeriesPerMetric: 10,
    });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(resolved.buckets)).toBe(true);
  });

  it('reports every problem at once, each naming its option', () => {
    const problems = problemsOf({
      registry: {},
      defaultMetrics: 'yes',
      defaultMetricsPrefix: '1x',
      http: 1,
      buckets: [1, 0.5, -2, Number.NaN],
      excludeRoutes: ['health/live'],
      maxSeriesPerMetric: 0,
      serveOnAppPort: 'no',
      track: 'Canary!',
      commit: '',
    });
    expect(problems).toEqual([
      'registry: must be a prom-client Registry, e.g. new Registry()',
      'defaultMetrics: must be a boolean',
      'defaultMetricsPrefix: must start a valid metric name: letters, digits, "_" and ":", not a digit first',
      'http: must be a boolean',
      'buckets[2]: must be a positive, finite number of seconds',
      'buckets[3]: must be a positive, finite number of seconds',
      'buckets[1]: must be greater than buckets[0]; bounds are strictly ascending',
      'excludeRoutes[0]: must be a route template starting with "/" (as the route label reads) or "unmatched"',
      'maxSeriesPerMetric: must be a whole number from 1 to 100000',
      'serveOnAppPort: must be a boolean',
      'track: must be a lower-case label such as "stable" or "canary"',
      'commit: must be 1-64 letters, digits, ".", "_", "-" or "/"',
    ]);
  });

  it('rejects settings that cannot take effect together', () => {
    expect(problemsOf({ defaultMetrics: false, defaultMetricsPrefix: 'orders_' })).toEqual([
      'defaultMetricsPrefix: is set but defaultMetrics is false; remove the prefix or collect the default metrics',
    ]);
    expect(problemsOf({ http: false, excludeRoutes: ['/health/live'] })).toEqual([
      'excludeRoutes: is set but http is false; no HTTP request is recorded, so there is nothing to exclude',
    ]);
  });

  it('names the environment variable when a default from it is invalid', () => {
    expect(problemsOf({}, { APP_TRACK: 'Blue Team', APP_COMMIT: 'a b' })).toEqual([
      'track: must be a lower-case label such as "stable" or "canary"; fix APP_TRACK or set track',
      'commit: must be 1-64 letters, digits, ".", "_", "-" or "/"; fix APP_COMMIT or set commit',
    ]);
  });

  it('rejects a value that is not an object, and empty bucket lists', () => {
    expect(problemsOf(null)).toEqual(['options must be an object']);
    expect(problemsOf({ buckets: [] })).toEqual(['buckets: must be an array of 1 to 64 upper bounds in seconds']);
  });

  it('rejects an unknown option, naming it', () => {
    expect(problemsOf({ defaultmetrics: false })).toEqual(['defaultmetrics: unknown option (did you mean "defaultMetrics"?)']);
    expect(problemsOf({ path: 'metrics' })).toEqual([expect.stringMatching(/^path: unknown option; known options: registry, /)]);
  });

  it('never echoes a value it rejects, which may be a secret', () => {
    const secret = 'ghp_s3cr3tT0ken';
    const problems = problemsOf(
      { commit: `${secret}!`, defaultMetricsPrefix: `${secret}-`, excludeRoutes: [secret], registry: { token: secret } },
      { APP_TRACK: `Bearer ${secret}` },
    );
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).not.toContain('s3cr3t');
  });

  it('accepts a registry from another copy of prom-client (duck-typed)', () => {
    const foreign = { registerMetric() {}, getSingleMetric() {}, removeSingleMetric() {}, metrics: async () => '' };
    expect(resolveMetricsOptions({ registry: foreign as unknown as Registry }, {}).registry).toBe(foreign);
  });
});

describe('validateMetricsPath', () => {
  it('trims slashes and rejects what is not a URL path', () => {
    expect(validateMetricsPath('/ops/metrics/')).toBe('ops/metrics');
    expect(() => validateMetricsPath('a b')).toThrow(MetricsOptionsError);
    expect(() => validateMetricsPath('/')).toThrow(/path: must be a URL path/);
  });
});
