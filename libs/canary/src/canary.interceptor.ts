import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { describeError } from '@nest-rollout/lifecycle';
import { Observable } from 'rxjs';
import type { Subscriber } from 'rxjs';
import { CANARY_GRPC_FORWARDER, CANARY_ROUTE_METADATA, CanaryEvent } from './canary.constants';
import { CanaryContext } from './canary.context';
import { optionalProvider } from './canary.providers';
import { CanaryService } from './canary.service';
import type { CanaryDecision, CanaryRouteOptions } from './canary.types';
import type { CanaryGrpcForwarder, CanaryGrpcForwardResult } from './rpc/canary-grpc.types';
import {
  handlerPattern,
  isClientStreamingCall,
  isGrpcPattern,
  recordedRpcDecision,
  rpcCallParts,
  rpcRequestView,
  setRpcDecision,
  stripUntrusted,
} from './rpc/canary-rpc';
import type { RpcCallParts } from './rpc/canary-rpc';

/** What the interceptor needs to know of a handler, worked out on its first call. */
interface RpcHandler {
  /** `Service/Method` of a gRPC handler, the message pattern of another, else `Class.method`: the `route` label. */
  readonly route: string;
  readonly options: CanaryRouteOptions;
  /** `/Service/Method`, for a forwarder when the call does not give its own path. */
  readonly path: string | undefined;
  /** `@GrpcStreamMethod` / `@GrpcStreamCall`: the client streams. */
  readonly streaming: boolean;
}

/**
 * `@Canary()` on a microservice handler (gRPC): decides from the call's metadata, records the
 * decision for `@CanaryDecision()` and runs the handler in its context. On a stable instance a
 * unary call decided for the canary goes to the `CANARY_GRPC_FORWARDER` when there is one; the
 * canary's reply (or error status) is then the answer and the handler does not run. Over HTTP the
 * decision is taken on the adapter's hooks instead (CanaryModule takes this interceptor off HTTP
 * routes), and this passes HTTP requests through untouched.
 */
@Injectable()
export class CanaryInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Canary');
  private readonly handlers = new WeakMap<object, RpcHandler>();
  private forwarder: { readonly found: CanaryGrpcForwarder | undefined } | undefined;

  constructor(
    private readonly service: CanaryService,
    private readonly context: CanaryContext,
    private readonly moduleRef: ModuleRef,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'rpc') return next.handle();
    const parts = rpcCallParts(ctx);
    // Where nothing prepared the routes (a microservice-only application) a controller-wide
    // @Canary() and one on the method both attach this interceptor: the first one decides.
    if (recordedRpcDecision(parts) !== undefined) return next.handle();
    const handler = this.handlerOf(ctx);
    return new Observable((subscriber) => {
      let inner: { unsubscribe(): void } | undefined;
      let done = false;
      const serve = (decision: CanaryDecision): void => {
        if (done) return;
        setRpcDecision(parts, decision);
        inner = this.context.run(decision, () => next.handle()).subscribe(subscriber);
      };
      const route = (decision: CanaryDecision): void => {
        if (done) return;
        if (decision.variant === 'stable') return serve(decision);
        const local = this.servedLocallyBecause(handler, parts);
        if (local !== undefined) return serve({ ...decision, servedLocally: local });
        this.forward(ctx, parts, handler, decision, subscriber, serve);
      };
      const view = rpcRequestView(parts);
      let decided: CanaryDecision | Promise<CanaryDecision>;
      try {
        decided = this.service.decide(view, handler.route);
      } catch (error) {
        decided = Promise.reject(error);
      } finally {
        stripUntrusted(parts, view);
      }
      if (decided instanceof Promise) decided.then(route, (error: unknown) => serve(this.failed(handler, error)));
      else route(decided);
      return () => {
        done = true;
        inner?.unsubscribe();
      };
    });
  }

  private forward(
    ctx: ExecutionContext,
    parts: RpcCallParts,
    handler: RpcHandler,
    decision: CanaryDecision,
    subscriber: Subscriber<unknown>,
    serve: (decision: CanaryDecision) => void,
  ): void {
    const forwarder = this.grpcForwarder() as CanaryGrpcForwarder;
    const call = parts.call as NonNullable<RpcCallParts['call']>;
    const path = call.getPath?.() ?? (handler.path as string);
    const answer = (result: CanaryGrpcForwardResult): void => {
      if ('servedLocally' in result) return serve({ ...decision, servedLocally: result.servedLocally });
      setRpcDecision(parts, decision);
      if ('reply' in result) {
        subscriber.next(result.reply);
        subscriber.complete();
      } else {
        subscriber.error(result.error);
      }
    };
    let forwarded: Promise<CanaryGrpcForwardResult>;
    try {
      forwarded = forwarder.forward({ path, request: ctx.getArgByIndex<unknown>(0), call }, decision);
    } catch (error) {
      forwarded = Promise.reject(error);
    }
    forwarded.then(answer, (error: unknown) => {
      // The contract says a forwarder does not throw; one that does is taken to have sent nothing.
      this.logger.error({ event: CanaryEvent.FORWARD_FAILED, route: decision.route, error: describeError(error) });
      serve({ ...decision, servedLocally: 'forwarder_error' });
    });
  }

  /** Why a canary decision is served here; undefined when it goes to the forwarder. */
  private servedLocallyBecause(handler: RpcHandler, parts: RpcCallParts): string | undefined {
    if (this.service.track === 'canary') return 'on_canary';
    if (handler.options.forward === false) return 'not_forwarded';
    if (handler.streaming || isClientStreamingCall(parts)) return 'streaming_call';
    if (!this.grpcForwarder() || !parts.call || (parts.call.getPath === undefined && handler.path === undefined)) return 'no_forwarder';
    return undefined;
  }

  /**
   * The `CANARY_GRPC_FORWARDER` provider wherever the application declares it (its own module
   * included, not only a global one), looked up at the first canary decision, when every provider
   * exists.
   */
  private grpcForwarder(): CanaryGrpcForwarder | undefined {
    this.forwarder ??= { found: optionalProvider<CanaryGrpcForwarder>(this.moduleRef, CANARY_GRPC_FORWARDER) };
    return this.forwarder.found;
  }

  /** Never an error for a decision: the call is served as stable. */
  private failed(handler: RpcHandler, error: unknown): CanaryDecision {
    this.logger.error({ event: CanaryEvent.DECISION_FAILED, route: handler.route, error: describeError(error) });
    return { variant: 'stable', reason: 'evaluation_error', route: handler.route };
  }

  private handlerOf(ctx: ExecutionContext): RpcHandler {
    const method = ctx.getHandler();
    let handler = this.handlers.get(method);
    if (handler === undefined) {
      const controller = ctx.getClass();
      const pattern = handlerPattern(method);
      const grpc = isGrpcPattern(pattern) ? pattern : undefined;
      handler = {
        route: routeOf(pattern, controller, method),
        options:
          (Reflect.getMetadata(CANARY_ROUTE_METADATA, method) as CanaryRouteOptions | undefined) ??
          (Reflect.getMetadata(CANARY_ROUTE_METADATA, controller) as CanaryRouteOptions | undefined) ??
          {},
        path: grpc ? `/${grpc.service}/${grpc.rpc}` : undefined,
        streaming: grpc?.streaming === 'rx_stream' || grpc?.streaming === 'pt_stream',
      };
      this.handlers.set(method, handler);
    }
    return handler;
  }
}

/** The `route` label: as rpc_server_duration_seconds labels the method (`Service/Method` for gRPC). */
function routeOf(pattern: unknown, controller: { name: string }, method: { name: string }): string {
  if (isGrpcPattern(pattern)) return `${pattern.service}/${pattern.rpc}`;
  if (typeof pattern === 'string') return pattern;
  if (pattern !== undefined) return JSON.stringify(pattern);
  return `${controller.name}.${method.name}`;
}
