import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected } from '@nest-rollout/lifecycle';
import { register as globalRegistry, Registry, type RegistryContentType } from 'prom-client';
import { z } from 'zod';
import { DEFAULT_DURATION_BUCKETS, UNMATCHED_ROUTE } from './metrics.constants';
import { MetricsOptionsError } from './metrics.errors';

/** A prom-client registry of either exposition format. */
export type MetricsRegistry = Registry<RegistryContentType>;

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

const MAX_SERIES_LIMIT = 100_000;

const BOOLEAN = 'must be a boolean';
const REGISTRY = 'must be a prom-client Registry, e.g. new Registry()';
const PREFIX = 'must start a valid metric name: letters, digits, "_" and ":", not a digit first';
const BUCKETS = 'must be an array of 1 to 64 upper bounds in seconds';
const BUCKET = 'must be a positive, finite number of seconds';
const EXCLUDED_ROUTE = `must be a route template starting with "/" (as the route label reads) or "${UNMATCHED_ROUTE}"`;
const MAX_SERIES = `must be a whole number from 1 to ${MAX_SERIES_LIMIT}`;
const TRACK = 'must be a lower-case label such as "stable" or "canary"';
const COMMIT = 'must be 1-64 letters, digits, ".", "_", "-" or "/"';
const METRICS_PATH = 'must be a URL path such as "metrics" or "ops/metrics"';

const method = z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function');
/**
 * Duck-typed besides `instanceof`: an application may hold a registry from another copy of
 * prom-client (a nested node_modules), which works just as well. Loose, as a registry has more.
 */
const registryLike = z.looseObject({ registerMetric: method, getSingleMetric: method, removeSingleMetric: method, metrics: method });

const boolean = z.boolean({ error: BOOLEAN });
const track = z.string({ error: TRACK }).regex(/^[a-z][a-z0-9-]{0,31}$/, { error: TRACK });
const commit = z.string({ error: COMMIT }).regex(/^[A-Za-z0-9._\-/]{1,64}$/, { error: COMMIT });

/** Bucket bounds must rise: prom-client would otherwise sort them silently, or fail on a repeat. */
function bucketsAscend(buckets: number[], ctx: z.RefinementCtx<number[]>): void {
  buckets.forEach((bound, index) => {
    if (index === 0 || rejected(ctx, `[${index}]`, `[${index - 1}]`) || bound > buckets[index - 1]) return;
    ctx.addIssue({ code: 'custom', path: [index], message: `must be greater than buckets[${index - 1}]; bounds are strictly ascending` });
  });
}

/** Options of `MetricsModule.forRoot()`, before the defaults. */
const metricsOptionsObject = optionGroup({
  /**
   * The prom-client registry to register into and serve. The default is prom-client's global one,
   * so metrics the application declares itself (`new Counter(...)`, `makeCounterProvider`) appear
   * in the same scrape. Two applications in one process may share it: each metric is registered
   * once and shared, and removed when the last application using it closes.
   * @default prom-client's global `register`
   */
  registry: z
    .custom<MetricsRegistry>((value) => value instanceof Registry || registryLike.safeParse(value).success, {
      // z.custom aborts the whole parse by default, which would skip the rules across fields.
      abort: false,
      error: REGISTRY,
    })
    .default(DEFAULT_METRICS_OPTIONS.registry),
  /**
   * Collect prom-client's default process and Node.js metrics (CPU, memory, event loop lag, GC,
   * handles). Registered once per registry, however many applications use it.
   * @default true
   */
  defaultMetrics: boolean.default(DEFAULT_METRICS_OPTIONS.defaultMetrics),
  /**
   * Prefix of the default metrics' names, e.g. `orders_` gives `orders_process_cpu_seconds_total`.
   * @default ''
   */
  defaultMetricsPrefix: z
    .string({ error: PREFIX })
    .regex(/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/, { error: PREFIX })
    .default(DEFAULT_METRICS_OPTIONS.defaultMetricsPrefix),
  /**
   * Record `http_request_duration_seconds` on the HTTP adapter's own hooks.
   * @default true
   */
  http: boolean.default(DEFAULT_METRICS_OPTIONS.http),
  /**
   * Upper bounds, in seconds, of the buckets of `http_request_duration_seconds` and
   * `rpc_server_duration_seconds`; strictly ascending.
   * @default [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
   */
  buckets: z
    .array(z.number({ error: BUCKET }).positive({ error: BUCKET }), { error: BUCKETS })
    .min(1, { error: BUCKETS })
    .max(64, { error: BUCKETS })
    .superRefine(bucketsAscend, EVEN_WITH_OTHER_PROBLEMS)
    .default(() => [...DEFAULT_METRICS_OPTIONS.buckets]),
  /**
   * Routes left out of `http_request_duration_seconds`, as their `route` label reads (the template,
   * e.g. `/health/live`, with the global prefix and version), or `unmatched`. The scrape endpoint
   * is always left out.
   * @default []
   */
  excludeRoutes: z
    .array(
      z.string({ error: EXCLUDED_ROUTE }).refine((route) => route.startsWith('/') || route === UNMATCHED_ROUTE, { error: EXCLUDED_ROUTE }),
      { error: 'must be an array of route templates such as "/health/live"' },
    )
    .default(() => [...DEFAULT_METRICS_OPTIONS.excludeRoutes]),
  /**
   * Series one metric may hold. Observations of a new label set beyond it go to one series whose
   * labels all read `__overflow__`, and `metrics_series_dropped_total` counts them: a bug that
   * puts an id into a label costs one series, not a Prometheus outage.
   * @default 1000
   */
  maxSeriesPerMetric: z
    .int({ error: MAX_SERIES })
    .min(1, { error: MAX_SERIES })
    .max(MAX_SERIES_LIMIT, { error: MAX_SERIES })
    .default(DEFAULT_METRICS_OPTIONS.maxSeriesPerMetric),
  /**
   * Serve the scrape endpoint on the application's own port. Turn it off when the management port
   * serves `/metrics` (see `MetricsService.managementRoute()`); the route then answers 404.
   * @default true
   */
  serveOnAppPort: boolean.default(DEFAULT_METRICS_OPTIONS.serveOnAppPort),
  /**
   * Release track in `app_info` (e.g. `stable`, `canary`); a lower-case label.
   * @default process.env.APP_TRACK || 'stable'
   */
  track: track.optional(),
  /**
   * Source commit in `app_info`.
   * @default process.env.APP_COMMIT || 'unknown'
   */
  commit: commit.optional(),
})
  // A setting that cannot take effect is a mistake worth stopping for.
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'defaultMetricsPrefix', 'defaultMetrics')) return;
    if (options.defaultMetricsPrefix !== '' && !options.defaultMetrics) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaultMetricsPrefix'],
        message: 'is set but defaultMetrics is false; remove the prefix or collect the default metrics',
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'excludeRoutes', 'http')) return;
    if (options.excludeRoutes.length > 0 && !options.http) {
      ctx.addIssue({
        code: 'custom',
        path: ['excludeRoutes'],
        message: 'is set but http is false; no HTTP request is recorded, so there is nothing to exclude',
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS);

/** The options schema with `env`, where track and commit default from `$APP_TRACK` and `$APP_COMMIT`. */
function metricsOptionsSchema(env: NodeJS.ProcessEnv) {
  const defaultTrack = env.APP_TRACK || DEFAULT_METRICS_OPTIONS.track;
  const defaultCommit = env.APP_COMMIT || DEFAULT_METRICS_OPTIONS.commit;
  return metricsOptionsObject
    .superRefine((options, ctx) => {
      // A default from the environment is checked like the option it stands for, and named so.
      if (options.track === undefined && !track.safeParse(defaultTrack).success) {
        ctx.addIssue({ code: 'custom', path: ['track'], message: `${TRACK}; fix APP_TRACK or set track` });
      }
      if (options.commit === undefined && !commit.safeParse(defaultCommit).success) {
        ctx.addIssue({ code: 'custom', path: ['commit'], message: `${COMMIT}; fix APP_COMMIT or set commit` });
      }
    }, EVEN_WITH_OTHER_PROBLEMS)
    .transform((options) =>
      Object.freeze({
        ...options,
        buckets: Object.freeze(options.buckets),
        excludeRoutes: Object.freeze(options.excludeRoutes),
        track: options.track ?? defaultTrack,
        commit: options.commit ?? defaultCommit,
      }),
    );
}

/** Options of `MetricsModule.forRoot()`; every field is optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface MetricsModuleOptions extends z.input<typeof metricsOptionsObject> {}
/** The options after one merge with the defaults, as `METRICS_OPTIONS` provides them. */
export type ResolvedMetricsOptions = z.output<ReturnType<typeof metricsOptionsSchema>>;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveMetricsOptions(input: MetricsModuleOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedMetricsOptions {
  return parseModuleOptions(metricsOptionsSchema(env), input, (problems) => new MetricsOptionsError(problems));
}

const metricsPathSchema = z.strictObject({
  path: z
    .string({ error: METRICS_PATH })
    .regex(/^[A-Za-z0-9_\-/.]+$/, { error: METRICS_PATH })
    .regex(/[^/]/, { error: METRICS_PATH })
    .transform((path) => path.replace(/^\/+|\/+$/g, '')),
});

export function validateMetricsPath(path: unknown): string {
  return parseModuleOptions(metricsPathSchema, { path }, (problems) => new MetricsOptionsError(problems)).path;
}
