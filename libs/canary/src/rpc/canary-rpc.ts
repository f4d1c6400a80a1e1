import type { IncomingHttpHeaders } from 'node:http';
import type { ExecutionContext } from '@nestjs/common';
import type { CanaryDecision, CanaryRequestView } from '../canary.types';

/** Where the decision sits on a microservice call's context (gRPC: its Metadata object). */
const RPC_DECISION_KEY = Symbol('canary.rpc-decision');

/** gRPC's Metadata, as much of it as a decision reads; @grpc/grpc-js is not a dependency. */
interface MetadataLike {
  getMap(): Record<string, string | Buffer>;
  [RPC_DECISION_KEY]?: CanaryDecision;
}

/** A gRPC server call, as much of it as the interceptor reads. */
export interface GrpcCallLike {
  getPeer?(): string;
  getPath?(): string;
  /** Present on server-streaming and bidirectional calls. */
  write?: unknown;
  /** Present on client-streaming and bidirectional calls. */
  read?: unknown;
}

function isMetadata(value: unknown): value is MetadataLike {
  return typeof value === 'object' && value !== null && typeof (value as MetadataLike).getMap === 'function';
}

/** The call's metadata (gRPC) as the headers a decision reads, and the peer's address. */
export function rpcRequestView(ctx: ExecutionContext): CanaryRequestView {
  const metadata = ctx.switchToRpc().getContext<unknown>();
  const headers: IncomingHttpHeaders = {};
  if (isMetadata(metadata)) {
    for (const [name, value] of Object.entries(metadata.getMap())) {
      // Binary (-bin) entries are never routing input.
      if (typeof value === 'string') headers[name] = value;
    }
  }
  const call = ctx.getArgByIndex<GrpcCallLike | undefined>(2);
  return { headers, socket: { remoteAddress: peerAddress(call?.getPeer?.()) } };
}

/** True for a streaming gRPC call (either side streams): such calls are never forwarded. */
export function isStreamingCall(ctx: ExecutionContext): boolean {
  const call = ctx.getArgByIndex<GrpcCallLike | undefined>(2);
  return typeof call?.write === 'function' || typeof call?.read === 'function';
}

export function setRpcDecision(ctx: ExecutionContext, decision: CanaryDecision): void {
  const metadata = ctx.switchToRpc().getContext<unknown>();
  if (isMetadata(metadata)) metadata[RPC_DECISION_KEY] = decision;
}

/** The decision `@CanaryDecision()` reads in a microservice handler. */
export function rpcDecision(ctx: ExecutionContext): CanaryDecision | undefined {
  const metadata = ctx.switchToRpc().getContext<unknown>();
  return isMetadata(metadata) ? metadata[RPC_DECISION_KEY] : undefined;
}

/** grpc-js peers read `ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000` or `unix:/path`. */
function peerAddress(peer: string | undefined): string | undefined {
  if (peer === undefined) return undefined;
  const match = /^ipv4:([^:]+):\d+$/.exec(peer) ?? /^ipv6:\[([^\]]+)\]:\d+$/.exec(peer);
  return match?.[1];
}
