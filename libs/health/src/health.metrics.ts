import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import { ReadinessService } from './readiness.service';

/**
 * What this lib needs of @nest-rollout/metrics' `MetricsPublisher`, looked up by its string token
 * (`METRICS:PUBLISHER`): health works, unmetered, without MetricsModule and does not depend on it.
 */
export interface HealthMetricsPublisher {
  increment(name: string, labels: Readonly<Record<string, string>>, value?: number): void;
}

/** Counter, label `ready` ("true" or "false"): readiness changes, as catalogued by @nest-rollout/metrics. */
export const HEALTH_READINESS_CHANGES_TOTAL = 'health_readiness_changes_total';

/** Counts each readiness change (not each probe) when MetricsModule is present. */
@Injectable()
export class HealthMetrics implements OnModuleInit, OnApplicationShutdown {
  private subscription?: Subscription;

  constructor(
    private readonly readiness: ReadinessService,
    @Optional() @Inject('METRICS:PUBLISHER') private readonly metrics?: HealthMetricsPublisher,
  ) {}

  onModuleInit(): void {
    const metrics = this.metrics;
    if (!metrics) return;
    this.subscription = this.readiness.changes$.subscribe((change) =>
      metrics.increment(HEALTH_READINESS_CHANGES_TOTAL, { ready: String(change.ready) }),
    );
  }

  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
  }
}
