import { DynamicModule, Module } from '@nestjs/common';
import { LIFECYCLE_PROCESS, systemClock, systemProcess } from '@nest-rollout/lifecycle';
import { DYNAMIC_CONFIG_CLOCK, DYNAMIC_CONFIG_OPTIONS, DYNAMIC_CONFIG_SOURCES } from '../config.constants';
import { DynamicConfigMetrics } from './dynamic-config.metrics';
import {
  DYNAMIC_CONFIG_MODULE_OPTIONS,
  DYNAMIC_CONFIG_OPTIONS_TYPE,
  DynamicConfigConfigurableModule,
} from './dynamic-config.module-definition';
import { DynamicConfigModuleOptions, ResolvedDynamicConfigOptions, resolveDynamicConfigOptions } from './dynamic-config.options';
import { DynamicConfigService } from './dynamic-config.service';
import { fileSource } from './sources/file.source';
import type { ConfigSource } from './sources/config-source';

@Module({
  providers: [
    {
      provide: DYNAMIC_CONFIG_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: DynamicConfigModuleOptions) => resolveDynamicConfigOptions(options),
      inject: [DYNAMIC_CONFIG_MODULE_OPTIONS],
    },
    {
      provide: DYNAMIC_CONFIG_SOURCES,
      useFactory: (options: ResolvedDynamicConfigOptions): readonly ConfigSource[] =>
        options.file === undefined ? options.sources : [fileSource(options.file), ...options.sources],
      inject: [DYNAMIC_CONFIG_OPTIONS],
    },
    { provide: DYNAMIC_CONFIG_CLOCK, useValue: systemClock },
    // The lifecycle's process facade, here too, so that the module also works without LifecycleModule;
    // unit specs override the token with a fake process whose signals they emit.
    { provide: LIFECYCLE_PROCESS, useValue: systemProcess },
    DynamicConfigMetrics,
    DynamicConfigService,
  ],
  exports: [DYNAMIC_CONFIG_OPTIONS, DynamicConfigService],
})
export class DynamicConfigModule extends DynamicConfigConfigurableModule {
  /** `schema` and a `file` or `sources` are required; the rest have defaults. */
  static override forRoot(options: typeof DYNAMIC_CONFIG_OPTIONS_TYPE): DynamicModule {
    return super.forRoot(options);
  }
}
