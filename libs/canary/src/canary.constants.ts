/** Injection tokens, log event names, metric names and header names of @nest-rollout/canary. */
export const CANARY_OPTIONS = 'CANARY:RESOLVED_OPTIONS';
/** The clock the HMAC trust window is checked against; unit specs pin it. */
export const CANARY_CLOCK = 'CANARY:CLOCK';
/**
 * Optional provider of `CanaryForwarder` (see canary.types.ts). Without one, canary decisions are
 * served locally.
 */
export const CANARY_FORWARDER = 'CANARY:FORWARDER';
/**
 * Optional provider of `CanaryGrpcForwarder` (a `GrpcCanaryForwarder`), in any module of the
 * application: forwards unary gRPC calls decided for the canary. Without one, they are served
 * locally (`no_forwarder`).
 */
export const CANARY_GRPC_FORWARDER = 'CANARY:GRPC_FORWARDER';
/** Optional provider of `CanaryRulesSource`: live rules, applied when they validate. */
export const CANARY_RULES_SOURCE = 'CANARY:RULES_SOURCE';
/** Metadata key `@Canary()` sets on a route or controller. */
export const CANARY_ROUTE_METADATA = 'canary:route';
/** Key of a `@Canary()` route's options in its Fastify route config. */
export const CANARY_ROUTE_CONFIG_KEY = 'nestRolloutCanary';

/** Key of the compiled flagd flag, and so part of what `fractional` hashes: an edge must use the same. */
export const DEFAULT_CANARY_FLAG_KEY = 'canary';

/** Header (and cookie) by which a trusted client forces a side: `always` or `never`. */
export const CANARY_FORCE_HEADER = 'x-canary';

/** Tokens above this size are not parsed (a guard against header bombs; jose would decode them). */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** Log event names; one event per line. */
export const CanaryEvent = {
  DECISION: 'canary.decision',
  DECISION_FAILED: 'canary.decision_failed',
  ON_DECISION_FAILED: 'canary.on_decision_failed',
  ROUTE_NOT_FOUND: 'canary.route_not_found',
  ADAPTER_UNSUPPORTED: 'canary.adapter_unsupported',
  RULES_APPLIED: 'canary.rules_applied',
  RULES_REJECTED: 'canary.rules_rejected',
  FORWARD_FAILED: 'canary.forward_failed',
} as const;

/** Metric names, catalogued by @nest-rollout/metrics. */
export const CanaryMetric = {
  /** Counter, labels `route` (template), `variant` and `reason` (CanaryReason). */
  DECISIONS_TOTAL: 'canary_decisions_total',
} as const;
