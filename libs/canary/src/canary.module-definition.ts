import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { CanaryModuleOptions } from './canary.options';

/** Options Nest reads when the module is defined, so they cannot come from forRootAsync's factory. */
export interface CanaryModuleExtras {
  /**
   * Make CanaryService, CanaryContext and the interceptor `@Canary()` attaches resolvable in every
   * module. Without it, import CanaryModule in each module whose controllers use `@Canary()`.
   * @default true
   */
  isGlobal?: boolean;
}

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface CanaryOptionsFactory {
  createCanaryOptions(): CanaryModuleOptions | Promise<CanaryModuleOptions>;
}

export const {
  ConfigurableModuleClass: CanaryConfigurableModule,
  MODULE_OPTIONS_TOKEN: CANARY_MODULE_OPTIONS,
  OPTIONS_TYPE: CANARY_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<CanaryModuleOptions>({ moduleName: 'Canary' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createCanaryOptions')
  .setExtras<CanaryModuleExtras>({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
