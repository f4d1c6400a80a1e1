import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CANARY_ROUTE_METADATA } from './canary.constants';
import { CanaryInterceptor } from './canary.interceptor';
import { rpcDecision } from './rpc/canary-rpc';
import { CANARY_DECISION_KEY, type DecidedRequest } from './http/canary-request.handler';
import type { CanaryDecision as Decision, CanaryRouteOptions } from './canary.types';

/**
 * Routes this handler (or every handler of a controller) by the canary rules. Over HTTP the
 * decision is taken on the adapter's own hooks, before the body is read (CanaryModule puts the
 * routes there when the application starts); the interceptor attached here serves microservice
 * handlers (gRPC) and is taken off HTTP routes. Undecorated routes pay nothing.
 */
export function Canary(options: CanaryRouteOptions = {}): MethodDecorator & ClassDecorator {
  return applyDecorators(SetMetadata(CANARY_ROUTE_METADATA, options), UseInterceptors(CanaryInterceptor));
}

/** The decision for one request: `{ variant: 'stable' | 'canary', reason, route, ... }`. */
export type CanaryDecision = Decision;

/** The decision of the current request (`{ variant, reason, ... }`); undefined on undecorated routes. */
export const CanaryDecision = createParamDecorator((_: unknown, ctx: ExecutionContext): Decision | undefined => {
  if (ctx.getType() !== 'http') return rpcDecision(ctx);
  // Express hands Nest the raw request; Fastify its own, with the raw one under `raw`.
  const request = ctx.switchToHttp().getRequest<DecidedRequest & { raw?: DecidedRequest }>();
  return (request.raw ?? request)[CANARY_DECISION_KEY];
});
