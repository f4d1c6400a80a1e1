import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { HttpMetricsHooks, HttpObserver } from './http-metrics.hooks';
import { isScrape } from './scrape-marker';

const STARTED_AT = Symbol('@nest-rollout/metrics:started-at');

type TimedResponse = ServerResponse & { [STARTED_AT]?: number };
type ExpressRequest = IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };

/**
 * Express has no "request completed" hook of its own, and a Nest interceptor costs an RxJS
 * pipeline per request. So: a listener on the Node server's 'request' event, prepended before
 * Express's, stamps the start; one shared 'close' listener (no closure per request) observes the
 * end. Express leaves the matched route on `req.route`, whose `path` is the full template Nest
 * registered on the application's router. A route matched inside a mounted sub-router (non-empty
 * `req.baseUrl`) is not one of Nest's: Nest mounts only its not-found catch-all (`*path` under the
 * global prefix) that way, so those requests, like the ones no route matched, are unmatched.
 */
export class ExpressMetricsHooks implements HttpMetricsHooks {
  readonly adapter = 'express';
  private observer: HttpObserver | undefined;
  private readonly onClose: (this: ServerResponse) => void;

  constructor(private readonly server: Server) {
    const completed = (res: ServerResponse) => this.completed(res);
    // A plain function, so that Node calls it with the response as `this`.
    this.onClose = function (this: ServerResponse) {
      completed(this);
    };
  }

  attach(observe: HttpObserver): void {
    if (this.observer === undefined) this.server.prependListener('request', this.onRequest);
    this.observer = observe;
  }

  detach(): void {
    this.server.off('request', this.onRequest);
    this.observer = undefined;
  }

  private readonly onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    (res as TimedResponse)[STARTED_AT] = performance.now();
    res.on('close', this.onClose);
  };

  private completed(res: TimedResponse): void {
    const observe = this.observer;
    // 'close' also ends responses the client abandoned; only complete ones are observed, as on Fastify.
    if (observe === undefined || !res.writableFinished) return;
    const req = res.req as ExpressRequest;
    if (isScrape(req)) return;
    const path = req.baseUrl ? undefined : req.route?.path;
    observe(
      req.method ?? 'GET',
      typeof path === 'string' ? path : undefined,
      res.statusCode,
      (performance.now() - (res[STARTED_AT] ?? 0)) / 1000,
    );
  }
}
