export { METRIC_CATALOGUE } from './metrics.catalogue';
export type {
  MetricDefinition,
  MetricKind,
  PublishedCounterName,
  PublishedGaugeName,
  PublishedLabels,
  PublishedMetricName,
} from './metrics.catalogue';
export type { MetricsClock } from './metrics.clock';
export {
  DEFAULT_DURATION_BUCKETS,
  METRICS_CLOCK,
  METRICS_OPTIONS,
  METRICS_REGISTRY,
  MetricName,
  MetricsEvent,
  OVERFLOW_LABEL_VALUE,
  UNMATCHED_ROUTE,
} from './metrics.constants';
export { MetricsConflictError, MetricsError, MetricsOptionsError, UnknownMetricError } from './metrics.errors';
export { METRICS_MODULE_OPTIONS } from './metrics.module-definition';
export type { MetricsModuleExtras, MetricsOptionsFactory } from './metrics.module-definition';
export { MetricsModule } from './metrics.module';
export { DEFAULT_METRICS_OPTIONS, DEFAULT_METRICS_PATH, resolveMetricsOptions } from './metrics.options';
export type { MetricsModuleOptions, MetricsRegistry, ResolvedMetricsOptions } from './metrics.options';
export { MetricsService } from './metrics.service';
export type { GaugeReading, MetricsManagementRoute, MetricsScrape } from './metrics.service';
// The publisher's token and interface live in @nest-rollout/lifecycle, which every lib depends on.
export { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
export type { MetricsPublisher } from '@nest-rollout/lifecycle';
export { connectMicroserviceWithMetrics } from './rpc-metrics.connect';
export { RpcMetricsInterceptor } from './rpc-metrics.interceptor';
// Declaring the application's own metrics the Nest way: they land in prom-client's global
// registry, which MetricsModule serves by default.
export {
  InjectMetric,
  makeCounterProvider,
  makeGaugeProvider,
  makeHistogramProvider,
  makeSummaryProvider,
} from '@willsoto/nestjs-prometheus';
