import type { IncomingMessage } from 'node:http';
import type { HttpMetricsHooks, HttpObserver } from './http-metrics.hooks';
import { isScrape } from './scrape-marker';

/** The parts of Fastify's request, reply and instance the hook uses; Fastify itself is not a dependency. */
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
  readonly routeOptions: { readonly url?: string };
}
export interface FastifyReplyLike {
  readonly statusCode: number;
  /** Milliseconds since Fastify routed the request. */
  readonly elapsedTime: number;
}
export interface FastifyInstanceLike {
  addHook(name: 'onResponse', hook: (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void) => void): unknown;
}

/**
 * Fastify's own `onResponse` hook. Nest's Fastify adapter already registers one, so Fastify already
 * times every request and runs the hook chain; ours adds one function call that reads what Fastify
 * measured (`reply.elapsedTime`) and matched (`routeOptions.url`, the template Nest registered,
 * undefined in the not-found handler).
 */
export class FastifyMetricsHooks implements HttpMetricsHooks {
  readonly adapter = 'fastify';
  private observer: HttpObserver | undefined;
  private installed = false;

  constructor(private readonly fastify: FastifyInstanceLike) {}

  attach(observe: HttpObserver): void {
    this.observer = observe;
    if (this.installed) return;
    // Route contexts copy the instance's hooks when Fastify gets ready, so a hook added during
    // Nest's bootstrap (before listen) applies to every route and to the not-found handler.
    this.fastify.addHook('onResponse', this.onResponse);
    this.installed = true;
  }

  /** Fastify cannot remove a hook; it goes quiet instead. */
  detach(): void {
    this.observer = undefined;
  }

  private readonly onResponse = (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void): void => {
    const observe = this.observer;
    if (observe !== undefined && !isScrape(request.raw)) {
      observe(request.raw.method ?? 'GET', request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
    }
    done();
  };
}
