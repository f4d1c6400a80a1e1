import type { Metric } from 'prom-client';
import { MetricsConflictError } from './metrics.errors';
import type { MetricsRegistry } from './metrics.options';

/**
 * Registration that never throws "metric already registered". A registry outlives applications
 * (prom-client's global one lives as long as the process): tests create several apps, hot reload
 * creates a new one before the old is gone. So each of our metrics is registered once per registry,
 * shared by every MetricsModule that uses that registry, and removed when the last one closes.
 * The bookkeeping sits on the metric object itself (a registry-scoped fact), never in a module-level map.
 */
const SHARED = Symbol.for('@nest-rollout/metrics:shared');

interface SharedState<O> {
  /** Kind, labels and buckets: two owners may share a metric only when these agree. */
  readonly signature: string;
  /** In registration order; the last one is the most recently started application. */
  readonly owners: Set<O>;
}

type Shareable<O> = { name?: unknown; [SHARED]?: SharedState<O> };

/**
 * Returns the metric `name` of this registry, registering the one `create` builds when there is
 * none. `create` gets the live set of owners, for metrics whose values are read from them at scrape.
 */
export function acquireMetric<M extends object, O>(
  registry: MetricsRegistry,
  name: string,
  signature: string,
  owner: O,
  create: (owners: ReadonlySet<O>) => M,
): M {
  const existing = registry.getSingleMetric(name) as Shareable<O> | undefined;
  if (existing) {
    const shared = existing[SHARED];
    if (!shared) throw new MetricsConflictError(name, 'registered by the application or another library, not by MetricsModule');
    if (shared.signature !== signature) {
      throw new MetricsConflictError(name, `registered by another MetricsModule as ${shared.signature}; this one needs ${signature}`);
    }
    shared.owners.add(owner);
    return existing as M;
  }
  const owners = new Set<O>([owner]);
  const metric = create(owners);
  Object.defineProperty(metric, SHARED, { value: { signature, owners } satisfies SharedState<O> });
  registry.registerMetric(metric as unknown as Metric);
  return metric;
}

/** Gives up `owner`'s share; the last owner to leave takes the metric out of the registry. */
export function releaseMetric<O>(registry: MetricsRegistry, metric: object, owner: O): void {
  const shareable = metric as Shareable<O>;
  const shared = shareable[SHARED];
  if (!shared) return;
  shared.owners.delete(owner);
  const name = String(shareable.name);
  if (shared.owners.size === 0 && registry.getSingleMetric(name) === metric) registry.removeSingleMetric(name);
}

/** The most recently registered owner still open. */
export function latestOwner<O>(owners: ReadonlySet<O>): O | undefined {
  let last: O | undefined;
  for (const owner of owners) last = owner;
  return last;
}
