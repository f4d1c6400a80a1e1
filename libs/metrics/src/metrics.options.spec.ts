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
      expect.stringMatching(/^registry must be a prom-client Registry/),
      expect.stringMatching(/^defaultMetrics must be a boolean \(got "yes"\)/),
      expect.stringMatching(/^http must be a boolean/),
      expect.stringMatching(/^serveOnAppPort must be a boolean/),
      expect.stringMatching(/^defaultMetricsPrefix must start a valid metric name/),
      expect.stringMatching(/^buckets must be strictly ascending: buckets\[1\] \(0\.5\) follows 1/),
      expect.stringMatching(/^buckets\[2\] must be a positive, finite number/),
      expect.stringMatching(/^buckets\[3\] must be a positive, finite number of seconds \(got NaN\)/),
      expect.stringMatching(/^excludeRoutes\[0\] must be a route template starting with "\/"/),
      expect.stringMatching(/^maxSeriesPerMetric must be a whole number from 1 to 100000 \(got 0\)/),
      expect.stringMatching(/^track must be a lower-case label/),
      expect.stringMatching(/^commit must be 1-64 letters/),
    ]);
  });

  it('rejects settings that cannot take effect together', () => {
    expect(problemsOf({ defaultMetrics: false, defaultMetricsPrefix: 'orders_' })).toEqual([
      expect.stringMatching(/^defaultMetricsPrefix is set but defaultMetrics is false/),
    ]);
    expect(problemsOf({ http: false, excludeRoutes: ['/health/live'] })).toEqual([
      expect.stringMatching(/^excludeRoutes is set but http is false/),
    ]);
  });

  it('names the environment variable when a default from it is invalid', () => {
    expect(problemsOf({}, { APP_TRACK: 'Blue Team', APP_COMMIT: 'a b' })).toEqual([
      expect.stringMatching(/^track \(from APP_TRACK\) must be/),
      expect.stringMatching(/^commit \(from APP_COMMIT\) must be/),
    ]);
  });

  it('rejects a value that is not an object, and empty bucket lists', () => {
    expect(problemsOf(null)).toEqual(['options must be an object']);
    expect(problemsOf({ buckets: [] })).toEqual([expect.stringMatching(/^buckets must be an array of 1 to 64 upper bounds/)]);
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
    expect(() => validateMetricsPath('/')).toThrow(/path must be a URL path/);
  });
});
