/** Injection tokens, log event names and metric names of @nest-rollout/config. */

/** The validated options of DynamicConfigModule. */
export const DYNAMIC_CONFIG_OPTIONS = 'DYNAMIC_CONFIG:RESOLVED_OPTIONS';
/** The clock behind `config_last_reload_success_timestamp_seconds`; unit specs replace it with a ManualClock. */
export const DYNAMIC_CONFIG_CLOCK = 'DYNAMIC_CONFIG:CLOCK';
/** The layers in merge order: the `file` shorthand first, then `sources` (internal). */
export const DYNAMIC_CONFIG_SOURCES = 'DYNAMIC_CONFIG:SOURCES';

/** Log event names of the dynamic configuration; one event per line, with stable names that alerts can match. */
export const DynamicConfigEvent = {
  /** The first configuration is in force (start-up). */
  LOADED: 'config.loaded',
  /** A valid change is in force: version, source and changed keys (secret values masked). */
  APPLIED: 'config.applied',
  /** A change failed validation; the last good configuration stays in force. */
  REJECTED: 'config.rejected',
  /** A source has no document any more (file deleted, unparsable, backend unreachable); its last good layer stays. */
  SOURCE_FAILED: 'config.source_failed',
  /** A source that had failed delivers a document again. */
  SOURCE_RECOVERED: 'config.source_recovered',
  /** The reload signal (SIGHUP) arrived: every source is read again. */
  RELOAD_SIGNAL: 'config.reload_signal',
  /** The reload signal also shuts the application down (LifecycleModule's `signals`), so it is left to the lifecycle. */
  RELOAD_SIGNAL_CONFLICT: 'config.reload_signal_conflict',
  /** A source failed to release what it holds at shutdown. */
  SOURCE_STOP_FAILED: 'config.source_stop_failed',
} as const;
export type DynamicConfigEvent = (typeof DynamicConfigEvent)[keyof typeof DynamicConfigEvent];

/**
 * The metrics the dynamic configuration publishes through @nest-rollout/metrics when MetricsModule is
 * present (which catalogues them under these names; Prometheus naming: base units, `_total` on counters).
 */
export const DynamicConfigMetric = {
  /** Counter, labels `source` (a source's kind, or `reload`) and `result` (ConfigReloadOutcome). */
  RELOADS_TOTAL: 'config_reloads_total',
  /** Gauge: Unix time of the last update that validated (applied or unchanged), in seconds. */
  LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: 'config_last_reload_success_timestamp_seconds',
  /** Gauge, label `hash`: 1 for the version in force. */
  INFO: 'config_info',
} as const;

/**
 * The `result` label of `config_reloads_total`: a change `applied`, an update that validated to the
 * configuration already in force (`unchanged`), one that failed validation (`rejected`), or a
 * source that could not deliver a document (`failed`).
 */
export type ConfigReloadOutcome = 'applied' | 'unchanged' | 'rejected' | 'failed';

/** The `source` label (and `ConfigChange.source`) of a reload asked for by `reload()` or the reload signal. */
export const RELOAD_SOURCE = 'reload';

/** What a secret value is logged as. */
export const SECRET_MASK = '***';
