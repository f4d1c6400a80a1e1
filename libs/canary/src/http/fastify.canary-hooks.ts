import type { IncomingMessage, ServerResponse } from 'node:http';
import { CANARY_ROUTE_CONFIG_KEY } from '../canary.constants';
import type { CanaryRouteOptions } from '../canary.types';
import type { CanaryHttpHooks } from './canary-http.hooks';
import type { CanaryHttpRoute, CanaryRequestHandler, DecidedRequest } from './canary-request.handler';

/** The parts of Fastify's request, reply, route options and instance the hooks use; Fastify is not a dependency. */
interface FastifyRequestLike {
  readonly raw: IncomingMessage;
}
interface FastifyReplyLike {
  readonly raw: ServerResponse;
  hijack(): unknown;
}
type Hook = (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void) => void;
interface RouteOptionsLike {
  url?: string;
  path?: string;
  config?: Record<string, unknown>;
  onRequest?: Hook | Hook[];
  preHandler?: Hook | Hook[];
}
export interface FastifyInstanceLike {
  addHook(name: 'onRoute', hook: (route: RouteOptionsLike) => void): unknown;
}

/**
 * Fastify's own per-route hooks, added only to `@Canary()` routes (recognised by the route config
 * `@Canary()` leaves for Nest's Fastify adapter to pass on): `onRequest` decides and forwards before
 * Fastify reads the body, `preHandler` runs the handler in the decision's context. Other routes get
 * no hook at all.
 */
export class FastifyCanaryHooks implements CanaryHttpHooks {
  readonly adapter = 'fastify';
  private bound = 0;

  constructor(
    private readonly fastify: FastifyInstanceLike,
    private readonly handler: CanaryRequestHandler,
  ) {}

  /** Before Nest registers its routes: `onRoute` sees each of them. */
  install(): void {
    this.fastify.addHook('onRoute', (options) => {
      const canary = options.config?.[CANARY_ROUTE_CONFIG_KEY] as CanaryRouteOptions | undefined;
      if (canary === undefined) return;
      const route: CanaryHttpRoute = { template: options.url ?? options.path ?? '', options: canary };
      options.onRequest = [...asList(options.onRequest), this.onRequest(route)];
      options.preHandler = [this.preHandler, ...asList(options.preHandler)];
      this.bound++;
    });
  }

  bind(): number {
    return this.bound;
  }

  private onRequest(route: CanaryHttpRoute): Hook {
    return (request, reply, done) =>
      this.handler.handle(request.raw as DecidedRequest, reply.raw, route, { proceed: done, commit: () => reply.hijack() });
  }

  private readonly preHandler: Hook = (request, _reply, done) => this.handler.runHandler(request.raw, done);
}

function asList(hooks: Hook | Hook[] | undefined): Hook[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}
