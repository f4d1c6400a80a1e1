import { DynamicModule, Module } from '@nestjs/common';
import { systemClock } from '@nest-rollout/lifecycle';
import { CANARY_CLOCK, CANARY_OPTIONS } from './canary.constants';
import { CanaryContext } from './canary.context';
import { CanaryInterceptor } from './canary.interceptor';
import { CANARY_MODULE_OPTIONS, CANARY_OPTIONS_TYPE, CanaryConfigurableModule } from './canary.module-definition';
import { CanaryModuleOptions, resolveCanaryOptions } from './canary.options';
import { CanaryService } from './canary.service';

@Module({
  providers: [
    {
      provide: CANARY_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: CanaryModuleOptions) => resolveCanaryOptions(options),
      inject: [CANARY_MODULE_OPTIONS],
    },
    { provide: CANARY_CLOCK, useValue: systemClock },
    CanaryService,
    CanaryContext,
    CanaryInterceptor,
  ],
  exports: [CANARY_OPTIONS, CANARY_CLOCK, CanaryService, CanaryContext, CanaryInterceptor],
})
export class CanaryModule extends CanaryConfigurableModule {
  /** `forRoot()` with no argument means every default (every request stable). */
  static override forRoot(options: typeof CANARY_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
