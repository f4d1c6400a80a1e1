/**
 * The token under which MetricsModule (@nest-rollout/metrics) provides its publisher. Health, the
 * registry, the canary and the dynamic config inject it with `@Optional()`: they publish their
 * metrics when MetricsModule is in the application and work, unmetered, without it. Defined here
 * because every nest-rollout lib already depends on the lifecycle, and none on the metrics.
 */
export const METRICS_PUBLISHER = 'METRICS:PUBLISHER';

/** One series of a gauge read at scrape time. */
export interface MetricReading {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** What a lib needs of MetricsModule's publisher; the metrics lib narrows it to its catalogue. */
export interface MetricsPublisher {
  /** Adds `value` (default 1) to a counter of the catalogue. */
  increment(name: string, labels: Readonly<Record<string, string>>, value?: number): void;
  /** Sets a gauge of the catalogue. */
  set(name: string, labels: Readonly<Record<string, string>>, value: number): void;
  /**
   * Reads a gauge of the catalogue at every scrape, for values that age between events; the
   * readings replace the gauge's series. Returns the function that stops reading.
   */
  observe(name: string, read: () => Iterable<MetricReading>): () => void;
}
