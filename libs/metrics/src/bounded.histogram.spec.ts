import { Histogram, Registry } from 'prom-client';
import { BoundedHistogram } from './bounded.histogram';
import { OVERFLOW_LABEL_VALUE } from './metrics.constants';
import { SERIES_DROPPED } from './series-cap';
import { promtoolCheckMetrics } from '../testing/promtool';

const LABELS = ['method', 'route', 'status_code'];
const BUCKETS = [0.005, 0.01, 0.1, 1];

function bounded(maxSeries = 100, onCapReached = jest.fn()): BoundedHistogram {
  return new BoundedHistogram({
    name: 'http_request_duration_seconds',
    help: 'Duration.',
    labelNames: LABELS,
    buckets: BUCKETS,
    maxSeries,
    onCapReached,
  });
}

/** Sorts lines so that two expositions compare regardless of label order and series order. */
function normalise(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/\{(.*)\}/, (_, labels: string) => `{${labels.split(',').sort().join(',')}}`))
    .sort();
}

describe('BoundedHistogram', () => {
  it('exposes exactly what a prom-client Histogram exposes for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const histogram = bounded();
    ours.registerMetric(histogram as never);
    const reference = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Duration.',
      labelNames: LABELS,
      buckets: BUCKETS,
      registers: [theirs],
    });
    const observations: [string, string, string, number][] = [
      ['GET', '/orders/:id', '200', 0.003],
      ['GET', '/orders/:id', '200', 0.005],
      ['GET', '/orders/:id', '200', 0.0051],
      ['GET', '/orders/:id', '200', 2.5],
      ['POST', '/orders', '201', 0.09],
      ['GET', 'unmatched', '404', 0.0001],
    ];
    for (const [method, route, status, seconds] of observations) {
      histogram.seriesFor([method, route, status]).observe(seconds);
      reference.observe({ method, route, status_code: status }, seconds);
    }
    const text = await ours.metrics();
    expect(normalise(text)).toEqual(normalise(await theirs.metrics()));
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
    // JSON too (cluster aggregation reads it), but for prom-client's empty exemplar slots.
    const withoutExemplars = (metrics: { values: object[] }[]) =>
      metrics.map((m) => ({ ...m, values: m.values.map((v) => Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'exemplar'))) }));
    expect(await ours.getMetricsAsJSON()).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('counts a value equal to a bound in that bound’s bucket (le is inclusive)', () => {
    const series = bounded().seriesFor(['GET', '/', '200']);
    series.observe(0.01);
    series.observe(1);
    series.observe(1.5);
    expect([...series.bucketCounts]).toEqual([0, 1, 0, 1, 1]);
    expect(series.count).toBe(3);
    expect(series.sum).toBeCloseTo(2.51);
  });

  it('returns the same series for the same label values', () => {
    const histogram = bounded();
    expect(histogram.seriesFor(['GET', '/a', '200'])).toBe(histogram.seriesFor(['GET', '/a', '200']));
    expect(histogram.seriesFor(['GET', '/a', '200'])).not.toBe(histogram.seriesFor(['GET', '/a', '500']));
  });

  it('sends new label sets past the cap to one overflow series, counts them and reports the cap once', async () => {
    const onCapReached = jest.fn();
    const histogram = bounded(2, onCapReached);
    histogram.seriesFor(['GET', '/a', '200']).observe(0.001);
    histogram.seriesFor(['GET', '/b', '200']).observe(0.001);
    const overflow = histogram.seriesFor(['GET', '/c', '200']);
    expect(histogram.seriesFor(['GET', '/d', '200'])).toBe(overflow);
    expect(overflow.labels).toEqual({ method: OVERFLOW_LABEL_VALUE, route: OVERFLOW_LABEL_VALUE, status_code: OVERFLOW_LABEL_VALUE });
    overflow.observe(0.001);
    overflow.observe(0.002);
    // Known label sets keep their series.
    histogram.seriesFor(['GET', '/a', '200']).observe(0.001);
    expect(histogram.seriesCount).toBe(3);
    expect(histogram[SERIES_DROPPED]()).toBe(2);
    expect(onCapReached).toHaveBeenCalledTimes(1);
    expect(onCapReached).toHaveBeenCalledWith('http_request_duration_seconds', 2);
  });

  it('zeroes its series in place on reset, so that cached references keep recording', async () => {
    const histogram = bounded();
    const series = histogram.seriesFor(['GET', '/a', '200']);
    series.observe(0.5);
    histogram.reset();
    expect(series.count).toBe(0);
    series.observe(0.5);
    const registry = new Registry();
    registry.registerMetric(histogram as never);
    expect(await registry.metrics()).toContain('http_request_duration_seconds_count{method="GET",route="/a",status_code="200"} 1');
  });
});
