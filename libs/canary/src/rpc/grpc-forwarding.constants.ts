import { ForwardLocalReason } from '../forwarding/forwarding.constants';

/**
 * Why a canary decision on a gRPC call was served here rather than forwarded: the `servedLocally`
 * of the decision and the `reason` of the `canary.forward_skipped` log line. A fixed set.
 *
 * - `loop`: the call carries the hop header (it was forwarded to us already).
 * - `no_canary_target`: no healthy canary instance is known.
 * - `connect_failed`: the channel to the canary was not READY within the connect timeout (or was
 *   failing already); nothing was sent.
 * - `streaming_call`: client, server or bidirectional streaming calls are never forwarded.
 * - `unknown_method`: the method is not in the package definition the forwarder was given.
 */
export const GrpcForwardLocalReason = {
  LOOP: ForwardLocalReason.LOOP,
  NO_CANARY_TARGET: ForwardLocalReason.NO_CANARY_TARGET,
  CONNECT_FAILED: ForwardLocalReason.CONNECT_FAILED,
  STREAMING_CALL: 'streaming_call',
  UNKNOWN_METHOD: 'unknown_method',
} as const;
export type GrpcForwardLocalReason = (typeof GrpcForwardLocalReason)[keyof typeof GrpcForwardLocalReason];
