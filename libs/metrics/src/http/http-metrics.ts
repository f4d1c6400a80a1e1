import type { Server } from 'node:http';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { AbstractHttpAdapter, HttpAdapterHost } from '@nestjs/core';
import { BoundedHistogram } from '../bounded.histogram';
import { METRIC_CATALOGUE } from '../metrics.catalogue';
import { METRICS_OPTIONS, MetricName, MetricsEvent } from '../metrics.constants';
import type { ResolvedMetricsOptions } from '../metrics.options';
import { acquireMetric, releaseMetric } from '../shared-metric';
import { logCapReached } from '../metrics.logging';
import { ExpressMetricsHooks } from './express.hooks';
import { FastifyInstanceLike, FastifyMetricsHooks } from './fastify.hooks';
import type { HttpMetricsHooks } from './http-metrics.hooks';
import { HttpMetricsRecorder } from './http-metrics.recorder';

/**
 * `http_request_duration_seconds`: registers the histogram when the module is created (so a name
 * conflict stops the boot), and instruments the HTTP adapter at bootstrap, after Nest registered
 * the routes and before the server listens.
 */
@Injectable()
export class HttpMetrics implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private readonly histogram: BoundedHistogram | undefined;
  private readonly recorder: HttpMetricsRecorder | undefined;
  private hooks: HttpMetricsHooks | undefined;

  constructor(
    @Inject(METRICS_OPTIONS) private readonly options: ResolvedMetricsOptions,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    if (!options.http) return;
    this.histogram = acquireDurationHistogram(options, MetricName.HTTP_REQUEST_DURATION_SECONDS, this, this.logger);
    this.recorder = new HttpMetricsRecorder(this.histogram, options.excludeRoutes);
  }

  onApplicationBootstrap(): void {
    const recorder = this.recorder;
    // An application context or a pure microservice has no HTTP adapter: nothing to instrument.
    const adapter = this.adapterHost.httpAdapter as AbstractHttpAdapter | undefined;
    if (!recorder || !adapter || this.hooks) return;
    const type = adapter.getType();
    this.hooks = createHooks(type, adapter);
    if (!this.hooks) {
      this.logger.warn({ event: MetricsEvent.HTTP_ADAPTER_UNSUPPORTED, adapter: type, supported: ['express', 'fastify'] });
      return;
    }
    this.hooks.attach(recorder.observe);
    this.logger.log({ event: MetricsEvent.HTTP_INSTRUMENTED, adapter: type, metric: MetricName.HTTP_REQUEST_DURATION_SECONDS });
  }

  onApplicationShutdown(): void {
    this.hooks?.detach();
    if (this.histogram) releaseMetric(this.options.registry, this.histogram, this);
  }
}

function createHooks(type: string, adapter: AbstractHttpAdapter): HttpMetricsHooks | undefined {
  if (type === 'express') return new ExpressMetricsHooks(adapter.getHttpServer() as Server);
  if (type === 'fastify') return new FastifyMetricsHooks(adapter.getInstance<FastifyInstanceLike>());
  return undefined;
}

/** The HTTP or RPC duration histogram of this registry, shared with other MetricsModules that agree on its buckets and cap. */
export function acquireDurationHistogram(
  options: ResolvedMetricsOptions,
  name: typeof MetricName.HTTP_REQUEST_DURATION_SECONDS | typeof MetricName.RPC_SERVER_DURATION_SECONDS,
  owner: object,
  logger: Logger,
): BoundedHistogram {
  const { help, labelNames } = METRIC_CATALOGUE[name];
  const signature = `histogram[${labelNames.join(',')}] buckets [${options.buckets.join(', ')}] max ${options.maxSeriesPerMetric} series`;
  return acquireMetric(
    options.registry,
    name,
    signature,
    owner,
    () =>
      new BoundedHistogram({
        name,
        help,
        labelNames,
        buckets: options.buckets,
        maxSeries: options.maxSeriesPerMetric,
        onCapReached: logCapReached(logger),
      }),
  );
}
