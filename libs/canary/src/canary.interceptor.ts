import type { IncomingMessage, ServerResponse } from 'node:http';
import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor, Optional } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { EMPTY, from, mergeMap, Observable } from 'rxjs';
import { CANARY_FORWARDER, CANARY_OPTIONS, CANARY_ROUTE_METADATA } from './canary.constants';
import { CanaryContext } from './canary.context';
import type { ResolvedCanaryOptions } from './canary.options';
import { CanaryService } from './canary.service';
import type { CanaryDecision, CanaryForwarder, CanaryRouteOptions } from './canary.types';

/** Where the decision sits on the adapter's request object, for `@CanaryDecision()`. */
export const CANARY_DECISION_KEY = Symbol('canary.decision');

interface AdapterRequest {
  raw?: IncomingMessage;
  routeOptions?: { url?: string };
  route?: { path?: string };
  baseUrl?: string;
  [CANARY_DECISION_KEY]?: CanaryDecision;
}

interface RouteInfo {
  readonly options: CanaryRouteOptions;
  route?: string;
}

/**
 * Applied by `@Canary()` only, so undecorated routes never run it. Decides, records the decision
 * on the request and in CanaryContext, sets the sticky cookie or header, and hands canary
 * decisions on a stable instance to the forwarder when there is one.
 */
@Injectable()
export class CanaryInterceptor implements NestInterceptor {
  private readonly routes = new WeakMap<object, RouteInfo>();

  constructor(
    private readonly service: CanaryService,
    private readonly context: CanaryContext,
    private readonly reflector: Reflector,
    @Inject(CANARY_OPTIONS) private readonly options: ResolvedCanaryOptions,
    @Optional() @Inject(CANARY_FORWARDER) private readonly forwarder?: CanaryForwarder,
  ) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    // gRPC and other transports are not decided yet: their handlers run as if undecorated.
    if (ctx.getType() !== 'http') return next.handle();
    const http = ctx.switchToHttp();
    const request = http.getRequest<AdapterRequest>();
    const response = http.getResponse<{ raw?: ServerResponse }>();
    const req = request.raw ?? (request as unknown as IncomingMessage);
    const res = response.raw ?? (response as unknown as ServerResponse);
    const info = this.routeInfo(ctx, request);
    const decided = this.service.decide(req, info.route ?? '');
    if (decided instanceof Promise)
      return from(decided).pipe(mergeMap((decision) => this.proceed(decision, info, request, req, res, next)));
    return this.proceed(decided, info, request, req, res, next);
  }

  private proceed(
    decision: CanaryDecision,
    info: RouteInfo,
    request: AdapterRequest,
    req: IncomingMessage,
    res: ServerResponse,
    next: CallHandler,
  ): Observable<unknown> {
    this.stick(res, decision);
    if (decision.variant === 'stable') return this.serve(decision, request, next);
    const local = this.servedLocallyBecause(info);
    if (local) return this.serve({ ...decision, servedLocally: local }, request, next);
    const forwarder = this.forwarder as CanaryForwarder;
    return from(forwarder.forward(req, res, decision)).pipe(
      // Forwarded: the response is written; the handler must not run.
      mergeMap((result) =>
        result === 'forwarded' ? EMPTY : this.serve({ ...decision, servedLocally: result.servedLocally }, request, next),
      ),
    );
  }

  private serve(decision: CanaryDecision, request: AdapterRequest, next: CallHandler): Observable<unknown> {
    request[CANARY_DECISION_KEY] = decision;
    // handle() binds the handler to the async context it is called in: the decision's.
    return this.context.run(decision, () => next.handle());
  }

  private servedLocallyBecause(info: RouteInfo): string | undefined {
    if (this.service.track === 'canary') return 'on_canary';
    if (info.options.forward === false) return 'not_forwarded';
    if (!this.forwarder) return 'no_forwarder';
    return undefined;
  }

  private stick(res: ServerResponse, decision: CanaryDecision): void {
    if (this.options.stickyHeader && !res.headersSent) res.setHeader(this.options.stickyHeader, decision.variant);
    if (this.options.stickyCookie && !res.headersSent) {
      const cookie = `${this.options.stickyCookie}=${decision.variant}; Path=/; SameSite=Lax; HttpOnly`;
      const previous = res.getHeader('set-cookie');
      res.setHeader('set-cookie', previous === undefined ? cookie : [...(Array.isArray(previous) ? previous : [String(previous)]), cookie]);
    }
  }

  /** Route options and template, cached per handler: the metadata lookup runs once per route. */
  private routeInfo(ctx: ExecutionContext, request: AdapterRequest): RouteInfo {
    const handler = ctx.getHandler();
    let info = this.routes.get(handler);
    if (!info) {
      const options =
        this.reflector.getAllAndOverride<CanaryRouteOptions | undefined>(CANARY_ROUTE_METADATA, [handler, ctx.getClass()]) ?? {};
      info = { options };
      this.routes.set(handler, info);
    }
    // The template is only known from a request (Express's mount path, Fastify's route url).
    info.route ??=
      request.routeOptions?.url ?? (request.route?.path !== undefined ? `${request.baseUrl ?? ''}${request.route.path}` : undefined);
    return info;
  }
}
