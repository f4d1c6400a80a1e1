import type { IncomingMessage } from 'node:http';

/**
 * Marks a request as a scrape of the metrics endpoint, so that it is left out of the histogram it
 * renders (and of the in-flight gauge it reads). Set on the raw Node request, which both adapters
 * share, by the scrape handler itself: no path comparison on the hot path, and right whatever
 * global prefix or version the endpoint ends up under.
 */
const SCRAPE = Symbol('@nest-rollout/metrics:scrape');

type Marked = IncomingMessage & { [SCRAPE]?: true };

export function markScrape(request: unknown): void {
  const raw = rawRequest(request);
  if (raw) (raw as Marked)[SCRAPE] = true;
}

export function isScrape(req: IncomingMessage): boolean {
  return (req as Marked)[SCRAPE] === true;
}

/** The Node request under a framework request: Fastify wraps it in `raw`, Express extends it. */
export function rawRequest(request: unknown): IncomingMessage | undefined {
  if (typeof request !== 'object' || request === null) return undefined;
  const raw = (request as { raw?: unknown }).raw;
  return (typeof raw === 'object' && raw !== null ? raw : request) as IncomingMessage;
}
