/**
 * The shapes gRPC forwarding shares with the canary interceptor and with anyone who provides their
 * own forwarder under `CANARY_GRPC_FORWARDER`. Structural, so that @grpc/grpc-js stays an optional
 * peer dependency: its classes fit them.
 */
import type { CanaryDecision } from '../canary.types';

/** gRPC's `Metadata`, as much of it as a decision reads and trims. */
export interface CanaryGrpcMetadata {
  getMap(): Record<string, string | Buffer>;
  get(key: string): Array<string | Buffer>;
  set(key: string, value: string | Buffer): void;
  remove(key: string): void;
}

/** A gRPC server call (grpc-js's `ServerUnaryCall` and the streaming ones), as much of it as is read. */
export interface CanaryGrpcServerCall {
  readonly metadata: CanaryGrpcMetadata;
  /** True once the client cancelled the call or its deadline passed. */
  readonly cancelled?: boolean;
  /** `127.0.0.1:50211` in grpc-js; `ipv4:127.0.0.1:50211` in the C core. */
  getPeer(): string;
  /** `/package.Service/Method`. */
  getPath?(): string;
  /** The client's deadline; `Infinity` when it set none. */
  getDeadline?(): Date | number;
  /** Sends the response's initial metadata (once, before the first message). */
  sendMetadata?(metadata: never): void;
  on?(event: 'cancelled', listener: () => void): unknown;
  off?(event: 'cancelled', listener: () => void): unknown;
  /** Present on client-streaming and bidirectional calls. */
  read?: unknown;
}

/** One unary gRPC call a stable instance may forward to a canary. */
export interface CanaryGrpcCall {
  /** `/package.Service/Method`: the call's own path, else `/<Service>/<Method>` from the handler's pattern. */
  readonly path: string;
  /** The request as the server deserialized it. */
  readonly request: unknown;
  /** The server call: metadata, deadline, peer, cancellation. */
  readonly call: CanaryGrpcServerCall;
}

/** What a gRPC forwarder did with a canary decision. */
export type CanaryGrpcForwardResult =
  /**
   * Nothing was sent to a canary: the handler serves the call here. The reason is a short, bounded
   * label: `loop`, `no_canary_target`, `connect_failed`, `streaming_call`, `unknown_method`.
   */
  | { readonly servedLocally: string }
  /** The canary's reply; the handler does not run. */
  | { readonly reply: unknown }
  /**
   * The canary answered with an error status, or the call failed after it was sent: the error is
   * the caller's answer (an `RpcException` carrying the status as is), never replayed.
   */
  | { readonly error: Error };

/**
 * The hand-off from the canary interceptor to gRPC forwarding, provided under
 * `CANARY_GRPC_FORWARDER` (`GrpcCanaryForwarder`, or an application's own). Called only for a
 * `canary` decision of a unary call on a `stable` instance, on a handler whose `@Canary()` allows
 * forwarding; without a provider such calls are served locally with reason `no_forwarder`.
 *
 * Contract: `forward` never throws for an expected failure. It returns `servedLocally` as long as
 * nothing of the call went to a canary; once the call was sent, it returns the canary's reply or
 * error and never sends it again.
 */
export interface CanaryGrpcForwarder {
  forward(call: CanaryGrpcCall, decision: CanaryDecision): Promise<CanaryGrpcForwardResult>;
}
