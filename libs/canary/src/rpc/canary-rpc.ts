import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { ExecutionContext } from '@nestjs/common';
import { CANARY_FORCE_HEADER } from '../canary.constants';
import type { CanaryDecision, CanaryRequestView } from '../canary.types';
import type { CanaryGrpcMetadata, CanaryGrpcServerCall } from './canary-grpc.types';

/** Where the decision sits on a gRPC call: its Metadata object, the one thing every handler form receives. */
const RPC_DECISION_KEY = Symbol('canary.rpc-decision');

/** `@nestjs/microservices`' PATTERN_METADATA, by value: this lib does not depend on the package. */
const PATTERN_METADATA = 'microservices:pattern';

/** The metadata of a decided call carries its decision. */
type DecidedMetadata = CanaryGrpcMetadata & { [RPC_DECISION_KEY]?: CanaryDecision };

/** The gRPC parts of one microservice call, wherever the handler form put them. */
export interface RpcCallParts {
  readonly metadata: DecidedMetadata | undefined;
  readonly call: CanaryGrpcServerCall | undefined;
}

const NO_PARTS: RpcCallParts = Object.freeze({ metadata: undefined, call: undefined });

function isMetadata(value: unknown): value is DecidedMetadata {
  return typeof value === 'object' && value !== null && typeof (value as DecidedMetadata).getMap === 'function';
}

function isServerCall(value: unknown): value is CanaryGrpcServerCall {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CanaryGrpcServerCall).getPeer === 'function' &&
    isMetadata((value as CanaryGrpcServerCall).metadata)
  );
}

/**
 * Nest calls a gRPC handler with `(request, metadata, call)` (`@GrpcMethod`, `@GrpcStreamMethod`)
 * or `(call, callback?)` (`@GrpcStreamCall`); other transports hand over their own context, where
 * no gRPC part is found.
 */
export function rpcCallParts(ctx: ExecutionContext): RpcCallParts {
  const third = ctx.getArgByIndex<unknown>(2);
  const call = isServerCall(third)
    ? third
    : isServerCall(ctx.getArgByIndex<unknown>(0))
      ? ctx.getArgByIndex<CanaryGrpcServerCall>(0)
      : undefined;
  const second = ctx.getArgByIndex<unknown>(1);
  const metadata = isMetadata(second) ? second : call?.metadata;
  return metadata === undefined && call === undefined ? NO_PARTS : { metadata, call };
}

/** The call's metadata as the headers a decision reads, and the peer's address. */
export function rpcRequestView(parts: RpcCallParts): CanaryRequestView {
  const headers: IncomingHttpHeaders = {};
  if (parts.metadata) {
    for (const [name, value] of Object.entries(parts.metadata.getMap())) {
      // Binary (-bin) entries are never routing input.
      if (typeof value === 'string') headers[name] = value;
    }
  }
  return { headers, socket: { remoteAddress: peerAddress(parts.call?.getPeer()) } };
}

/**
 * The decision strips routing entries the peer was not trusted to send from the view; the same
 * goes off the call's metadata, so that a handler passing its metadata on (or the forwarder) never
 * carries them further.
 */
export function stripUntrusted(parts: RpcCallParts, view: CanaryRequestView): void {
  const metadata = parts.metadata;
  if (!metadata) return;
  if (view.headers[CANARY_FORCE_HEADER] === undefined && metadata.get(CANARY_FORCE_HEADER).length > 0) metadata.remove(CANARY_FORCE_HEADER);
  const cookie = view.headers.cookie;
  const sent = metadata.get('cookie');
  if (sent.length > 0 && sent[0] !== cookie) {
    metadata.remove('cookie');
    if (typeof cookie === 'string' && cookie !== '') metadata.set('cookie', cookie);
  }
}

/**
 * True when the client streams (a client-streaming or bidirectional call, a readable call object):
 * such calls are never forwarded. A server-streaming call cannot be told from a unary one by its
 * call object (grpc-js 1.14 hands both a writable stream): the forwarder knows it from the method's
 * definition.
 */
export function isClientStreamingCall(parts: RpcCallParts): boolean {
  return typeof parts.call?.read === 'function';
}

export function setRpcDecision(parts: RpcCallParts, decision: CanaryDecision): void {
  if (parts.metadata) parts.metadata[RPC_DECISION_KEY] = decision;
}

/** The decision recorded on the call, if a canary interceptor already took it. */
export function recordedRpcDecision(parts: RpcCallParts): CanaryDecision | undefined {
  return parts.metadata?.[RPC_DECISION_KEY];
}

/** The decision `@CanaryDecision()` reads in a microservice handler. */
export function rpcDecision(ctx: ExecutionContext): CanaryDecision | undefined {
  return recordedRpcDecision(rpcCallParts(ctx));
}

/** A gRPC handler's `{ service, rpc }` from its `@GrpcMethod` / `@GrpcStreamMethod` / `@GrpcStreamCall` pattern. */
export interface GrpcPattern {
  readonly service: string;
  readonly rpc: string;
  /** `no_stream`, `rx_stream` or `pt_stream` (Nest's GrpcMethodStreamingType). */
  readonly streaming?: string;
}

/** The first pattern of a microservice handler: a gRPC `{ service, rpc }`, a message pattern, or undefined. */
export function handlerPattern(handler: object): unknown {
  const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown;
  return Array.isArray(patterns) ? patterns[0] : patterns;
}

export function isGrpcPattern(pattern: unknown): pattern is GrpcPattern {
  const p = pattern as { service?: unknown; rpc?: unknown } | null | undefined;
  return typeof p === 'object' && p !== null && typeof p.service === 'string' && typeof p.rpc === 'string';
}

/**
 * The peer's IP address. grpc-js gives `127.0.0.1:5000` and `::1:5000` (IPv6 without brackets),
 * the C core `ipv4:127.0.0.1:5000` and `ipv6:[::1]:5000`; Unix sockets and `unknown` have none.
 */
export function peerAddress(peer: string | undefined): string | undefined {
  if (peer === undefined) return undefined;
  const bare = peer.startsWith('ipv4:') || peer.startsWith('ipv6:') ? peer.slice(5) : peer;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(bare);
  if (bracketed) return isIP(bracketed[1]) ? bracketed[1] : undefined;
  // The port first: `::1:5000` is also a valid IPv6 address, but grpc-js always appends the port.
  const colon = bare.lastIndexOf(':');
  if (colon > 0 && /^\d+$/.test(bare.slice(colon + 1)) && isIP(bare.slice(0, colon))) return bare.slice(0, colon);
  return isIP(bare) ? bare : undefined;
}
