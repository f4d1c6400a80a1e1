import { Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { LifecycleClock, MetricsPublisher } from '@nest-rollout/lifecycle';
import { ConfigReloadOutcome, DYNAMIC_CONFIG_CLOCK, DynamicConfigMetric } from '../config.constants';

/**
 * The dynamic configuration's metrics, when MetricsModule is in the application (it provides
 * `METRICS_PUBLISHER`); without it every call is a no-op. `config_info` is read at each scrape, so
 * that it holds one series, the version in force, however many versions came before.
 */
@Injectable()
export class DynamicConfigMetrics implements OnApplicationShutdown {
  private version: string | undefined;
  private stopObserving: (() => void) | undefined;

  constructor(
    @Inject(DYNAMIC_CONFIG_CLOCK) private readonly clock: LifecycleClock,
    @Optional() @Inject(METRICS_PUBLISHER) private readonly metrics?: MetricsPublisher,
  ) {}

  /** One update handled: `source` is a source's kind, or `reload`. */
  reload(source: string, result: ConfigReloadOutcome): void {
    this.metrics?.increment(DynamicConfigMetric.RELOADS_TOTAL, { source, result });
  }

  /** The configuration in force validated again (loaded, applied or unchanged). */
  succeeded(version: string): void {
    const metrics = this.metrics;
    if (!metrics) return;
    this.version = version;
    metrics.set(DynamicConfigMetric.LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, {}, this.clock.now() / 1000);
    this.stopObserving ??= metrics.observe(DynamicConfigMetric.INFO, () =>
      this.version === undefined ? [] : [{ labels: { hash: this.version }, value: 1 }],
    );
  }

  onApplicationShutdown(): void {
    this.stopObserving?.();
    this.stopObserving = undefined;
  }
}
