import { Logger } from '@nestjs/common';
import type { OnModuleDestroy } from '@nestjs/common';
import type * as Grpc from '@grpc/grpc-js';
import { CANARY_FORCE_HEADER } from '../canary.constants';
import { CanaryError, CanaryOptionsError } from '../canary.errors';
import type { CanaryDecision } from '../canary.types';
import type { CanaryTargets } from '../forwarding/canary-targets';
import { ForwardingEvent } from '../forwarding/forwarding.constants';
import { applyCanaryMetadata } from '../propagation/canary-propagation';
import type {
  CanaryGrpcCall,
  CanaryGrpcForwarder,
  CanaryGrpcForwardResult,
  CanaryGrpcMetadata,
  CanaryGrpcServerCall,
} from './canary-grpc.types';
import { peerAddress } from './canary-rpc';
import { GrpcForwardLocalReason } from './grpc-forwarding.constants';
import { methodsOf, resolveGrpcCanaryForwardingOptions } from './grpc-canary-forwarder.options';
import type {
  GrpcCanaryForwardingOptions,
  GrpcMethodDefinition,
  ResolvedGrpcCanaryForwardingOptions,
} from './grpc-canary-forwarder.options';

type GrpcModule = typeof Grpc;
type RpcExceptionConstructor = new (error: object) => Error;

/** The peer dependency ranges this forwarder is built against (as in libs/canary/package.json). */
const GRPC_JS = { name: '@grpc/grpc-js', range: '^1.10.0' } as const;
const NEST_MICROSERVICES = { name: '@nestjs/microservices', range: '^11.0.0 || ^12.0.0' } as const;

/** Channels kept open to canary instances; beyond it the least recently used one is closed (registry churn). */
const MAX_CHANNELS = 32;

/**
 * Metadata that belongs to one hop (HTTP/2 and gRPC's own framing) and is set by grpc-js itself:
 * never copied onto another call. `grpc-*` keys are reserved for gRPC.
 */
const HOP_METADATA = new Set([
  'content-type',
  'content-length',
  'te',
  'host',
  'user-agent',
  'date',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'accept-encoding',
]);

const SERVED_LOCALLY: Readonly<Record<GrpcForwardLocalReason, CanaryGrpcForwardResult>> = Object.freeze({
  loop: Object.freeze({ servedLocally: GrpcForwardLocalReason.LOOP }),
  no_canary_target: Object.freeze({ servedLocally: GrpcForwardLocalReason.NO_CANARY_TARGET }),
  connect_failed: Object.freeze({ servedLocally: GrpcForwardLocalReason.CONNECT_FAILED }),
  streaming_call: Object.freeze({ servedLocally: GrpcForwardLocalReason.STREAMING_CALL }),
  unknown_method: Object.freeze({ servedLocally: GrpcForwardLocalReason.UNKNOWN_METHOD }),
});

/** A package this lib declares as an optional peer dependency is needed and not installed. */
export class CanaryPackageMissingError extends CanaryError {
  constructor(
    readonly feature: string,
    readonly packageName: string,
    range: string,
  ) {
    super(
      'CANARY_PACKAGE_MISSING',
      `${feature} needs the npm package "${packageName}" (an optional peer dependency of @nest-rollout/canary), which is not installed: run npm install ${packageName}@"${range}"`,
    );
  }
}

/**
 * Forwards unary gRPC calls that a stable instance decided for the canary to a canary instance,
 * with @grpc/grpc-js, and hands the canary's reply (or error status) back as the handler's answer:
 *
 * ```ts
 * { provide: CANARY_GRPC_FORWARDER, useFactory: () => new GrpcCanaryForwarder('canary.orders:50051', {
 *     packageDefinition: protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS) }) }
 * ```
 *
 * The request is serialized again with the method's serializer from the same package definition
 * the server loads, and the reply deserialized with it. The call carries the hop header (the canary
 * serves it whatever it decides), the decision (`x-canary`, `baggage`), the caller's metadata and
 * deadline, and is cancelled when the caller cancels.
 *
 * The one rule that shapes it: a call is served locally only if the canary cannot have seen it. The
 * channel must be READY within `connectTimeoutMs` (a channel already failing counts as not ready at
 * once) before anything is sent; after that, whatever the canary or the connection answers is the
 * caller's answer, never replayed. Streaming calls are never forwarded (`streaming_call`).
 *
 * @grpc/grpc-js and @nestjs/microservices are optional peer dependencies, loaded when a forwarder
 * is built: an application that serves gRPC with Nest has both already.
 */
export class GrpcCanaryForwarder implements CanaryGrpcForwarder, OnModuleDestroy {
  private readonly logger = new Logger('Canary');
  private readonly options: ResolvedGrpcCanaryForwardingOptions;
  private readonly targets: CanaryTargets;
  private readonly grpc: GrpcModule;
  private readonly RpcException: RpcExceptionConstructor;
  private readonly credentials: Grpc.ChannelCredentials;
  private readonly channelOptions: Grpc.ChannelOptions;
  /** By full path (`/pkg.Service/Method`) and, when unambiguous, by `/Service/Method`. */
  private readonly methods = new Map<string, GrpcMethodDefinition>();
  private readonly unknownPaths = new Set<string>();
  private readonly clients = new Map<string, Grpc.Client>();

  /**
   * @param targets a canary address (`host:port`, `grpc://host:port`, any grpc-js target such as
   *   `dns:///canary.orders:50051`), or where canary instances are found (`registryCanaryTargets`;
   *   an `http(s)://host:port` URL is read as `host:port`)
   */
  constructor(targets: CanaryTargets | string, options: GrpcCanaryForwardingOptions) {
    this.targets = canaryTargets(targets);
    this.options = resolveGrpcCanaryForwardingOptions(options);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a gRPC forwarder is built
    this.grpc = loadOptional(GRPC_JS, () => require('@grpc/grpc-js') as GrpcModule);
    this.RpcException = loadOptional(
      NEST_MICROSERVICES,
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a gRPC forwarder is built
      () => (require('@nestjs/microservices') as { RpcException: RpcExceptionConstructor }).RpcException,
    );
    this.credentials = (this.options.credentials as Grpc.ChannelCredentials | undefined) ?? this.grpc.credentials.createInsecure();
    this.channelOptions = { 'grpc.max_reconnect_backoff_ms': this.options.maxReconnectBackoffMs, ...this.options.channelOptions };
    this.indexMethods();
  }

  async forward({ path, request, call }: CanaryGrpcCall, decision: CanaryDecision): Promise<CanaryGrpcForwardResult> {
    if (call.metadata.get(this.options.hopHeader).length > 0) return SERVED_LOCALLY.loop;
    const method = this.methods.get(path);
    if (!method) return this.unknownMethod(path, decision);
    if (method.requestStream || method.responseStream) return SERVED_LOCALLY.streaming_call;
    const target = this.targets.pick();
    if (!target) return SERVED_LOCALLY.no_canary_target;
    const address = grpcAddress(target.url);
    const client = this.clientFor(address);
    if (!(await this.ready(client, call))) {
      this.logger.warn({
        event: ForwardingEvent.SKIPPED,
        reason: GrpcForwardLocalReason.CONNECT_FAILED,
        route: decision.route,
        target: address,
      });
      return SERVED_LOCALLY.connect_failed;
    }
    return this.send(client, method, request, call, decision, address);
  }

  onModuleDestroy(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  /**
   * READY within the connect timeout (and the caller's deadline)? A channel in TRANSIENT_FAILURE is
   * failing now: not worth the wait, the call is served locally at once while grpc-js reconnects in
   * the background.
   */
  private ready(client: Grpc.Client, call: CanaryGrpcServerCall): Promise<boolean> | boolean {
    const { READY, TRANSIENT_FAILURE, SHUTDOWN } = this.grpc.connectivityState;
    const channel = client.getChannel();
    const state = channel.getConnectivityState(true);
    if (state === READY) return true;
    if (state === TRANSIENT_FAILURE || state === SHUTDOWN) return false;
    const deadline = Math.min(Date.now() + this.options.connectTimeoutMs, deadlineMs(call));
    return new Promise((resolve) => {
      const watch = (current: Grpc.connectivityState): void =>
        channel.watchConnectivityState(current, deadline, (error) => {
          if (error) return resolve(false);
          const next = channel.getConnectivityState(true);
          if (next === READY) resolve(true);
          else if (next === TRANSIENT_FAILURE || next === SHUTDOWN) resolve(false);
          else watch(next);
        });
      watch(state);
    });
  }

  private send(
    client: Grpc.Client,
    method: GrpcMethodDefinition,
    request: unknown,
    call: CanaryGrpcServerCall,
    decision: CanaryDecision,
    address: string,
  ): Promise<CanaryGrpcForwardResult> {
    return new Promise((resolve) => {
      let responseMetadata: Grpc.Metadata | undefined;
      let callerCancelled = false;
      const onCancelled = (): void => {
        callerCancelled = true;
        outgoing.cancel();
      };
      const outgoing = client.makeUnaryRequest(
        method.path,
        (value: unknown) => method.requestSerialize(value),
        (bytes: Buffer) => method.responseDeserialize(bytes),
        request,
        this.outgoingMetadata(call, decision),
        { deadline: call.getDeadline?.() ?? Infinity },
        (error, reply) => {
          call.off?.('cancelled', onCancelled);
          if (error) {
            resolve({ error: this.failure(error, callerCancelled, decision, address) });
            return;
          }
          // The canary's response metadata, where a unary handler's own would go; its trailers
          // cannot follow (a Nest handler's answer has no place for them).
          if (responseMetadata && typeof call.sendMetadata === 'function') call.sendMetadata(responseMetadata as never);
          resolve({ reply });
        },
      );
      outgoing.on('metadata', (metadata: Grpc.Metadata) => (responseMetadata = this.copyMetadata(metadata)));
      call.on?.('cancelled', onCancelled);
      if (call.cancelled) onCancelled();
    });
  }

  /**
   * The caller's metadata (minus what belongs to the hop), the client's address appended to
   * `x-forwarded-for`, the hop header, and the decision (`x-canary`, merged `baggage`) so that the
   * canary's own downstream calls stay on canary versions.
   */
  private outgoingMetadata(call: CanaryGrpcServerCall, decision: CanaryDecision): Grpc.Metadata {
    const hopHeader = this.options.hopHeader;
    const metadata = this.copyMetadata(
      call.metadata,
      (key) => key === hopHeader || key === CANARY_FORCE_HEADER || key === 'x-forwarded-for',
    );
    const client = peerAddress(call.getPeer());
    const forwardedFor = call.metadata.get('x-forwarded-for').filter((value): value is string => typeof value === 'string');
    if (client !== undefined) forwardedFor.push(client);
    if (forwardedFor.length > 0) metadata.set('x-forwarded-for', forwardedFor.join(', '));
    metadata.set(hopHeader, '1');
    return applyCanaryMetadata(metadata, decision);
  }

  /** A copy of `source` without hop metadata (and without what `skip` names), in this forwarder's grpc-js. */
  private copyMetadata(source: CanaryGrpcMetadata, skip?: (key: string) => boolean): Grpc.Metadata {
    const copy = new this.grpc.Metadata();
    for (const key of Object.keys(source.getMap())) {
      if (key.startsWith(':') || key.startsWith('grpc-') || HOP_METADATA.has(key) || skip?.(key)) continue;
      for (const value of source.get(key)) copy.add(key, value);
    }
    return copy;
  }

  /**
   * The caller's answer once the call was sent: the canary's status as is (code, details,
   * trailers), thrown by the handler as an RpcException so that Nest passes it through unchanged.
   */
  private failure(error: Grpc.ServiceError, callerCancelled: boolean, decision: CanaryDecision, address: string): Error {
    const { status } = this.grpc;
    if (
      !callerCancelled &&
      (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED || error.code === status.CANCELLED)
    ) {
      // Sent, so never replayed: the canary may have acted on it.
      this.logger.warn({
        event: ForwardingEvent.FAILED,
        route: decision.route,
        target: address,
        code: status[error.code],
        details: error.details,
      });
    }
    return new this.RpcException({
      code: error.code,
      details: error.details,
      message: error.details,
      metadata: this.copyMetadata(error.metadata ?? new this.grpc.Metadata()),
    });
  }

  private unknownMethod(path: string, decision: CanaryDecision): CanaryGrpcForwardResult {
    if (!this.unknownPaths.has(path)) {
      this.unknownPaths.add(path);
      this.logger.warn({
        event: ForwardingEvent.SKIPPED,
        reason: GrpcForwardLocalReason.UNKNOWN_METHOD,
        route: decision.route,
        path,
        hint: 'the method is not in the packageDefinition given to GrpcCanaryForwarder: give it the one the server loads',
      });
    }
    return SERVED_LOCALLY.unknown_method;
  }

  private clientFor(address: string): Grpc.Client {
    let client = this.clients.get(address);
    if (client) {
      // Most recently used last.
      this.clients.delete(address);
      this.clients.set(address, client);
      return client;
    }
    client = new this.grpc.Client(address, this.credentials, this.channelOptions);
    this.clients.set(address, client);
    if (this.clients.size > MAX_CHANNELS) {
      const [oldest, stale] = this.clients.entries().next().value as [string, Grpc.Client];
      this.clients.delete(oldest);
      stale.close();
    }
    return client;
  }

  private indexMethods(): void {
    const short = new Map<string, GrpcMethodDefinition | null>();
    for (const method of methodsOf(this.options.packageDefinition)) {
      this.methods.set(method.path, method);
      // `/pkg.Service/Method` is also reached as `/Service/Method`, the form a handler's pattern gives.
      const match = /^\/(?:.*\.)?([^./]+)\/([^/]+)$/.exec(method.path);
      if (!match) continue;
      const key = `/${match[1]}/${match[2]}`;
      if (key !== method.path) short.set(key, short.has(key) && short.get(key) !== method ? null : method);
    }
    for (const [key, method] of short) if (!this.methods.has(key) && method) this.methods.set(key, method);
  }
}

function loadOptional<T>(pkg: { readonly name: string; readonly range: string }, load: () => T): T {
  try {
    return load();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e?.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${pkg.name}'`))
      throw new CanaryPackageMissingError('GrpcCanaryForwarder', pkg.name, pkg.range);
    throw error;
  }
}

/** A canary address as is, or where canary instances are found; anything else (an unset variable) fails at boot. */
function canaryTargets(targets: CanaryTargets | string | undefined): CanaryTargets {
  if (typeof targets === 'string' && targets.trim() !== '') {
    const target = { url: targets.trim() };
    return { pick: () => target };
  }
  if (typeof targets === 'object' && targets !== null && typeof targets.pick === 'function') return targets;
  throw new CanaryOptionsError([
    'grpcForwarding targets: must be a canary address such as "canary.orders:50051", or CanaryTargets (registryCanaryTargets(...))',
  ]);
}

/** What grpc-js dials for a target's URL: `http(s)://` and `grpc(s)://` URLs by their `host:port`, anything else as given. */
function grpcAddress(url: string): string {
  if (!/^(https?|grpcs?):\/\//i.test(url)) return url;
  return new URL(url).host;
}

/** The caller's deadline in epoch milliseconds; Infinity without one. */
function deadlineMs(call: CanaryGrpcServerCall): number {
  const deadline = call.getDeadline?.() ?? Infinity;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}
