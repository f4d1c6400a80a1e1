import { DynamicModule, Module } from '@nestjs/common';
import { HttpMetrics } from './http/http-metrics';
import { InstanceMetrics } from './instance.metrics';
import { systemMetricsClock } from './metrics.clock';
import { METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import { METRICS_CLOCK, METRICS_OPTIONS, METRICS_REGISTRY } from './metrics.constants';
import { METRICS_MODULE_OPTIONS, METRICS_OPTIONS_TYPE, MetricsConfigurableModule } from './metrics.module-definition';
import { MetricsModuleOptions, ResolvedMetricsOptions, resolveMetricsOptions } from './metrics.options';
import { MetricsService } from './metrics.service';
import { RpcMetricsInterceptor } from './rpc-metrics.interceptor';

@Module({
  providers: [
    {
      provide: METRICS_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: MetricsModuleOptions) => resolveMetricsOptions(options),
      inject: [METRICS_MODULE_OPTIONS],
    },
    { provide: METRICS_REGISTRY, useFactory: (options: ResolvedMetricsOptions) => options.registry, inject: [METRICS_OPTIONS] },
    { provide: METRICS_CLOCK, useValue: systemMetricsClock },
    MetricsService,
    { provide: METRICS_PUBLISHER, useExisting: MetricsService },
    InstanceMetrics,
    HttpMetrics,
    RpcMetricsInterceptor,
  ],
  exports: [METRICS_OPTIONS, METRICS_REGISTRY, METRICS_PUBLISHER, MetricsService, RpcMetricsInterceptor],
})
export class MetricsModule extends MetricsConfigurableModule {
  /** `forRoot()` with no argument means every default (Nest's builder requires an object). */
  static override forRoot(options: typeof METRICS_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
