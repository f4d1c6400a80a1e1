/**
 * Header names and limits of decision propagation. The force header is the one the rules of a
 * downstream nest-rollout service already honour (`x-canary: always|never`, see
 * CANARY_FORCE_HEADER), so a downstream service needs no extra rule to follow the caller's side.
 */
export const BAGGAGE_HEADER = 'baggage';

/**
 * Baggage key of the variant, named after the OpenTelemetry semantic convention attribute
 * `feature_flag.result.variant`, so that a collector or a downstream OpenTelemetry SDK reads it
 * without a mapping.
 */
export const CANARY_BAGGAGE_KEY = 'feature_flag.result.variant';

/**
 * W3C Baggage §3.3.1: a platform must propagate at least 64 list-members and 8192 bytes, and a
 * receiver may drop anything beyond. Staying within both means the decision is never the part a
 * downstream hop truncates away.
 */
export const BAGGAGE_MAX_MEMBERS = 64;
export const BAGGAGE_MAX_BYTES = 8192;
