/** Wall-clock time for the shutdown duration, injected (METRICS_CLOCK) so that unit tests control it. */
export interface MetricsClock {
  /** Epoch milliseconds, on the same clock as the lifecycle's `LifecycleStateChange.at`. */
  now(): number;
}

export const systemMetricsClock: MetricsClock = { now: () => Date.now() };
