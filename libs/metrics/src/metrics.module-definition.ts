import { ConfigurableModuleBuilder } from '@nestjs/common';
import { METRICS_PATH } from './metrics.constants';
import { createMetricsController } from './metrics.controller';
import type { MetricsModuleOptions } from './metrics.options';
import { DEFAULT_METRICS_PATH, validateMetricsPath } from './metrics.options';

/** Options Nest reads when the module is defined, so they cannot come from forRootAsync's factory. */
export interface MetricsModuleExtras {
  /**
   * Global by default: the other nest-rollout modules look the publisher up with an optional
   * injection, which would silently find nothing in a module that does not import MetricsModule.
   * @default true
   */
  isGlobal?: boolean;
  /**
   * Path of the scrape endpoint on the application's port (the global prefix applies, as to any route).
   * @default 'metrics'
   */
  path?: string;
}

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface MetricsOptionsFactory {
  createMetricsOptions(): MetricsModuleOptions | Promise<MetricsModuleOptions>;
}

export const {
  ConfigurableModuleClass: MetricsConfigurableModule,
  MODULE_OPTIONS_TOKEN: METRICS_MODULE_OPTIONS,
  OPTIONS_TYPE: METRICS_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<MetricsModuleOptions>({ moduleName: 'Metrics' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createMetricsOptions')
  .setExtras<MetricsModuleExtras>({ isGlobal: true, path: DEFAULT_METRICS_PATH }, (definition, extras) => {
    const path = validateMetricsPath(extras.path);
    return {
      ...definition,
      global: extras.isGlobal,
      controllers: [...(definition.controllers ?? []), createMetricsController(path)],
      providers: [...(definition.providers ?? []), { provide: METRICS_PATH, useValue: path }],
    };
  })
  .build();
