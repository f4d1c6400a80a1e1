import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { HEALTH_OPTIONS } from './health.constants';
import { HEALTH_MODULE_OPTIONS, HealthConfigurableModule } from './health.module-definition';
import { HealthModuleOptions, resolveHealthOptions } from './health.options';

@Module({
  // Terminus logs every failing check; a draining instance answers 503 to each readiness probe,
  // so its logger is off and the lifecycle logs the change once instead.
  imports: [TerminusModule.forRoot({ logger: false })],
  providers: [
    {
      provide: HEALTH_OPTIONS,
      useFactory: (options: HealthModuleOptions) => resolveHealthOptions(options),
      inject: [HEALTH_MODULE_OPTIONS],
    },
  ],
  exports: [HEALTH_OPTIONS],
})
export class HealthModule extends HealthConfigurableModule {}
