import { DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { LIFECYCLE_CLOCK, LIFECYCLE_OPTIONS, LIFECYCLE_PROCESS } from './lifecycle.constants';
import { LIFECYCLE_MODULE_OPTIONS, LIFECYCLE_OPTIONS_TYPE, LifecycleConfigurableModule } from './lifecycle.module-definition';
import { LifecycleModuleOptions, resolveLifecycleOptions } from './lifecycle.options';
import { systemClock, systemProcess } from './lifecycle.runtime';
import { LifecycleService } from './lifecycle.service';

@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: LIFECYCLE_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: LifecycleModuleOptions) => resolveLifecycleOptions(options),
      inject: [LIFECYCLE_MODULE_OPTIONS],
    },
    { provide: LIFECYCLE_CLOCK, useValue: systemClock },
    { provide: LIFECYCLE_PROCESS, useValue: systemProcess },
    LifecycleService,
  ],
  exports: [LifecycleService, LIFECYCLE_OPTIONS],
})
export class LifecycleModule extends LifecycleConfigurableModule {
  /** `forRoot()` with no argument means all defaults (the generated method needs an object). */
  static override forRoot(options: typeof LIFECYCLE_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
