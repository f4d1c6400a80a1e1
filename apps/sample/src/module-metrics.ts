import type { INestApplication } from '@nestjs/common';
import { ReadinessService } from '@nest-rollout/health';
import { MetricName, MetricsService } from '@nest-rollout/metrics';
import { RegistrationState, RegistryService, RegistryStats } from '@nest-rollout/registry';

/**
 * The health and registry libs expose their numbers as streams and do not depend on the metrics
 * lib; the application joins them to the metrics catalogue here, once, at start-up.
 */
export function publishModuleMetrics(app: INestApplication): void {
  const metrics = app.get(MetricsService);
  app
    .get(ReadinessService)
    .changes$.subscribe((change) => metrics.increment(MetricName.HEALTH_READINESS_CHANGES_TOTAL, { ready: String(change.ready) }));

  const registry = app.get(RegistryService);
  if (!registry.enabled) return;
  const stats = app.get(RegistryStats);
  // The driver is known once the registry has started, after this runs: read it per event.
  const driver = () => stats.snapshot().driver;
  stats.events$.subscribe((event) => {
    if (event.type === 'operation') {
      metrics.increment(MetricName.REGISTRY_OPERATIONS_TOTAL, { driver: driver(), operation: event.kind, result: event.result });
    }
  });
  registry.state$.subscribe((state) => {
    if (driver() !== 'none')
      metrics.set(MetricName.REGISTRY_REGISTERED, { driver: driver() }, state === RegistrationState.REGISTERED ? 1 : 0);
  });
}
