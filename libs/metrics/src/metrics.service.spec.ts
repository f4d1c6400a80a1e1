import { Inject, Injectable, Optional } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { LifecycleModule, METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import { Registry } from 'prom-client';
import { MetricName, OVERFLOW_LABEL_VALUE } from './metrics.constants';
import { UnknownMetricError } from './metrics.errors';
import { MetricsModule } from './metrics.module';
import { MetricsService } from './metrics.service';
import { parseExposition, samplesOf, valueOf } from '../testing/metrics-app';
import { promtoolCheckMetrics } from '../testing/promtool';

/** How another nest-rollout module consumes the publisher: by its string token, optionally. */
@Injectable()
class CanaryLike {
  constructor(@Optional() @Inject('METRICS:PUBLISHER') readonly metrics?: MetricsPublisher) {}

  decide(variant: 'stable' | 'canary', reason: string): void {
    this.metrics?.increment(MetricName.CANARY_DECISIONS_TOTAL, { route: '/orders/:id/quote', variant, reason });
  }
}

async function compile(registry: Registry, maxSeriesPerMetric?: number): Promise<TestingModule> {
  return Test.createTestingModule({
    imports: [LifecycleModule.forRoot({}), MetricsModule.forRoot({ registry, defaultMetrics: false, maxSeriesPerMetric })],
    providers: [CanaryLike],
  }).compile();
}

describe('MetricsService as the publisher of the other modules’ metrics', () => {
  let moduleRef: TestingModule | undefined;
  afterEach(async () => {
    await moduleRef?.close();
    moduleRef = undefined;
  });

  it('is found under the string token METRICS:PUBLISHER, which is what optional consumers inject', async () => {
    moduleRef = await compile(new Registry());
    expect(METRICS_PUBLISHER).toBe('METRICS:PUBLISHER');
    expect(moduleRef.get(CanaryLike).metrics).toBe(moduleRef.get(MetricsService));
  });

  it('counts and sets the catalogue’s metrics, registering each on first use only', async () => {
    const registry = new Registry();
    moduleRef = await compile(registry);
    const service = moduleRef.get(MetricsService);
    expect(registry.getSingleMetric(MetricName.CANARY_DECISIONS_TOTAL)).toBeUndefined();
    const canary = moduleRef.get(CanaryLike);
    canary.decide('canary', 'header');
    canary.decide('canary', 'header');
    canary.decide('stable', 'percent');
    service.increment(MetricName.REGISTRY_OPERATIONS_TOTAL, { driver: 'consul', operation: 'register', result: 'ok' });
    service.increment(MetricName.CONFIG_RELOADS_TOTAL, { source: 'file', result: 'rejected' }, 2);
    service.increment(MetricName.HEALTH_READINESS_CHANGES_TOTAL, { ready: 'false' });
    service.set(MetricName.REGISTRY_REGISTERED, { driver: 'consul' }, 1);
    service.set(MetricName.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, {}, 1_790_000_000);
    service.set(MetricName.CONFIG_INFO, { hash: '3f2a9c1e07b4' }, 1);

    const { contentType, body } = await service.metrics();
    expect(contentType).toBe(registry.contentType);
    const samples = parseExposition(body);
    expect(valueOf(samples, MetricName.CANARY_DECISIONS_TOTAL, { route: '/orders/:id/quote', variant: 'canary', reason: 'header' })).toBe(
      2,
    );
    expect(valueOf(samples, MetricName.CANARY_DECISIONS_TOTAL, { route: '/orders/:id/quote', variant: 'stable', reason: 'percent' })).toBe(
      1,
    );
    expect(valueOf(samples, MetricName.REGISTRY_OPERATIONS_TOTAL, { driver: 'consul', operation: 'register', result: 'ok' })).toBe(1);
    expect(valueOf(samples, MetricName.CONFIG_RELOADS_TOTAL, { source: 'file', result: 'rejected' })).toBe(2);
    expect(valueOf(samples, MetricName.HEALTH_READINESS_CHANGES_TOTAL, { ready: 'false' })).toBe(1);
    expect(valueOf(samples, MetricName.REGISTRY_REGISTERED, { driver: 'consul' })).toBe(1);
    expect(valueOf(samples, MetricName.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, {})).toBe(1_790_000_000);
    expect(valueOf(samples, MetricName.CONFIG_INFO, { hash: '3f2a9c1e07b4' })).toBe(1);
    expect(promtoolCheckMetrics(body)).toEqual({ status: 0, output: '' });
  });

  it('caps the label sets of a published metric and counts what went to the overflow series', async () => {
    const registry = new Registry();
    moduleRef = await compile(registry, 2);
    const canary = moduleRef.get(CanaryLike);
    for (const reason of ['header', 'cookie', 'user-1', 'user-2', 'header']) canary.decide('canary', reason);
    const samples = parseExposition((await moduleRef.get(MetricsService).metrics()).body);
    expect(samplesOf(samples, MetricName.CANARY_DECISIONS_TOTAL).map((s) => [s.labels.reason, s.value])).toEqual([
      ['header', 2],
      ['cookie', 1],
      [OVERFLOW_LABEL_VALUE, 2],
    ]);
    expect(valueOf(samples, MetricName.METRICS_SERIES_DROPPED_TOTAL, { metric: MetricName.CANARY_DECISIONS_TOTAL })).toBe(2);
  });

  it('reads an observed gauge at every scrape, from every application sharing the registry, and stops when told', async () => {
    const registry = new Registry();
    moduleRef = await compile(registry);
    const other = await compile(registry);
    try {
      let staleness = 0;
      const stop = moduleRef
        .get(MetricsService)
        .observe(MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS, () => [
          { labels: { service: 'orders', health: 'passing' }, value: staleness },
        ]);
      other
        .get(MetricsService)
        .observe(MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS, () => [{ labels: { service: 'billing', health: 'passing' }, value: 7 }]);
      const scrape = async () =>
        samplesOf(parseExposition((await moduleRef!.get(MetricsService).metrics()).body), MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS)
          .map((s) => [s.labels.service, s.value])
          .sort();
      expect(await scrape()).toEqual([
        ['billing', 7],
        ['orders', 0],
      ]);
      staleness = 2.5;
      expect(await scrape()).toEqual([
        ['billing', 7],
        ['orders', 2.5],
      ]);
      // A series whose reader stopped disappears at the next scrape.
      stop();
      expect(await scrape()).toEqual([['billing', 7]]);
    } finally {
      await other.close();
    }
  });

  it('keeps the scrape whole when an observed gauge’s reader throws', async () => {
    moduleRef = await compile(new Registry());
    const service = moduleRef.get(MetricsService);
    service.observe(MetricName.REGISTRY_DISCOVERY_INSTANCES, () => {
      throw new Error('view closed');
    });
    service.observe(MetricName.REGISTRY_DISCOVERY_INSTANCES, () => [{ labels: { service: 'orders', health: 'passing' }, value: 3 }]);
    service.increment(MetricName.HEALTH_READINESS_CHANGES_TOTAL, { ready: 'true' });
    const { body } = await service.metrics();
    const samples = parseExposition(body);
    expect(samplesOf(samples, MetricName.REGISTRY_DISCOVERY_INSTANCES).map((s) => [s.labels.service, s.value])).toEqual([['orders', 3]]);
    expect(valueOf(samples, MetricName.HEALTH_READINESS_CHANGES_TOTAL, { ready: 'true' })).toBe(1);
    expect(promtoolCheckMetrics(body)).toEqual({ status: 0, output: '' });
  });

  it('ignores what is published after the application closed, leaving nothing behind in a shared registry', async () => {
    const registry = new Registry();
    const closing = await compile(registry);
    const service = closing.get(MetricsService);
    service.increment(MetricName.REGISTRY_OPERATIONS_TOTAL, { driver: 'etcd', operation: 'register', result: 'success' });
    expect(registry.getSingleMetric(MetricName.REGISTRY_OPERATIONS_TOTAL)).toBeDefined();
    await closing.close();
    expect(registry.getSingleMetric(MetricName.REGISTRY_OPERATIONS_TOTAL)).toBeUndefined();
    // A module whose own shutdown hook runs later (a last deregistration) still publishes.
    service.increment(MetricName.REGISTRY_OPERATIONS_TOTAL, { driver: 'etcd', operation: 'deregister', result: 'success' });
    service.set(MetricName.REGISTRY_REGISTERED, { driver: 'etcd' }, 0);
    service.observe(MetricName.REGISTRY_DISCOVERY_INSTANCES, () => [])();
    expect(registry.getMetricsAsArray()).toEqual([]);
  });

  it('refuses a name outside the catalogue, or of the other kind', async () => {
    moduleRef = await compile(new Registry());
    const service = moduleRef.get(MetricsService);
    expect(() => service.increment('orders_total' as never, {} as never)).toThrow(UnknownMetricError);
    expect(() => service.set(MetricName.CANARY_DECISIONS_TOTAL as never, {} as never, 1)).toThrow(
      /is not a gauge of the nest-rollout metric catalogue/,
    );
  });
});
