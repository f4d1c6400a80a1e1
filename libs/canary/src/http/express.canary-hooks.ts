import type { IncomingMessage, ServerResponse } from 'node:http';
import { CANARY_ROUTE_METADATA } from '../canary.constants';
import type { CanaryRouteOptions } from '../canary.types';
import type { CanaryHttpHooks } from './canary-http.hooks';
import type { CanaryHttpRoute, CanaryRequestHandler, DecidedRequest } from './canary-request.handler';

type Next = (error?: unknown) => void;
type Handle = (req: IncomingMessage, res: ServerResponse, next: Next) => unknown;

/** The parts of Express 5's router (the `router` package) the hooks use; Express is not a dependency. */
interface RouterLayer {
  handle: Handle;
  match(path: string): unknown;
  route?: { path: string; methods: Record<string, boolean | undefined>; stack: RouterLayer[] };
}
export interface ExpressInstanceLike {
  use(handle: Handle): unknown;
  readonly router: { readonly stack: RouterLayer[] };
}

interface ExpressCanaryRoute extends CanaryHttpRoute {
  readonly layer: RouterLayer;
  /** The route layers registered before this one (middleware layers left out): Express tries them first. */
  readonly earlier: readonly RouterLayer[];
}

/**
 * Express has no per-route hook that runs before the body parsers Nest installs for the whole app,
 * so the hooks add one middleware in front of them (first in the app's stack) that recognises a
 * `@Canary()` route by Express's own path matching of that route's layer; the request of any other
 * route costs one check of an empty list per decorated route pattern. The route's handler (Nest's,
 * which carries `@Canary()`'s metadata) is wrapped to run in the decision's context.
 */
export class ExpressCanaryHooks implements CanaryHttpHooks {
  readonly adapter = 'express';
  private routes: readonly ExpressCanaryRoute[] = [];

  constructor(
    private readonly express: ExpressInstanceLike,
    private readonly handler: CanaryRequestHandler,
  ) {}

  /** Before Nest registers its routes: the middleware goes ahead of the body parsers already installed. */
  install(): void {
    this.express.use(this.beforeBodyParsers);
    const stack = this.express.router.stack;
    const layer = stack.pop() as RouterLayer;
    stack.unshift(layer);
  }

  /** Once Nest registered its routes: finds the decorated ones. Returns the count found. */
  bind(): number {
    const routes: ExpressCanaryRoute[] = [];
    const seen: RouterLayer[] = [];
    for (const layer of this.express.router.stack) {
      const route = layer.route;
      if (!route) continue;
      const earlier = [...seen];
      seen.push(layer);
      for (const step of route.stack) {
        const options = Reflect.getMetadata(CANARY_ROUTE_METADATA, step.handle) as CanaryRouteOptions | undefined;
        if (options === undefined) continue;
        const original = step.handle;
        step.handle = (req, res, next) => this.handler.runHandler(req, () => original(req, res, next));
        routes.push({ template: route.path, options, layer, earlier });
      }
    }
    this.routes = routes;
    return routes.length;
  }

  private readonly beforeBodyParsers = (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    const routes = this.routes;
    if (routes.length === 0) return next();
    const route = this.matching(routes, req);
    if (route === undefined) return next();
    this.handler.handle(req as DecidedRequest, res, route, { proceed: () => next() });
  };

  /** The decorated route Express will route this request to, if any. */
  private matching(routes: readonly ExpressCanaryRoute[], req: IncomingMessage): ExpressCanaryRoute | undefined {
    const method = req.method ?? 'GET';
    const path = pathOf(req.url);
    for (const route of routes) {
      if (!handlesMethod(route.layer, method) || !route.layer.match(path)) continue;
      // Express routes to the first matching route: an earlier undecorated one wins.
      for (const earlier of route.earlier) if (handlesMethod(earlier, method) && earlier.match(path)) return undefined;
      return route;
    }
    return undefined;
  }
}

function handlesMethod(layer: RouterLayer, method: string): boolean {
  const methods = (layer.route as NonNullable<RouterLayer['route']>).methods;
  const name = method.toLowerCase();
  return Boolean(methods._all || methods[name] || (name === 'head' && !methods.head && methods.get));
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
