import { Body, Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { MetricName, MetricsEvent, OVERFLOW_LABEL_VALUE, UNMATCHED_ROUTE } from '../metrics.constants';
import { MetricsService } from '../metrics.service';
import { Deferred, waitFor } from '../../testing/deferred';
import { ADAPTERS, bootstrapMetricsApp, httpRequest, MetricsTestApp, parseExposition, samplesOf, valueOf } from '../../testing/metrics-app';
import { promtoolCheckMetrics } from '../../testing/promtool';

const DURATION = MetricName.HTTP_REQUEST_DURATION_SECONDS;
const GATE = 'TEST:GATE';

@Controller('orders')
class OrdersController {
  @Get(':id')
  get(@Param('id') id: string) {
    return { id, item: 'book' };
  }

  @Post()
  @HttpCode(201)
  create(@Body() body: { item?: string }) {
    return { id: 'o-1', item: body?.item };
  }
}

@Controller({ path: 'catalog', version: '2' })
class CatalogController {
  @Get('items/:sku')
  item(@Param('sku') sku: string) {
    return { sku };
  }

  @Get('files/*')
  file() {
    return { file: true };
  }
}

@Controller('slow')
class SlowController {
  constructor(@Inject(GATE) private readonly gate: Deferred) {}

  @Get()
  async wait() {
    await this.gate.promise;
    return { done: true };
  }
}

@Controller('health')
class ProbeController {
  @Get('live')
  live() {
    return { status: 'ok' };
  }
}

/** Route labels of the duration histogram, from its `_count` samples. */
function routeLabels(text: string): string[] {
  return [...new Set(samplesOf(parseExposition(text), `${DURATION}_count`).map((s) => s.labels.route))].sort();
}

describe.each(ADAPTERS)('HTTP metrics on %s', (adapter) => {
  let t: MetricsTestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('counts traffic of known shape exactly, labelled by route template, with unknown paths under one label', async () => {
    t = await bootstrapMetricsApp(adapter, { controllers: [OrdersController] });
    for (let id = 1; id <= 7; id++) expect((await t.request('GET', `/orders/${id * 1000 + id}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await t.request('POST', '/orders', { item: 'book' })).status).toBe(201);
    expect((await t.request('GET', '/no/such/path')).status).toBe(404);

    const first = await t.scrape();
    expect(first.status).toBe(200);
    const samples = parseExposition(first.text);
    expect(valueOf(samples, `${DURATION}_count`, { method: 'GET', route: '/orders/:id', status_code: '200' })).toBe(7);
    expect(valueOf(samples, `${DURATION}_count`, { method: 'POST', route: '/orders', status_code: '201' })).toBe(2);
    expect(valueOf(samples, `${DURATION}_count`, { method: 'GET', route: UNMATCHED_ROUTE, status_code: '404' })).toBe(1);
    expect(samplesOf(samples, `${DURATION}_count`).reduce((sum, s) => sum + s.value, 0)).toBe(10);
    // The +Inf bucket holds every observation, and the buckets are cumulative.
    const getBuckets = samplesOf(samples, `${DURATION}_bucket`, { route: '/orders/:id' });
    expect(getBuckets.find((b) => b.labels.le === '+Inf')?.value).toBe(7);
    expect(getBuckets.map((b) => b.value)).toEqual([...getBuckets.map((b) => b.value)].sort((a, b) => a - b));
    expect(valueOf(samples, `${DURATION}_sum`, { route: '/orders/:id' })).toBeGreaterThan(0);
    // No raw URL anywhere, and the scrape is not in its own histogram.
    expect(routeLabels(first.text)).toEqual(['/orders', '/orders/:id', UNMATCHED_ROUTE]);
    expect(first.text).not.toContain('/orders/1001');

    for (const path of ['/a', '/b/c', '/orders/1/extra', '/metrics/x', '/orders?id=../../etc']) {
      await t.request(path.startsWith('/orders?') ? 'DELETE' : 'GET', path);
    }
    const second = await t.scrape();
    expect(routeLabels(second.text)).toEqual(['/orders', '/orders/:id', UNMATCHED_ROUTE]);
    expect(valueOf(parseExposition(second.text), `${DURATION}_count`, { method: 'GET', route: UNMATCHED_ROUTE, status_code: '404' })).toBe(
      5,
    );
  });

  it('serves output that passes promtool check metrics', async () => {
    t = await bootstrapMetricsApp(adapter, { controllers: [OrdersController], metrics: { defaultMetrics: true } });
    await t.request('GET', '/orders/1');
    await t.request('POST', '/orders', { item: 'pen' });
    await t.request('GET', '/unknown');
    const scrape = await t.scrape();
    expect(scrape.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    for (const name of [
      DURATION,
      MetricName.HTTP_REQUESTS_IN_FLIGHT,
      MetricName.APP_INFO,
      MetricName.LIFECYCLE_STATE,
      'process_cpu_user_seconds_total',
    ]) {
      expect(scrape.text).toContain(`# TYPE ${name} `);
    }
    expect(promtoolCheckMetrics(scrape.text)).toEqual({ status: 0, output: '' });
  });

  it('labels routes with the global prefix, the URI version and the wildcard, alike on both adapters', async () => {
    t = await bootstrapMetricsApp(adapter, {
      controllers: [CatalogController, OrdersController],
      globalPrefix: 'api',
      uriVersioning: true,
    });
    expect((await t.request('GET', '/api/v2/catalog/items/sku-1')).status).toBe(200);
    expect((await t.request('GET', '/api/v2/catalog/files/a/b.txt')).status).toBe(200);
    expect((await t.request('GET', '/api/orders/9')).status).toBe(200);
    expect((await t.request('GET', '/api/v3/catalog/items/sku-1')).status).toBe(404);
    const scrape = await t.scrape('/api/metrics');
    expect(scrape.status).toBe(200);
    expect(routeLabels(scrape.text)).toEqual(['/api/orders/:id', '/api/v2/catalog/files/*', '/api/v2/catalog/items/:sku', UNMATCHED_ROUTE]);
  });

  it('keeps the scrape at /metrics when the API has a default version', async () => {
    t = await bootstrapMetricsApp(adapter, { controllers: [OrdersController], uriVersioning: { defaultVersion: '1' } });
    expect((await t.request('GET', '/v1/orders/4')).status).toBe(200);
    const scrape = await t.scrape('/metrics');
    expect(scrape.status).toBe(200);
    expect(routeLabels(scrape.text)).toEqual(['/v1/orders/:id']);
  });

  it('leaves excluded routes out of the histogram', async () => {
    t = await bootstrapMetricsApp(adapter, {
      controllers: [OrdersController, ProbeController],
      metrics: { excludeRoutes: ['/health/live', UNMATCHED_ROUTE] },
    });
    await t.request('GET', '/health/live');
    await t.request('GET', '/nowhere');
    await t.request('GET', '/orders/3');
    expect(routeLabels((await t.scrape()).text)).toEqual(['/orders/:id']);
  });

  it('counts requests in flight, apart from the scrape that reads them', async () => {
    const gate = new Deferred();
    t = await bootstrapMetricsApp(adapter, { controllers: [SlowController], providers: [{ provide: GATE, useValue: gate }] });
    const lifecycle = t.app.get(LifecycleService);
    const slow = t.request('GET', '/slow');
    await waitFor(() => lifecycle.inFlightRequests === 1, 'the slow request to be in flight');
    expect(valueOf(parseExposition((await t.scrape()).text), MetricName.HTTP_REQUESTS_IN_FLIGHT)).toBe(1);
    gate.resolve();
    expect((await slow).status).toBe(200);
    await waitFor(() => lifecycle.inFlightRequests === 0, 'the slow request to end');
    const samples = parseExposition((await t.scrape()).text);
    expect(valueOf(samples, MetricName.HTTP_REQUESTS_IN_FLIGHT)).toBe(0);
    expect(valueOf(samples, `${DURATION}_count`, { route: '/slow' })).toBe(1);
  });

  it('sends label sets beyond maxSeriesPerMetric to one overflow series, counts them as dropped and logs once', async () => {
    t = await bootstrapMetricsApp(adapter, { controllers: [OrdersController, ProbeController], metrics: { maxSeriesPerMetric: 2 } });
    await t.request('GET', '/orders/1');
    await t.request('GET', '/health/live');
    await t.request('POST', '/orders', { item: 'a' });
    await t.request('GET', '/nowhere');
    await t.request('GET', '/nowhere');
    const samples = parseExposition((await t.scrape()).text);
    expect(routeLabels((await t.scrape()).text)).toEqual(['/health/live', '/orders/:id', OVERFLOW_LABEL_VALUE]);
    expect(
      valueOf(samples, `${DURATION}_count`, {
        method: OVERFLOW_LABEL_VALUE,
        route: OVERFLOW_LABEL_VALUE,
        status_code: OVERFLOW_LABEL_VALUE,
      }),
    ).toBe(3);
    expect(valueOf(samples, MetricName.METRICS_SERIES_DROPPED_TOTAL, { metric: DURATION })).toBe(3);
    expect(t.events(MetricsEvent.SERIES_CAP_REACHED)).toEqual([expect.objectContaining({ metric: DURATION, max_series: 2 })]);
  });

  it('answers 404 on the app port when serveOnAppPort is false, while the management route serves the scrape', async () => {
    t = await bootstrapMetricsApp(adapter, { controllers: [OrdersController], metrics: { serveOnAppPort: false } });
    await t.request('GET', '/orders/1');
    expect((await t.scrape()).status).toBe(404);
    const route = t.app.get(MetricsService).managementRoute();
    expect(route).toMatchObject({ method: 'GET', path: '/metrics' });
    const management = createServer((req, res) => void route.handle(req, res));
    await new Promise<void>((resolve) => management.listen(0, '127.0.0.1', resolve));
    try {
      const answer = await httpRequest('GET', `http://127.0.0.1:${(management.address() as AddressInfo).port}/metrics`);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const samples = parseExposition(answer.text);
      expect(valueOf(samples, `${DURATION}_count`, { route: '/orders/:id' })).toBe(1);
      // The 404 of the disabled endpoint went through a matched route: it is counted under its template.
      expect(valueOf(samples, `${DURATION}_count`, { route: '/metrics', status_code: '404' })).toBe(1);
    } finally {
      await new Promise<void>((resolve) => management.close(() => resolve()));
    }
  });

  it('serves the scrape under a custom path', async () => {
    t = await bootstrapMetricsApp(adapter, { extras: { path: 'ops/metrics' } });
    expect((await t.scrape('/metrics')).status).toBe(404);
    const scrape = await t.scrape('/ops/metrics');
    expect(scrape.status).toBe(200);
    // The 404 above is unmatched; the scrape itself is nowhere.
    expect(routeLabels(scrape.text)).toEqual([UNMATCHED_ROUTE]);
  });
});
