import type { BoundedHistogram, HistogramSeries } from '../bounded.histogram';
import { UNMATCHED_ROUTE } from '../metrics.constants';

/**
 * Turns completed requests into observations of `http_request_duration_seconds`. Adapter-agnostic:
 * the adapter hooks hand it the method, the route template their router matched (undefined for
 * none), the status code and the duration.
 *
 * The hot path is three Map lookups keyed by values the adapters hand out as the same string
 * objects every time (route templates, method names) and a small integer, ending at a cached
 * series. Label building, route normalisation and the exclusion list run once per distinct
 * (route, method, status), on a cache miss. The cache is bounded: routes are the application's
 * templates plus one `undefined`, methods are the ones Node's parser knows, status codes are 3 digits.
 */
export class HttpMetricsRecorder {
  /** route template → method → status code → series, or null when the route is excluded. */
  private readonly cache = new Map<string | undefined, Map<string, Map<number, HistogramSeries | null>>>();
  private readonly excluded: ReadonlySet<string>;

  constructor(
    private readonly histogram: BoundedHistogram,
    excludeRoutes: readonly string[],
  ) {
    this.excluded = new Set(excludeRoutes);
  }

  /** An `HttpObserver`: bound, so that the adapter hooks call it directly. */
  readonly observe = (method: string, route: string | undefined, statusCode: number, seconds: number): void => {
    let byMethod = this.cache.get(route);
    if (byMethod === undefined) {
      byMethod = new Map();
      this.cache.set(route, byMethod);
    }
    let byStatus = byMethod.get(method);
    if (byStatus === undefined) {
      byStatus = new Map();
      byMethod.set(method, byStatus);
    }
    let series = byStatus.get(statusCode);
    if (series === undefined) {
      series = this.resolve(method, route, statusCode);
      byStatus.set(statusCode, series);
    }
    if (series !== null) series.observe(seconds);
  };

  private resolve(method: string, route: string | undefined, statusCode: number): HistogramSeries | null {
    const label = route === undefined || route === '' ? UNMATCHED_ROUTE : routeLabel(route);
    if (this.excluded.has(label)) return null;
    return this.histogram.seriesFor([method, label, String(statusCode)]);
  }
}

/**
 * The route label of a template as an adapter's router reports it. The one divergence between the
 * adapters is the wildcard: Nest hands Express 5 `*` as `{*path}` (path-to-regexp 8 syntax), while
 * Fastify keeps `*`; both become `*`, so one route has one label whichever adapter serves it.
 */
export function routeLabel(template: string): string {
  return template.replace(/\{\*[A-Za-z0-9_]*\}|\*[A-Za-z_][A-Za-z0-9_]*/g, '*');
}
