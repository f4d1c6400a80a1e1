/** Injection tokens, indicator keys and stable log event names of @nest-rollout/health. */
export const HEALTH_OPTIONS = 'HEALTH:RESOLVED_OPTIONS';
/** The clock the check scheduler runs on; unit tests replace it with a fake one. */
export const HEALTH_CLOCK = 'HEALTH:CLOCK';
/** Route prefix of the probes (the `path` extra of `forRoot`), for the management server. */
export const HEALTH_PATH = 'HEALTH:PATH';

/** Indicator keys in the probe bodies; check names may not take them. */
export const HealthIndicatorKey = {
  PROCESS: 'process',
  LIFECYCLE: 'lifecycle',
} as const;

/** Log event names; one event per line, logged once per change rather than once per probe. */
export const HealthEvent = {
  READINESS_CHANGED: 'health.readiness_changed',
  CHECK_CHANGED: 'health.check_changed',
  MANAGEMENT_LISTENING: 'health.management_listening',
  MANAGEMENT_CLOSED: 'health.management_closed',
  MANAGEMENT_ROUTE_FAILED: 'health.management_route_failed',
} as const;

/** Why a check is down; stable values that alerts and dashboards can match. */
export const HealthFailureKind = {
  /** The check did not finish within its timeout (a hung dependency). */
  TIMEOUT: 'timeout',
  CONNECTION_REFUSED: 'connection_refused',
  CONNECTION_RESET: 'connection_reset',
  HOST_NOT_FOUND: 'host_not_found',
  AUTH_FAILED: 'auth_failed',
  /** The application's client is not connected (reconnecting, closed). */
  NOT_CONNECTED: 'not_connected',
  /** The dependency is reachable but refuses work (gRPC UNAVAILABLE, PostgreSQL starting up). */
  UNAVAILABLE: 'unavailable',
  /** The dependency answered, and the answer says it is unhealthy (HTTP 5xx, NOT_SERVING, threshold). */
  UNHEALTHY: 'unhealthy',
  /** No result within `maxAgeMs`: the scheduler fell behind, so the last answer is no longer trusted. */
  STALE: 'stale',
  /** The check has not finished its first run yet. */
  PENDING: 'pending',
  ERROR: 'error',
} as const;
export type HealthFailureKind = (typeof HealthFailureKind)[keyof typeof HealthFailureKind];

/** grpc.health.v1 names, as Kubernetes' native gRPC probe calls them. */
export const HEALTH_GRPC_PACKAGE = 'grpc.health.v1';
export const HEALTH_GRPC_SERVICE = 'Health';
