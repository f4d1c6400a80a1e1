/**
 * Marks a request forwarded by a stable instance. An instance serves such a request itself, never
 * forwards it again: two instances that both believe the other is the canary (a registry that
 * lags, a misconfigured URL) cannot bounce a request between them.
 */
export const CANARY_HOP_HEADER = 'x-canary-hop';

/**
 * Why a canary decision was served here rather than forwarded: the `servedLocally` of the
 * forwarder's result and the `reason` of the `canary.forward_skipped` log line. A fixed set.
 *
 * - `loop`: the request carries the hop header (it was forwarded to us already).
 * - `no_canary_target`: no healthy canary instance is known.
 * - `connect_failed`: the connection to the canary failed before any byte of the request was sent.
 * - `body_consumed`: something read the request body before the forwarder ran, so it cannot be
 *   streamed on (forwarding must run before a body parser).
 * - `canary_failed`: the canary failed before answering a safe request without a body (GET, HEAD,
 *   OPTIONS, TRACE), for instance because it died with the request in flight; serving such a
 *   request here repeats nothing the client could notice.
 */
export const ForwardLocalReason = {
  LOOP: 'loop',
  NO_CANARY_TARGET: 'no_canary_target',
  CONNECT_FAILED: 'connect_failed',
  BODY_CONSUMED: 'body_consumed',
  CANARY_FAILED: 'canary_failed',
} as const;
export type ForwardLocalReason = (typeof ForwardLocalReason)[keyof typeof ForwardLocalReason];

/**
 * Why a forwarded request failed after it had started, answered 502 (or cut, when the response had
 * already begun) and never replayed; a safe request without a body is served locally instead as
 * long as no byte of the response came (`canary_failed` above).
 *
 * - `canary_failed_during_request`: the canary connection failed while the request was being sent.
 * - `canary_no_response`: the canary did not answer within `headersTimeoutMs`.
 * - `canary_failed_during_response`: the response broke off after it had started.
 * - `client_aborted`: the client went away; nothing is answered.
 */
export const ForwardFailure = {
  DURING_REQUEST: 'canary_failed_during_request',
  NO_RESPONSE: 'canary_no_response',
  DURING_RESPONSE: 'canary_failed_during_response',
  CLIENT_ABORTED: 'client_aborted',
} as const;
export type ForwardFailure = (typeof ForwardFailure)[keyof typeof ForwardFailure];

/** Log event names of forwarding, one event per line. `canary.forward_failed` is CanaryEvent.FORWARD_FAILED. */
export const ForwardingEvent = {
  SKIPPED: 'canary.forward_skipped',
  FAILED: 'canary.forward_failed',
} as const;
