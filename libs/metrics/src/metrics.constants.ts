/** Injection tokens, metric names, label values and log event names of @nest-rollout/metrics. */
export const METRICS_OPTIONS = 'METRICS:RESOLVED_OPTIONS';
/** The prom-client `Registry` the module registers into and serves. */
export const METRICS_REGISTRY = 'METRICS:REGISTRY';
/** The clock behind `lifecycle_shutdown_duration_seconds`; unit tests replace it. */
export const METRICS_CLOCK = 'METRICS:CLOCK';
/** Path of the scrape endpoint (the `path` extra of `forRoot`). */
export const METRICS_PATH = 'METRICS:PATH';

/**
 * Every metric this package registers or documents. Prometheus conventions: base units in the
 * name (`_seconds`), `_total` on counters, `_info` for constant build labels.
 */
export const MetricName = {
  HTTP_REQUEST_DURATION_SECONDS: 'http_request_duration_seconds',
  HTTP_REQUESTS_IN_FLIGHT: 'http_requests_in_flight',
  RPC_SERVER_DURATION_SECONDS: 'rpc_server_duration_seconds',
  APP_INFO: 'app_info',
  LIFECYCLE_STATE: 'lifecycle_state',
  LIFECYCLE_TRANSITIONS_TOTAL: 'lifecycle_transitions_total',
  LIFECYCLE_SHUTDOWN_DURATION_SECONDS: 'lifecycle_shutdown_duration_seconds',
  METRICS_SERIES_DROPPED_TOTAL: 'metrics_series_dropped_total',
  // Published by the other nest-rollout modules through the MetricsPublisher.
  CANARY_DECISIONS_TOTAL: 'canary_decisions_total',
  REGISTRY_OPERATIONS_TOTAL: 'registry_operations_total',
  REGISTRY_REGISTERED: 'registry_registered',
  REGISTRY_REGISTRATIONS_LOST_TOTAL: 'registry_registrations_lost_total',
  REGISTRY_DEREGISTRATION_DURATION_SECONDS: 'registry_deregistration_duration_seconds',
  REGISTRY_DISCOVERY_STALENESS_SECONDS: 'registry_discovery_staleness_seconds',
  REGISTRY_DISCOVERY_INSTANCES: 'registry_discovery_instances',
  CONFIG_RELOADS_TOTAL: 'config_reloads_total',
  CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: 'config_last_reload_success_timestamp_seconds',
  CONFIG_INFO: 'config_info',
  HEALTH_READINESS_CHANGES_TOTAL: 'health_readiness_changes_total',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/**
 * The `route` label of requests that matched no route (404s of unknown paths, requests answered
 * by middleware before routing). One value for all of them: a scanner probing random URLs must not
 * create a series per URL. Real templates start with `/`, so it cannot collide with one.
 */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Every label of the one series that takes the observations of new label sets once a metric holds
 * `maxSeriesPerMetric` series; `metrics_series_dropped_total` counts them.
 */
export const OVERFLOW_LABEL_VALUE = '__overflow__';

/** Histogram buckets in seconds, from 5 ms to 10 s (prom-client's and most dashboards' defaults). */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Log event names; one event per line. */
export const MetricsEvent = {
  HTTP_INSTRUMENTED: 'metrics.http_instrumented',
  HTTP_ADAPTER_UNSUPPORTED: 'metrics.http_adapter_unsupported',
  SERIES_CAP_REACHED: 'metrics.series_cap_reached',
  DEFAULT_METRICS_REGISTERED: 'metrics.default_metrics_registered',
  GAUGE_READ_FAILED: 'metrics.gauge_read_failed',
} as const;
