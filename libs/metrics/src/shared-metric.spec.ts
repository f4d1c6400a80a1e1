import { Controller, Get, Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { InjectMetric, makeCounterProvider } from '@willsoto/nestjs-prometheus';
import { Counter, register, Registry } from 'prom-client';
import { DROPPED_DEFAULT_METRICS } from './default-metrics';
import { MetricName } from './metrics.constants';
import { MetricsConflictError } from './metrics.errors';
import { MetricsModule } from './metrics.module';
import { bootstrapMetricsApp, MetricsTestApp, parseExposition, valueOf } from '../testing/metrics-app';
import { promtoolCheckMetrics } from '../testing/promtool';

@Controller('orders')
class OrdersController {
  @Get(':id')
  get() {
    return { ok: true };
  }
}

@Injectable()
class Checkout {
  constructor(@InjectMetric('orders_checked_out_total') readonly checkedOut: Counter<string>) {}
}

@Controller('checkout')
class CheckoutController {
  constructor(private readonly checkout: Checkout) {}

  @Get()
  run() {
    this.checkout.checkedOut.inc();
    return { ok: true };
  }
}

/** Metric families in an exposition, from its TYPE lines. */
function families(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('# TYPE '))
    .map((line) => line.split(' ')[2]);
}

const OURS = [
  MetricName.HTTP_REQUEST_DURATION_SECONDS,
  MetricName.HTTP_REQUESTS_IN_FLIGHT,
  MetricName.APP_INFO,
  MetricName.LIFECYCLE_STATE,
  MetricName.LIFECYCLE_TRANSITIONS_TOTAL,
  MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS,
  MetricName.METRICS_SERIES_DROPPED_TOTAL,
];

describe('metrics in a registry shared by several applications', () => {
  const open: MetricsTestApp[] = [];
  afterEach(async () => {
    for (const app of open.splice(0)) await app.close();
    register.clear();
  });

  it('lets two applications in one process share prom-client’s global registry, then leaves it as it found it', async () => {
    const userCounter = new Counter({ name: 'user_jobs_total', help: 'Jobs of the application itself.' });
    userCounter.inc(3);
    const first = await bootstrapMetricsApp('express', {
      controllers: [OrdersController],
      metrics: { registry: register },
      lifecycle: { instanceId: 'first' },
    });
    open.push(first);
    const second = await bootstrapMetricsApp('fastify', {
      controllers: [OrdersController],
      metrics: { registry: register },
      lifecycle: { instanceId: 'second' },
    });
    open.push(second);

    await first.request('GET', '/orders/1');
    await second.request('GET', '/orders/2');
    for (const app of [first, second]) {
      const scrape = await app.scrape();
      expect(scrape.status).toBe(200);
      const names = families(scrape.text);
      // Each family once: nothing registered twice, the default metrics included.
      expect(names).toEqual([...new Set(names)]);
      expect(names).toEqual(expect.arrayContaining([...OURS, 'process_cpu_user_seconds_total', 'user_jobs_total']));
      const samples = parseExposition(scrape.text);
      // The HTTP histogram is shared: both applications' requests are in it.
      expect(valueOf(samples, `${MetricName.HTTP_REQUEST_DURATION_SECONDS}_count`, { route: '/orders/:id' })).toBe(2);
      expect(valueOf(samples, 'user_jobs_total')).toBe(3);
      // Per-instance values describe the most recently started application.
      expect(valueOf(samples, MetricName.APP_INFO, { instance_id: 'second' })).toBe(1);
      expect(promtoolCheckMetrics(scrape.text)).toEqual({ status: 0, output: '' });
    }

    await open.pop()!.close();
    const afterSecond = parseExposition((await first.scrape()).text);
    expect(valueOf(afterSecond, MetricName.APP_INFO, { instance_id: 'first' })).toBe(1);
    expect(valueOf(afterSecond, MetricName.APP_INFO, { instance_id: 'second' })).toBeUndefined();

    await open.pop()!.close();
    const left = families(await register.metrics());
    for (const name of OURS) expect(left).not.toContain(name);
    expect(left).toEqual(expect.arrayContaining(['process_cpu_user_seconds_total', 'user_jobs_total']));

    // A new application (hot reload) registers everything again.
    const third = await bootstrapMetricsApp('express', {
      controllers: [OrdersController],
      metrics: { registry: register },
      lifecycle: { instanceId: 'third' },
    });
    open.push(third);
    await third.request('GET', '/orders/3');
    const samples = parseExposition((await third.scrape()).text);
    expect(valueOf(samples, `${MetricName.HTTP_REQUEST_DURATION_SECONDS}_count`, { route: '/orders/:id' })).toBe(1);
  });

  it('serves the metrics the application declares with @willsoto/nestjs-prometheus providers', async () => {
    const app = await bootstrapMetricsApp('fastify', {
      metrics: { registry: register },
      controllers: [CheckoutController],
      providers: [Checkout, makeCounterProvider({ name: 'orders_checked_out_total', help: 'Checkouts.' })],
    });
    open.push(app);
    await app.request('GET', '/checkout');
    await app.request('GET', '/checkout');
    expect(valueOf(parseExposition((await app.scrape()).text), 'orders_checked_out_total')).toBe(2);
  });

  it('registers the default metrics once per registry, with the prefix, without the _total gauges promtool rejects', async () => {
    const registry = new Registry();
    const first = await bootstrapMetricsApp('express', { metrics: { registry, defaultMetricsPrefix: 'orders_' } });
    open.push(first);
    const second = await bootstrapMetricsApp('express', { metrics: { registry, defaultMetricsPrefix: 'orders_' } });
    open.push(second);
    const names = families(await registry.metrics());
    expect(names).toContain('orders_process_cpu_user_seconds_total');
    expect(names).toContain('orders_nodejs_active_handles');
    expect(names).not.toContain('process_cpu_user_seconds_total');
    for (const dropped of DROPPED_DEFAULT_METRICS) expect(names).not.toContain(`orders_${dropped}`);
  });

  it('stops the boot with METRICS_NAME_CONFLICT when the application registered one of its names', async () => {
    const registry = new Registry();
    new Counter({ name: MetricName.HTTP_REQUEST_DURATION_SECONDS, help: 'Not a histogram.', registers: [registry] });
    const compiling = Test.createTestingModule({ imports: [LifecycleModule.forRoot({}), MetricsModule.forRoot({ registry })] }).compile();
    await expect(compiling).rejects.toBeInstanceOf(MetricsConflictError);
    await expect(compiling).rejects.toMatchObject({ code: 'METRICS_NAME_CONFLICT', metric: MetricName.HTTP_REQUEST_DURATION_SECONDS });
    await expect(compiling).rejects.toThrow(/registered by the application or another library.*registry: new Registry\(\)/);
  });

  it('stops the boot when another MetricsModule on the registry records the same metric with other buckets', async () => {
    const registry = new Registry();
    const first = await Test.createTestingModule({
      imports: [LifecycleModule.forRoot({}), MetricsModule.forRoot({ registry, buckets: [0.1, 1] })],
    }).compile();
    try {
      const second = Test.createTestingModule({
        imports: [LifecycleModule.forRoot({}), MetricsModule.forRoot({ registry, buckets: [0.5, 5] })],
      }).compile();
      await expect(second).rejects.toMatchObject({ code: 'METRICS_NAME_CONFLICT', message: expect.stringContaining('buckets [0.1, 1]') });
    } finally {
      await first.close();
    }
  });
});
