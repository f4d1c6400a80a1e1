import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Observable } from 'rxjs';
import { CanaryContext } from './canary.context';
import { CanaryService } from './canary.service';
import type { CanaryDecision } from './canary.types';
import { isStreamingCall, rpcRequestView, setRpcDecision } from './rpc/canary-rpc';

/**
 * `@Canary()` on a microservice handler (gRPC): decides from the call's metadata, records the
 * decision for `@CanaryDecision()` and runs the handler in its context. Over HTTP the decision is
 * taken on the adapter's hooks instead (CanaryModule takes this interceptor off HTTP routes).
 */
@Injectable()
export class CanaryInterceptor implements NestInterceptor {
  private readonly routes = new WeakMap<object, string>();

  constructor(
    private readonly service: CanaryService,
    private readonly context: CanaryContext,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'rpc') return next.handle();
    const route = this.routeOf(ctx);
    return new Observable((subscriber) => {
      let inner: { unsubscribe(): void } | undefined;
      let cancelled = false;
      const serve = (decision: CanaryDecision) => {
        if (cancelled) return;
        setRpcDecision(ctx, decision);
        inner = this.context.run(decision, () => next.handle()).subscribe(subscriber);
      };
      try {
        const decided = this.service.decide(rpcRequestView(ctx), route);
        if (decided instanceof Promise) decided.then((d) => serve(this.local(ctx, d)), (error: unknown) => subscriber.error(error));
        else serve(this.local(ctx, decided));
      } catch (error) {
        subscriber.error(error);
      }
      return () => {
        cancelled = true;
        inner?.unsubscribe();
      };
    });
  }

  /** Microservice calls are served here: why, for a canary decision. */
  private local(ctx: ExecutionContext, decision: CanaryDecision): CanaryDecision {
    if (decision.variant === 'stable') return decision;
    if (this.service.track === 'canary') return { ...decision, servedLocally: 'on_canary' };
    if (isStreamingCall(ctx)) return { ...decision, servedLocally: 'streaming_call' };
    return { ...decision, servedLocally: 'no_forwarder' };
  }

  /** `Service/Method` of a gRPC handler, else the handler's class and method names: the `route` label. */
  private routeOf(ctx: ExecutionContext): string {
    const handler = ctx.getHandler();
    let route = this.routes.get(handler);
    if (route === undefined) {
      route = `${ctx.getClass().name}.${handler.name}`;
      this.routes.set(handler, route);
    }
    return route;
  }
}
