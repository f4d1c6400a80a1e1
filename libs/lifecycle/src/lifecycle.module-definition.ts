import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { LifecycleModuleOptions } from './lifecycle.options';

export const {
  ConfigurableModuleClass: LifecycleConfigurableModule,
  MODULE_OPTIONS_TOKEN: LIFECYCLE_MODULE_OPTIONS,
  OPTIONS_TYPE: LIFECYCLE_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LifecycleModuleOptions>({ moduleName: 'Lifecycle' })
  .setClassMethodName('forRoot')
  // Global by default: every other nest-rollout module injects LifecycleService.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
