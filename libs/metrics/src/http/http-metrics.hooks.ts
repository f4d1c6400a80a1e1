/**
 * Called once for every HTTP request answered in full, scrapes of the metrics endpoint excepted.
 * `route` is the template the adapter's router matched, as Nest registered it (global prefix,
 * version, controller and handler paths); undefined when no route matched.
 */
export type HttpObserver = (method: string, route: string | undefined, statusCode: number, seconds: number) => void;

/**
 * Where the Express and the Fastify adapter differ for metrics: how a completed request, its
 * matched route and its duration are seen. Each implementation uses the cheapest mechanism its
 * adapter offers (see express.hooks.ts and fastify.hooks.ts); everything else is adapter-agnostic.
 */
export interface HttpMetricsHooks {
  readonly adapter: 'express' | 'fastify';
  /** Starts reporting completed requests to `observe`. Must run before the server starts listening. */
  attach(observe: HttpObserver): void;
  /** Stops reporting; requests still running are not observed. */
  detach(): void;
}
