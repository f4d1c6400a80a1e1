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
  /** A middleware layer mounted at `/`: it sees every request. */
  readonly slash?: boolean;
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
 * so the hooks put a check in front of them that recognises a `@Canary()` route by Express's own
 * path matching of that route's layer. The check goes into the first layer of the app's stack when
 * that is a middleware every request passes (Nest 12's security hook, Nest 11's JSON body parser),
 * ahead of its own work: one router layer less to walk on every request of every route. Otherwise
 * it is a middleware layer of its own, first. The request of an undecorated route costs a test of
 * the method and path against each decorated route. The route's handler (Nest's, which carries
 * `@Canary()`'s metadata) is wrapped to run in the decision's context.
 */
export class ExpressCanaryHooks implements CanaryHttpHooks {
  readonly adapter = 'express';
  private routes: readonly ExpressCanaryRoute[] = [];

  constructor(
    private readonly express: ExpressInstanceLike,
    private readonly handler: CanaryRequestHandler,
  ) {}

  /** Before Nest registers its routes: the check goes ahead of the body parsers already installed. */
  install(): void {
    const stack = this.express.router.stack;
    const first = stack[0];
    if (first !== undefined && first.slash === true && first.route === undefined && first.handle.length <= 3) {
      const parser = first.handle;
      first.handle = (req, res, next) => this.check(req, res, next, parser);
      return;
    }
    this.express.use((req, res, next) => this.check(req, res, next, undefined));
    stack.unshift(stack.pop() as RouterLayer);
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

  /** Decides a request of a decorated route, then hands it to `then` (the layer's own middleware) or to `next`. */
  private check(req: IncomingMessage, res: ServerResponse, next: Next, then: Handle | undefined): unknown {
    const routes = this.routes;
    const route = routes.length === 0 ? undefined : this.matching(routes, req);
    if (route === undefined) return then === undefined ? next() : then(req, res, next);
    this.handler.handle(req as DecidedRequest, res, route, { proceed: () => (then === undefined ? next() : then(req, res, next)) });
    return undefined;
  }

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
