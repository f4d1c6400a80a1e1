import type { CanaryRequestHandler } from './canary-request.handler';
import { ExpressCanaryHooks, type ExpressInstanceLike } from './express.canary-hooks';
import { FastifyCanaryHooks, type FastifyInstanceLike } from './fastify.canary-hooks';

/**
 * Where `@Canary()` routes meet the adapter: one implementation per adapter, everything else is
 * adapter-agnostic (CanaryRequestHandler).
 */
export interface CanaryHttpHooks {
  readonly adapter: 'express' | 'fastify';
  /** Called before Nest registers its routes (and after it installed its body parsers). */
  install(): void;
  /** Called once the routes are registered; returns how many decorated routes the hooks serve. */
  bind(): number;
}

/** The hooks for Nest's adapter, or undefined for an adapter this lib does not know. */
export function canaryHttpHooks(
  adapter: { getType(): string; getInstance<T>(): T },
  handler: CanaryRequestHandler,
): CanaryHttpHooks | undefined {
  const type = adapter.getType();
  if (type === 'express') return new ExpressCanaryHooks(adapter.getInstance<ExpressInstanceLike>(), handler);
  if (type === 'fastify') return new FastifyCanaryHooks(adapter.getInstance<FastifyInstanceLike>(), handler);
  return undefined;
}
