import { applyDecorators, createParamDecorator, ExecutionContext, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CANARY_ROUTE_METADATA } from './canary.constants';
import { CANARY_DECISION_KEY, CanaryInterceptor } from './canary.interceptor';
import type { CanaryDecision as Decision, CanaryRouteOptions } from './canary.types';

/**
 * Routes this handler (or every handler of a controller) by the canary rules. The interceptor is
 * attached here rather than globally, so undecorated routes pay nothing.
 */
export function Canary(options: CanaryRouteOptions = {}): MethodDecorator & ClassDecorator {
  return applyDecorators(SetMetadata(CANARY_ROUTE_METADATA, options), UseInterceptors(CanaryInterceptor));
}

/** The decision for one request: `{ variant: 'stable' | 'canary', reason, route, ... }`. */
export type CanaryDecision = Decision;

/** The decision of the current request (`{ variant, reason, ... }`); undefined on undecorated routes. */
export const CanaryDecision = createParamDecorator((_: unknown, ctx: ExecutionContext): Decision | undefined => {
  const request = ctx.switchToHttp().getRequest<{ [CANARY_DECISION_KEY]?: Decision }>();
  return request[CANARY_DECISION_KEY];
});
