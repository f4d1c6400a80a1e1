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
  /**
   * The registry refused a call for lack of a permission (an ACL token without the rule): logged
   * once per kind of call until that call succeeds again, and retried at the backoff ceiling.
   */
  PERMISSION_DENIED: 'registry.permission_denied',
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
 * The metrics `RegistryMetrics` publishes through @nest-rollout/metrics (which catalogues them with
 * these names; Prometheus naming: base units, `_total` for counters).
 */
export const RegistryMetric = {
  /** Gauge, label `driver`: 1 while this instance is registered. */
  REGISTERED: 'registry_registered',
  /** Counter, labels `driver`, `operation` (RegistryOperationKind) and `result` (RegistryOperationResult). */
  OPERATIONS_TOTAL: 'registry_operations_total',
  /** Counter, label `driver`: entries the registry lost and that were restored. */
  REGISTRATIONS_LOST_TOTAL: 'registry_registrations_lost_total',
  /** Gauge, label `driver`: from DRAINING to the deregistration confirmed. */
  DEREGISTRATION_DURATION_SECONDS: 'registry_deregistration_duration_seconds',
  /** Gauge, labels `service` and `health` (passing, any): how old the discovery view is. */
  DISCOVERY_STALENESS_SECONDS: 'registry_discovery_staleness_seconds',
  /** Gauge, labels `service` and `health`: instances in the discovery view. */
  DISCOVERY_INSTANCES: 'registry_discovery_instances',
} as const;
