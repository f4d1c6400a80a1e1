import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { LoggingModuleOptions } from './logging.options';

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface LoggingOptionsFactory {
  createLoggingOptions(): LoggingModuleOptions | Promise<LoggingModuleOptions>;
}

export const {
  ConfigurableModuleClass: LoggingConfigurableModule,
  MODULE_OPTIONS_TOKEN: LOGGING_MODULE_OPTIONS,
  OPTIONS_TYPE: LOGGING_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LoggingModuleOptions>({ moduleName: 'Logging' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createLoggingOptions')
  // Global by default: handlers and other nest-rollout modules inject TraceContext and the Logger.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
