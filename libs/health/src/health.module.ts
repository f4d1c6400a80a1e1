import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { systemClock } from '@nest-rollout/lifecycle';
import { HEALTH_CLOCK, HEALTH_OPTIONS } from './health.constants';
import { HealthMetrics } from './health.metrics';
import { HEALTH_MODULE_OPTIONS, HEALTH_OPTIONS_TYPE, HealthConfigurableModule } from './health.module-definition';
import { HealthModuleOptions, resolveHealthOptions } from './health.options';
import { HealthProbes } from './health.probes';
import { ManagementServer } from './management.server';
import { ReadinessService } from './readiness.service';

@Module({
  // Terminus logs every failing check on every probe; the readiness service logs each change once
  // instead (and a draining instance would otherwise log an error per probe).
  imports: [TerminusModule.forRoot({ logger: false })],
  providers: [
    {
      provide: HEALTH_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: HealthModuleOptions) => resolveHealthOptions(options),
      inject: [HEALTH_MODULE_OPTIONS],
    },
    { provide: HEALTH_CLOCK, useValue: systemClock },
    ReadinessService,
    HealthMetrics,
    HealthProbes,
    ManagementServer,
  ],
  exports: [HEALTH_OPTIONS, ReadinessService, HealthProbes, ManagementServer],
})
export class HealthModule extends HealthConfigurableModule {
  /** `forRoot()` with no argument means every default (Nest's builder requires an object). */
  static override forRoot(options: typeof HEALTH_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
