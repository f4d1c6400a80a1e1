import { LIFECYCLE_CLOCK, LifecycleService, LifecycleState, ManualClock } from '@nest-rollout/lifecycle';
import { InstanceMetrics } from './instance.metrics';
import { METRICS_CLOCK, MetricName } from './metrics.constants';
import { MetricsService } from './metrics.service';
import { waitFor } from '../testing/deferred';
import { ADAPTERS, bootstrapMetricsApp, MetricsTestApp, parseExposition, samplesOf, valueOf } from '../testing/metrics-app';

async function scrape(t: MetricsTestApp) {
  return parseExposition((await t.scrape()).text);
}

describe.each(ADAPTERS)('instance metrics on %s', (adapter) => {
  let t: MetricsTestApp | undefined;
  let clock: ManualClock;
  beforeEach(async () => {
    clock = new ManualClock();
    t = await bootstrapMetricsApp(adapter, {
      lifecycle: { instanceId: 'orders-7f9c', version: '1.4.2', color: 'green', drainDelayMs: 5000 },
      metrics: { track: 'canary', commit: '3f2c1ab' },
      override: (builder) => builder.overrideProvider(LIFECYCLE_CLOCK).useValue(clock).overrideProvider(METRICS_CLOCK).useValue(clock),
    });
  });
  afterEach(async () => {
    if (t && t.app.get(LifecycleService).state !== LifecycleState.STOPPED) await t.close();
    t = undefined;
  });

  it('publishes app_info with the build, colour, track, commit and instance id', async () => {
    const samples = await scrape(t!);
    expect(samplesOf(samples, MetricName.APP_INFO)).toEqual([
      {
        name: MetricName.APP_INFO,
        labels: { version: '1.4.2', color: 'green', track: 'canary', commit: '3f2c1ab', instance_id: 'orders-7f9c' },
        value: 1,
      },
    ]);
  });

  it('sets the current lifecycle state to 1 and every other state to 0, and counts the transitions', async () => {
    const samples = await scrape(t!);
    expect(Object.fromEntries(samplesOf(samples, MetricName.LIFECYCLE_STATE).map((s) => [s.labels.state, s.value]))).toEqual({
      STARTING: 0,
      WARMING_UP: 0,
      READY: 1,
      DRAINING: 0,
      STOPPING: 0,
      STOPPED: 0,
    });
    expect(valueOf(samples, MetricName.LIFECYCLE_TRANSITIONS_TOTAL, { from: 'STARTING', to: 'WARMING_UP' })).toBe(1);
    expect(valueOf(samples, MetricName.LIFECYCLE_TRANSITIONS_TOTAL, { from: 'WARMING_UP', to: 'READY' })).toBe(1);
    expect(valueOf(samples, MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS)).toBe(0);
  });

  it('keeps serving during the drain, showing DRAINING and the time since the shutdown began, frozen at STOPPED', async () => {
    const lifecycle = t!.app.get(LifecycleService);
    const instance = t!.app.get(InstanceMetrics);
    const shutdown = lifecycle.shutdown('test');
    await waitFor(() => lifecycle.state === LifecycleState.DRAINING, 'DRAINING');
    await clock.advance(1500);
    const draining = await scrape(t!);
    expect(valueOf(draining, MetricName.LIFECYCLE_STATE, { state: 'DRAINING' })).toBe(1);
    expect(valueOf(draining, MetricName.LIFECYCLE_STATE, { state: 'READY' })).toBe(0);
    expect(valueOf(draining, MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS)).toBe(1.5);
    expect(valueOf(draining, MetricName.LIFECYCLE_TRANSITIONS_TOTAL, { from: 'READY', to: 'DRAINING' })).toBe(1);

    await clock.advance(3500);
    await shutdown;
    expect(lifecycle.state).toBe(LifecycleState.STOPPED);
    expect(instance.shutdownSeconds).toBe(5);
    await clock.advance(60_000);
    expect(instance.shutdownSeconds).toBe(5);
    // Closed: its metrics left the registry with it.
    expect(await t!.app.get(MetricsService).registry.getSingleMetric(MetricName.APP_INFO)).toBeUndefined();
  });
});
