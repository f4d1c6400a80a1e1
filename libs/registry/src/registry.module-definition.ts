import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { RegistryModuleOptions } from './registry.options';

/** Options Nest reads when the module is defined, so they cannot come from forRootAsync's factory. */
export interface RegistryModuleExtras {
  /**
   * Make RegistryClient injectable everywhere (the canary module looks instances up through it).
   * @default true
   */
  isGlobal?: boolean;
}

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface RegistryOptionsFactory {
  createRegistryOptions(): RegistryModuleOptions | Promise<RegistryModuleOptions>;
}

export const {
  ConfigurableModuleClass: RegistryConfigurableModule,
  MODULE_OPTIONS_TOKEN: REGISTRY_MODULE_OPTIONS,
  OPTIONS_TYPE: REGISTRY_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<RegistryModuleOptions>({ moduleName: 'Registry' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createRegistryOptions')
  .setExtras<RegistryModuleExtras>({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
