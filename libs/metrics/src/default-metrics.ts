import { collectDefaultMetrics } from 'prom-client';
import { MetricsError } from './metrics.errors';
import type { MetricsRegistry } from './metrics.options';

/** A metric every prom-client version's default set registers first; its presence means "already collected". */
const MARKER = 'process_cpu_user_seconds_total';

/**
 * Gauges of prom-client's default set whose names end in `_total`, which `promtool check metrics`
 * rejects ("non-counter metrics should not have _total suffix"). Each is the sum of the gauge of
 * the same name without the suffix, labelled by type: `sum(nodejs_active_handles)` gives it.
 */
export const DROPPED_DEFAULT_METRICS: readonly string[] = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * Registers prom-client's default process and Node.js metrics once per registry and prefix.
 * Never removed: they describe the process, not one application, and prom-client cannot stop
 * their GC observer and event-loop monitor, so registering them again on every hot reload would
 * leak one of each. The `_total` gauges above are taken out again, so that the scrape passes
 * promtool. Returns false when the default metrics were there already.
 */
export function registerDefaultMetrics(registry: MetricsRegistry, prefix: string): boolean {
  if (registry.getSingleMetric(`${prefix}${MARKER}`)) return false;
  try {
    collectDefaultMetrics({ register: registry, prefix });
    for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(`${prefix}${name}`);
  } catch (error) {
    throw new MetricsError(
      'METRICS_DEFAULT_METRICS_CONFLICT',
      `prom-client's default metrics could not be registered (${error instanceof Error ? error.message : String(error)}): ` +
        'some of them are registered already, without the full set. Stop collecting them yourself, or set defaultMetrics: false.',
    );
  }
  return true;
}
