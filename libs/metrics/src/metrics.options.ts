import { register as globalRegistry, Registry, type RegistryContentType } from 'prom-client';
import { DEFAULT_DURATION_BUCKETS, UNMATCHED_ROUTE } from './metrics.constants';
import { MetricsOptionsError } from './metrics.errors';

/** A prom-client registry of either exposition format. */
export type MetricsRegistry = Registry<RegistryContentType>;

/** Options of `MetricsModule.forRoot()`; every field is optional. */
export interface MetricsModuleOptions {
  /**
   * The prom-client registry to register into and serve. The default is prom-client's global one,
   * so metrics the application declares itself (`new Counter(...)`, `makeCounterProvider`) appear
   * in the same scrape. Two applications in one process may share it: each metric is registered
   * once and shared, and removed when the last application using it closes.
   * @default prom-client's global `register`
   */
  registry?: MetricsRegistry;
  /**
   * Collect prom-client's default process and Node.js metrics (CPU, memory, event loop lag, GC,
   * handles). Registered once per registry, however many applications use it.
   * @default true
   */
  defaultMetrics?: boolean;
  /**
   * Prefix of the default metrics' names, e.g. `orders_` gives `orders_process_cpu_seconds_total`.
   * @default ''
   */
  defaultMetricsPrefix?: string;
  /**
   * Record `http_request_duration_seconds` on the HTTP adapter's own hooks.
   * @default true
   */
  http?: boolean;
  /**
   * Upper bounds, in seconds, of the buckets of `http_request_duration_seconds` and
   * `rpc_server_duration_seconds`; strictly ascending.
   * @default [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  buckets?: number[];
  /**
   * Routes left out of `http_request_duration_seconds`, as their `route` label reads (the template,
   * e.g. `/health/live`, with the global prefix and version), or `unmatched`. The scrape endpoint
   * is always left out.
   * @default []
   */
  excludeRoutes?: string[];
  /**
   * Series one metric may hold. Observations of a new label set beyond it go to one series whose
   * labels all read `__overflow__`, and `metrics_series_dropped_total` counts them: a bug that
   * puts an id into a label costs one series, not a Prometheus outage.
   * @default 1000
   */
  maxSeriesPerMetric?: number;
  /**
   * Serve the scrape endpoint on the application's own port. Turn it off when the management port
   * serves `/metrics` (see `MetricsService.managementRoute()`); the route then answers 404.
   * @default true
   */
  serveOnAppPort?: boolean;
  /**
   * Release track in `app_info` (e.g. `stable`, `canary`); a lower-case label.
   * @default process.env.APP_TRACK || 'stable'
   */
  track?: string;
  /**
   * Source commit in `app_info`.
   * @default process.env.APP_COMMIT || 'unknown'
   */
  commit?: string;
}

export interface ResolvedMetricsOptions {
  readonly registry: MetricsRegistry;
  readonly defaultMetrics: boolean;
  readonly defaultMetricsPrefix: string;
  readonly http: boolean;
  readonly buckets: readonly number[];
  readonly excludeRoutes: readonly string[];
  readonly maxSeriesPerMetric: number;
  readonly serveOnAppPort: boolean;
  readonly track: string;
  readonly commit: string;
}

export const DEFAULT_METRICS_OPTIONS = {
  registry: globalRegistry as MetricsRegistry,
  defaultMetrics: true,
  defaultMetricsPrefix: '',
  http: true,
  buckets: DEFAULT_DURATION_BUCKETS,
  excludeRoutes: [] as readonly string[],
  maxSeriesPerMetric: 1000,
  serveOnAppPort: true,
  track: 'stable',
  commit: 'unknown',
} as const;

/**
 * Path of the scrape endpoint; a static extra of `forRoot`/`forRootAsync` because Nest reads
 * controller paths when the module is defined, before any async option resolves.
 * @default 'metrics'
 */
export const DEFAULT_METRICS_PATH = 'metrics';

const METRIC_NAME_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TRACK = /^[a-z][a-z0-9-]{0,31}$/;
const COMMIT = /^[A-Za-z0-9._\-/]{1,64}$/;
const MAX_SERIES_LIMIT = 100_000;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveMetricsOptions(input: MetricsModuleOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedMetricsOptions {
  if (input === null || typeof input !== 'object') throw new MetricsOptionsError(['options must be an object']);
  const problems: string[] = [];
  const d = DEFAULT_METRICS_OPTIONS;

  const registry = input.registry ?? d.registry;
  if (!isRegistry(registry)) {
    problems.push(`registry must be a prom-client Registry, e.g. new Registry() (got ${show(input.registry)})`);
  }
  const defaultMetrics = bool(problems, 'defaultMetrics', input.defaultMetrics) ?? d.defaultMetrics;
  const http = bool(problems, 'http', input.http) ?? d.http;
  const serveOnAppPort = bool(problems, 'serveOnAppPort', input.serveOnAppPort) ?? d.serveOnAppPort;

  const prefix = input.defaultMetricsPrefix;
  if (prefix !== undefined && (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME_PREFIX.test(prefix)))) {
    problems.push(
      `defaultMetricsPrefix must start a valid metric name: letters, digits, "_" and ":", not a digit first (got ${show(prefix)})`,
    );
  }
  // Rules across fields: a setting that cannot take effect is a mistake worth stopping for.
  if (prefix && input.defaultMetrics === false) {
    problems.push('defaultMetricsPrefix is set but defaultMetrics is false: remove the prefix or collect the default metrics');
  }

  const buckets = input.buckets ?? d.buckets;
  if (!Array.isArray(buckets) || buckets.length === 0 || buckets.length > 64) {
    problems.push(`buckets must be an array of 1 to 64 upper bounds in seconds (got ${show(input.buckets)})`);
  } else {
    buckets.forEach((bound, index) => {
      if (typeof bound !== 'number' || !Number.isFinite(bound) || bound <= 0) {
        problems.push(`buckets[${index}] must be a positive, finite number of seconds (got ${show(bound)})`);
      } else if (index > 0 && typeof buckets[index - 1] === 'number' && bound <= buckets[index - 1]) {
        problems.push(`buckets must be strictly ascending: buckets[${index}] (${bound}) follows ${buckets[index - 1]}`);
      }
    });
  }

  const excludeRoutes = input.excludeRoutes ?? d.excludeRoutes;
  if (!Array.isArray(excludeRoutes)) {
    problems.push(`excludeRoutes must be an array of route templates such as "/health/live" (got ${show(input.excludeRoutes)})`);
  } else {
    excludeRoutes.forEach((route, index) => {
      if (typeof route !== 'string' || !(route.startsWith('/') || route === UNMATCHED_ROUTE)) {
        problems.push(
          `excludeRoutes[${index}] must be a route template starting with "/" (as the route label reads) or "${UNMATCHED_ROUTE}" (got ${show(route)})`,
        );
      }
    });
    if (excludeRoutes.length > 0 && input.http === false) {
      problems.push('excludeRoutes is set but http is false: no HTTP request is recorded, so there is nothing to exclude');
    }
  }

  const maxSeries = input.maxSeriesPerMetric;
  if (maxSeries !== undefined && !(Number.isInteger(maxSeries) && maxSeries >= 1 && maxSeries <= MAX_SERIES_LIMIT)) {
    problems.push(`maxSeriesPerMetric must be a whole number from 1 to ${MAX_SERIES_LIMIT} (got ${show(maxSeries)})`);
  }

  const track = input.track ?? (env.APP_TRACK || d.track);
  if (typeof track !== 'string' || !TRACK.test(track)) {
    problems.push(
      `track${input.track === undefined ? ' (from APP_TRACK)' : ''} must be a lower-case label such as "stable" or "canary" (got ${show(track)})`,
    );
  }
  const commit = input.commit ?? (env.APP_COMMIT || d.commit);
  if (typeof commit !== 'string' || !COMMIT.test(commit)) {
    problems.push(
      `commit${input.commit === undefined ? ' (from APP_COMMIT)' : ''} must be 1-64 letters, digits, ".", "_", "-" or "/" (got ${show(commit)})`,
    );
  }

  if (problems.length > 0) throw new MetricsOptionsError(problems);
  return Object.freeze({
    registry,
    defaultMetrics,
    defaultMetricsPrefix: prefix ?? d.defaultMetricsPrefix,
    http,
    buckets: Object.freeze([...buckets]),
    excludeRoutes: Object.freeze([...excludeRoutes]),
    maxSeriesPerMetric: maxSeries ?? d.maxSeriesPerMetric,
    serveOnAppPort,
    track,
    commit,
  });
}

export function validateMetricsPath(path: unknown): string {
  if (typeof path !== 'string' || !/^[A-Za-z0-9_\-/.]+$/.test(path) || path.replace(/\//g, '') === '') {
    throw new MetricsOptionsError([`path must be a URL path such as "metrics" or "ops/metrics" (got ${show(path)})`]);
  }
  return path.replace(/^\/+|\/+$/g, '');
}

/**
 * Duck-typed rather than `instanceof`: an application may hold a registry from another copy of
 * prom-client (a nested node_modules), which works just as well.
 */
function isRegistry(value: unknown): value is MetricsRegistry {
  if (value instanceof Registry) return true;
  const r = value as Partial<Record<keyof Registry, unknown>> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.registerMetric === 'function' &&
    typeof r.getSingleMetric === 'function' &&
    typeof r.removeSingleMetric === 'function' &&
    typeof r.metrics === 'function'
  );
}

function bool(problems: string[], field: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  problems.push(`${field} must be a boolean (got ${show(value)})`);
  return undefined;
}

/** Shows a bad value in a message; functions and objects by their type. */
function show(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (value === null || ['number', 'boolean', 'undefined'].includes(typeof value)) return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
