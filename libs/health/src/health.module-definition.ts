import { ConfigurableModuleBuilder } from '@nestjs/common';
import { createHealthController } from './health.controller';
import type { HealthModuleOptions } from './health.options';
import { DEFAULT_HEALTH_PATH, validateHealthPath } from './health.options';

export const {
  ConfigurableModuleClass: HealthConfigurableModule,
  MODULE_OPTIONS_TOKEN: HEALTH_MODULE_OPTIONS,
  OPTIONS_TYPE: HEALTH_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: HEALTH_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<HealthModuleOptions>({ moduleName: 'Health' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false, path: DEFAULT_HEALTH_PATH }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
    // A controller class per module instance: the path is metadata on the class, and sharing one
    // class between two apps in one process (tests) would let the last forRoot win.
    controllers: [createHealthController(validateHealthPath(extras.path))],
  }))
  .build();
