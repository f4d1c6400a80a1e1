/** Injection tokens, log event names and metric names of @nest-rollout/registry. */
export const REGISTRY_OPTIONS = 'REGISTRY:RESOLVED_OPTIONS';
/** The clock every retry, heartbeat and timeout runs on; unit specs replace it with a fake one. */
export const REGISTRY_CLOCK = 'REGISTRY:CLOCK';
/** Source of jitter in [0, 1); unit specs pin it. */
export const REGISTRY_RANDOM = 'REGISTRY:RANDOM';
/** The driver instance (internal: users pick one with the `driver` option). */
export const REGISTRY_DRIVER = 'REGISTRY:DRIVER';

/** Log event names; one event per line, with stable names that dashboards and alerts can match. */
export const RegistryEvent = {
  DISABLED: 'registry.disabled',
  REGISTERED: 'registry.registered',
  REGISTER_FAILED: 'registry.register_failed',
  DEREGISTERED: 'registry.deregistered',
  DEREGISTER_FAILED: 'registry.deregister_failed',
  HEARTBEAT_FAILED: 'registry.heartbeat_failed',
  ANTI_ENTROPY_FAILED: 'registry.anti_entropy_failed',
  /** The registry no longer holds our entry (agent restart, lease expired); it is registered again. */
  REGISTRATION_LOST: 'registry.registration_lost',
  ADDRESS_FALLBACK: 'registry.address_fallback',
  PORT_UNKNOWN: 'registry.port_unknown',
  DISCOVERY_STARTED: 'registry.discovery_started',
  DISCOVERY_CHANGED: 'registry.discovery_changed',
  DISCOVERY_FAILED: 'registry.discovery_failed',
  DISCOVERY_RECOVERED: 'registry.discovery_recovered',
  /** The registry answered "no instance"; the last known good set stays in use (onEmpty policy). */
  DISCOVERY_EMPTY_KEPT: 'registry.discovery_empty_kept',
  DISCOVERY_EMPTY_ACCEPTED: 'registry.discovery_empty_accepted',
} as const;

/**
 * Metric names for a metrics module to use when it reads `RegistryStats` (Prometheus naming:
 * base units, `_total` for counters). Kept here so that the names live in one place per lib.
 */
export const RegistryMetric = {
  /** Gauge, 1 while this instance is registered. */
  REGISTERED: 'registry_registered',
  /** Counter, labels `operation` (RegistryOperationKind) and `result` (RegistryOperationResult). */
  OPERATIONS_TOTAL: 'registry_operations_total',
  /** Counter: entries the registry lost and that were restored. */
  REGISTRATIONS_LOST_TOTAL: 'registry_registrations_lost_total',
  /** Histogram/gauge: from DRAINING to the deregistration confirmed. */
  DEREGISTRATION_DURATION_SECONDS: 'registry_deregistration_duration_seconds',
  /** Gauge, label `service`: how old the discovery view is. */
  DISCOVERY_STALENESS_SECONDS: 'registry_discovery_staleness_seconds',
  /** Gauge, label `service`: instances in the discovery view. */
  DISCOVERY_INSTANCES: 'registry_discovery_instances',
} as const;
