import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import { Subscription } from 'rxjs';
import { REGISTRY_OPTIONS, RegistryMetric } from './registry.constants';
import type { ResolvedRegistryOptions } from './registry.options';
import { RegistryService } from './registry.service';
import { RegistryStats } from './registry.stats';
import { RegistrationState } from './registry.types';

/**
 * Publishes `RegistryStats` when MetricsModule is present: the registered state, operations by kind
 * and result, lost registrations and the time from DRAINING to the deregistration as they happen;
 * the staleness and size of each discovery view read at every scrape.
 */
@Injectable()
export class RegistryMetrics implements OnModuleInit, OnApplicationShutdown {
  private readonly subscriptions = new Subscription();
  private stopObserving: Array<() => void> = [];

  constructor(
    @Inject(REGISTRY_OPTIONS) private readonly options: ResolvedRegistryOptions,
    private readonly registry: RegistryService,
    private readonly stats: RegistryStats,
    @Optional() @Inject(METRICS_PUBLISHER) private readonly metrics?: MetricsPublisher,
  ) {}

  onModuleInit(): void {
    const metrics = this.metrics;
    if (!metrics || this.options.driver === 'none') return;
    const driver = this.options.driver;
    this.subscriptions.add(
      this.stats.events$.subscribe((event) => {
        if (event.type === 'operation') {
          metrics.increment(RegistryMetric.OPERATIONS_TOTAL, { driver, operation: event.kind, result: event.result });
        } else if (event.type === 'registration_lost') {
          metrics.increment(RegistryMetric.REGISTRATIONS_LOST_TOTAL, { driver });
        } else {
          metrics.set(RegistryMetric.DEREGISTRATION_DURATION_SECONDS, { driver }, event.sinceDrainingMs / 1000);
        }
      }),
    );
    if (this.registry.enabled) {
      this.subscriptions.add(
        this.registry.state$.subscribe((state) =>
          metrics.set(RegistryMetric.REGISTERED, { driver }, state === RegistrationState.REGISTERED ? 1 : 0),
        ),
      );
    }
    const views = () => this.stats.snapshot().discovery;
    const health = (passingOnly: boolean) => (passingOnly ? 'passing' : 'any');
    this.stopObserving = [
      metrics.observe(RegistryMetric.DISCOVERY_STALENESS_SECONDS, () =>
        views().map((view) => ({ labels: { service: view.service, health: health(view.passingOnly) }, value: view.stalenessMs / 1000 })),
      ),
      metrics.observe(RegistryMetric.DISCOVERY_INSTANCES, () =>
        views().map((view) => ({ labels: { service: view.service, health: health(view.passingOnly) }, value: view.instances })),
      ),
    ];
  }

  onApplicationShutdown(): void {
    this.subscriptions.unsubscribe();
    for (const stop of this.stopObserving) stop();
    this.stopObserving = [];
  }
}
