import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DynamicConfigModuleOptions } from './dynamic-config.options';

/** Options Nest reads when the module is defined, so they cannot come from forRootAsync's factory. */
export interface DynamicConfigModuleExtras {
  /**
   * Make DynamicConfigService injectable everywhere: degrade switches and rate limits are read
   * far from the module that imports the configuration.
   * @default true
   */
  isGlobal?: boolean;
}

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface DynamicConfigOptionsFactory {
  createDynamicConfigOptions(): DynamicConfigModuleOptions | Promise<DynamicConfigModuleOptions>;
}

export const {
  ConfigurableModuleClass: DynamicConfigConfigurableModule,
  MODULE_OPTIONS_TOKEN: DYNAMIC_CONFIG_MODULE_OPTIONS,
  OPTIONS_TYPE: DYNAMIC_CONFIG_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DynamicConfigModuleOptions>({ moduleName: 'DynamicConfig' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createDynamicConfigOptions')
  .setExtras<DynamicConfigModuleExtras>({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
