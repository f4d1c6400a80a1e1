import { DynamicModule, Module } from '@nestjs/common';
import { LifecycleClock, systemClock } from '@nest-rollout/lifecycle';
import { createRegistryDriver } from './drivers/create-driver';
import { REGISTRY_CLOCK, REGISTRY_DRIVER, REGISTRY_OPTIONS, REGISTRY_RANDOM } from './registry.constants';
import { RegistryClient } from './registry.client';
import { REGISTRY_MODULE_OPTIONS, REGISTRY_OPTIONS_TYPE, RegistryConfigurableModule } from './registry.module-definition';
import { RegistryModuleOptions, ResolvedRegistryOptions, resolveRegistryOptions } from './registry.options';
import { RegistryService } from './registry.service';
import { RegistryMetrics } from './registry.metrics';
import { RegistryStats } from './registry.stats';

@Module({
  providers: [
    {
      provide: REGISTRY_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: RegistryModuleOptions) => resolveRegistryOptions(options),
      inject: [REGISTRY_MODULE_OPTIONS],
    },
    { provide: REGISTRY_CLOCK, useValue: systemClock },
    { provide: REGISTRY_RANDOM, useValue: Math.random },
    {
      provide: REGISTRY_DRIVER,
      // Built at boot, so that a missing driver package fails the start with the fix in the message.
      useFactory: (options: ResolvedRegistryOptions, clock: LifecycleClock) => createRegistryDriver(options, clock),
      inject: [REGISTRY_OPTIONS, REGISTRY_CLOCK],
    },
    RegistryStats,
    RegistryService,
    RegistryClient,
    RegistryMetrics,
  ],
  exports: [REGISTRY_OPTIONS, RegistryService, RegistryClient, RegistryStats],
})
export class RegistryModule extends RegistryConfigurableModule {
  /** `forRoot()` with no argument means every default (driver `none`). */
  static override forRoot(options: typeof REGISTRY_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
