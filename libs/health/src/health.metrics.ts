import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import type { Subscription } from 'rxjs';
import { ReadinessService } from './readiness.service';

/** Counter, label `ready` ("true" or "false"): readiness changes, as catalogued by @nest-rollout/metrics. */
export const HEALTH_READINESS_CHANGES_TOTAL = 'health_readiness_changes_total';

/** Counts each readiness change (not each probe) when MetricsModule is present. */
@Injectable()
export class HealthMetrics implements OnModuleInit, OnApplicationShutdown {
  private subscription?: Subscription;

  constructor(
    private readonly readiness: ReadinessService,
    @Optional() @Inject(METRICS_PUBLISHER) private readonly metrics?: MetricsPublisher,
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
