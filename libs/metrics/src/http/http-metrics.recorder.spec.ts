import { BoundedHistogram } from '../bounded.histogram';
import { UNMATCHED_ROUTE } from '../metrics.constants';
import { HttpMetricsRecorder, routeLabel } from './http-metrics.recorder';

function histogram(): BoundedHistogram {
  return new BoundedHistogram({
    name: 'http_request_duration_seconds',
    help: 'Duration.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.1, 1],
    maxSeries: 100,
    onCapReached: () => undefined,
  });
}

describe('HttpMetricsRecorder', () => {
  it('observes into one series per method, route label and status code', () => {
    const h = histogram();
    const recorder = new HttpMetricsRecorder(h, []);
    recorder.observe('GET', '/orders/:id', 200, 0.05);
    recorder.observe('GET', '/orders/:id', 200, 0.5);
    recorder.observe('GET', '/orders/:id', 404, 0.01);
    recorder.observe('GET', undefined, 404, 0.01);
    recorder.observe('GET', '', 404, 0.01);
    expect(h.seriesFor(['GET', '/orders/:id', '200']).count).toBe(2);
    expect(h.seriesFor(['GET', '/orders/:id', '404']).count).toBe(1);
    expect(h.seriesFor(['GET', UNMATCHED_ROUTE, '404']).count).toBe(2);
    expect(h.seriesCount).toBe(3);
  });

  it('skips excluded routes, matched by their label', () => {
    const h = histogram();
    const recorder = new HttpMetricsRecorder(h, ['/files/*', UNMATCHED_ROUTE]);
    recorder.observe('GET', '/files/{*path}', 200, 0.01);
    recorder.observe('GET', undefined, 404, 0.01);
    recorder.observe('GET', '/orders', 200, 0.01);
    expect(h.seriesCount).toBe(1);
  });

  it('gives templates that differ only in how the adapter spells the wildcard one series', () => {
    const h = histogram();
    const recorder = new HttpMetricsRecorder(h, []);
    recorder.observe('GET', '/files/{*path}', 200, 0.01);
    recorder.observe('GET', '/files/*', 200, 0.01);
    expect(h.seriesFor(['GET', '/files/*', '200']).count).toBe(2);
    expect(h.seriesCount).toBe(1);
  });
});

describe('routeLabel', () => {
  it('spells every wildcard "*" and leaves parameters alone', () => {
    expect(routeLabel('/api/v1/files/{*path}')).toBe('/api/v1/files/*');
    expect(routeLabel('/files/*rest')).toBe('/files/*');
    expect(routeLabel('/files/*')).toBe('/files/*');
    expect(routeLabel('/orders/:id/items/:item')).toBe('/orders/:id/items/:item');
  });
});
