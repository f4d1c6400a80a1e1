import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type { MetricsPublisher } from '@nest-rollout/lifecycle';
import { Counter, Gauge } from 'prom-client';
import { registerDefaultMetrics } from './default-metrics';
import {
  METRIC_CATALOGUE,
  PUBLISHED_COUNTERS,
  PUBLISHED_GAUGES,
  PublishedCounterName,
  PublishedGaugeName,
  PublishedLabels,
  PublishedMetricName,
} from './metrics.catalogue';
import { METRICS_OPTIONS, METRICS_PATH, MetricName, MetricsEvent, OVERFLOW_LABEL_VALUE } from './metrics.constants';
import { UnknownMetricError } from './metrics.errors';
import { logCapReached } from './metrics.logging';
import type { MetricsRegistry, ResolvedMetricsOptions } from './metrics.options';
import { isSeriesCapped, LabelSetCap, SERIES_DROPPED } from './series-cap';
import { acquireMetric, releaseMetric } from './shared-metric';

/** The scrape: the exposition text and the content type to serve it with. */
export interface MetricsScrape {
  readonly contentType: string;
  readonly body: string;
}

/** One series of an observed gauge, as read at scrape time. */
export interface GaugeReading<N extends PublishedGaugeName> {
  readonly labels: PublishedLabels<N>;
  readonly value: number;
}

type GaugeReader = () => Iterable<{ readonly labels: Readonly<Record<string, string>>; readonly value: number }>;

/**
 * A plain Node route serving the scrape, for a management server (e.g. `ManagementServer.addRoute()`
 * of @nest-rollout/health): framework-free, so it answers the same under either adapter.
 */
export interface MetricsManagementRoute {
  readonly method: 'GET';
  readonly path: string;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

interface PublishedMetric {
  readonly metric: Counter<string> | Gauge<string>;
  readonly labelNames: readonly string[];
  readonly cap: LabelSetCap;
}

const CAP = Symbol.for('@nest-rollout/metrics:label-cap');

/**
 * The module's registry and its scrape, and the publisher other modules write through. Registers
 * the default metrics once per registry and the counter of dropped series; the HTTP, lifecycle and
 * RPC metrics have providers of their own.
 */
@Injectable()
/**
 * The metrics of the catalogue published by the other modules (canary decisions, registry
 * operations, config reloads, readiness changes). It is provided under `METRICS_PUBLISHER`, which
 * they inject with `@Optional()`: each works, unmetered, in an application without MetricsModule.
 * Its methods narrow the publisher's names and labels to the catalogue.
 */
export class MetricsService implements MetricsPublisher, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private readonly published = new Map<PublishedMetricName, PublishedMetric>();
  private readonly acquired: object[] = [];
  private readonly readers = new Map<PublishedGaugeName, Set<GaugeReader>>();
  /** Set by the shutdown: a late publish (e.g. a deregistration in another module's hook) must not re-register a released metric. */
  private closed = false;

  constructor(
    @Inject(METRICS_OPTIONS) private readonly options: ResolvedMetricsOptions,
    @Inject(METRICS_PATH) private readonly path: string,
  ) {
    if (options.defaultMetrics && registerDefaultMetrics(options.registry, options.defaultMetricsPrefix)) {
      this.logger.log({ event: MetricsEvent.DEFAULT_METRICS_REGISTERED, prefix: options.defaultMetricsPrefix });
    }
    const { help, labelNames } = METRIC_CATALOGUE[MetricName.METRICS_SERIES_DROPPED_TOTAL];
    const registry = options.registry;
    this.acquired.push(
      acquireMetric(registry, MetricName.METRICS_SERIES_DROPPED_TOTAL, `counter[${labelNames.join(',')}]`, this as MetricsService, () => {
        return new Counter({
          name: MetricName.METRICS_SERIES_DROPPED_TOTAL,
          help,
          labelNames: [...labelNames],
          registers: [],
          // Read from every capped metric of the registry at scrape time, so the hot path only bumps a number.
          collect(this: Counter<string>) {
            this.reset();
            for (const metric of registry.getMetricsAsArray()) {
              if (isSeriesCapped(metric)) this.inc({ metric: metric.name }, metric[SERIES_DROPPED]());
            }
          },
        });
      }),
    );
  }

  /** The registry this module registers into and serves. */
  get registry(): MetricsRegistry {
    return this.options.registry;
  }

  /** Renders the registry: the seam for serving it anywhere (the app port, a management port, a push). */
  async metrics(): Promise<MetricsScrape> {
    const registry = this.options.registry;
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  /** The scrape as a plain Node route, at `/<path extra>` unless told otherwise. */
  managementRoute(path = `/${this.path}`): MetricsManagementRoute {
    return {
      method: 'GET',
      path,
      handle: async (req, res) => {
        const { contentType, body } = await this.metrics();
        res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
    };
  }

  increment<N extends PublishedCounterName>(name: N, labels: PublishedLabels<N>, value = 1): void {
    if (this.closed) return;
    const { metric, labelValues } = this.resolve(name, labels, 'counter', PUBLISHED_COUNTERS);
    (metric as Counter<string>).inc(labelValues, value);
  }

  set<N extends PublishedGaugeName>(name: N, labels: PublishedLabels<N>, value: number): void {
    if (this.closed) return;
    const { metric, labelValues } = this.resolve(name, labels, 'gauge', PUBLISHED_GAUGES);
    (metric as Gauge<string>).set(labelValues, value);
  }

  observe<N extends PublishedGaugeName>(name: N, read: () => Iterable<GaugeReading<N>>): () => void {
    if (this.closed) return () => undefined;
    if (!this.published.has(name)) this.register(name, 'gauge', PUBLISHED_GAUGES);
    const readers = this.readers.get(name) ?? new Set<GaugeReader>();
    this.readers.set(name, readers);
    const reader = read as GaugeReader;
    readers.add(reader);
    return () => readers.delete(reader);
  }

  onApplicationShutdown(): void {
    this.closed = true;
    this.readers.clear();
    for (const metric of this.acquired) releaseMetric(this.options.registry, metric, this);
    this.acquired.length = 0;
    this.published.clear();
  }

  /** @internal Writes this application's readings of an observed gauge; called by the gauge at scrape. */
  readGauge(name: PublishedGaugeName, gauge: Gauge<string>): void {
    const published = this.published.get(name);
    if (!published) return;
    for (const read of this.readers.get(name) ?? []) {
      try {
        for (const { labels, value } of read()) gauge.set(this.labelValues(published, labels), value);
      } catch (error) {
        // A failing reader costs its own series, never the scrape.
        this.logger.warn({ event: MetricsEvent.GAUGE_READ_FAILED, metric: name, error: String(error) });
      }
    }
  }

  /** @internal Whether this application observes the gauge (rather than setting it). */
  observes(name: PublishedGaugeName): boolean {
    return (this.readers.get(name)?.size ?? 0) > 0;
  }

  private resolve(
    name: PublishedMetricName,
    labels: Readonly<Record<string, string>>,
    kind: 'counter' | 'gauge',
    allowed: readonly PublishedMetricName[],
  ): { metric: Counter<string> | Gauge<string>; labelValues: Record<string, string> } {
    const published = this.published.get(name) ?? this.register(name, kind, allowed);
    return { metric: published.metric, labelValues: this.labelValues(published, labels) };
  }

  private labelValues(published: PublishedMetric, labels: Readonly<Record<string, string>>): Record<string, string> {
    const values = published.labelNames.map((label) => String(labels?.[label] ?? ''));
    const admitted = published.cap.admit(values);
    const labelValues: Record<string, string> = {};
    published.labelNames.forEach((label, i) => (labelValues[label] = admitted ? values[i] : OVERFLOW_LABEL_VALUE));
    return labelValues;
  }

  /** Published metrics are registered on first use, so that an application without a canary shows no canary metric. */
  private register(name: PublishedMetricName, kind: 'counter' | 'gauge', allowed: readonly PublishedMetricName[]): PublishedMetric {
    if (!allowed.includes(name)) throw new UnknownMetricError(String(name), kind);
    const { help, labelNames } = METRIC_CATALOGUE[name];
    const signature = `${kind}[${labelNames.join(',')}] max ${this.options.maxSeriesPerMetric} series`;
    const metric = acquireMetric(this.options.registry, name, signature, this as MetricsService, (owners) => {
      const config = { name, help, labelNames: [...labelNames], registers: [] };
      const created =
        kind === 'counter'
          ? new Counter(config)
          : new Gauge({
              ...config,
              // Observed gauges are read from every application sharing them; set ones are left as they are.
              collect(this: Gauge<string>) {
                const observing = [...owners].filter((owner) => owner.observes(name as PublishedGaugeName));
                if (observing.length === 0) return;
                this.reset();
                for (const owner of observing) owner.readGauge(name as PublishedGaugeName, this);
              },
            });
      // The cap travels with the metric, so that applications sharing it share one count of series.
      const cap = new LabelSetCap(name, this.options.maxSeriesPerMetric, logCapReached(this.logger));
      Object.defineProperty(created, CAP, { value: cap });
      Object.defineProperty(created, SERIES_DROPPED, { value: () => cap.dropped });
      return created;
    });
    this.acquired.push(metric);
    const published: PublishedMetric = { metric, labelNames, cap: (metric as unknown as Record<typeof CAP, LabelSetCap>)[CAP] };
    this.published.set(name, published);
    return published;
  }
}
