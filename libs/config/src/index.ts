export {
  DYNAMIC_CONFIG_CLOCK,
  DYNAMIC_CONFIG_OPTIONS,
  DynamicConfigEvent,
  DynamicConfigMetric,
  RELOAD_SOURCE,
  SECRET_MASK,
} from './config.constants';
export type { ConfigReloadOutcome } from './config.constants';
export {
  ConfigError,
  ConfigSourceError,
  DynamicConfigNotLoadedError,
  DynamicConfigOptionsError,
  EnvValidationError,
  InvalidConfigError,
} from './config.errors';
export type { ConfigSourceFailure } from './config.errors';
export type { ConfigSource, ConfigSourceUpdate } from './dynamic/sources/config-source';
export { consulKvSource } from './dynamic/sources/consul-kv.source';
export type { ConsulKvClient, ConsulKvGetOptions, ConsulKvSourceOptions } from './dynamic/sources/consul-kv.source';
export { etcdSource } from './dynamic/sources/etcd.source';
export type { EtcdSourceClient, EtcdSourceOptions } from './dynamic/sources/etcd.source';
export { fileSource } from './dynamic/sources/file.source';
export type { FileSourceOptions } from './dynamic/sources/file.source';
export type { ConfigChange, ConfigReloadResult, DynamicConfig } from './dynamic/dynamic-config.types';
export { DYNAMIC_CONFIG_MODULE_OPTIONS } from './dynamic/dynamic-config.module-definition';
export type { DynamicConfigModuleExtras, DynamicConfigOptionsFactory } from './dynamic/dynamic-config.module-definition';
export { DynamicConfigModule } from './dynamic/dynamic-config.module';
export { DEFAULT_DYNAMIC_CONFIG_OPTIONS, resolveDynamicConfigOptions } from './dynamic/dynamic-config.options';
export type { ConfigReloadSignal, DynamicConfigModuleOptions, ResolvedDynamicConfigOptions } from './dynamic/dynamic-config.options';
export { DynamicConfigService } from './dynamic/dynamic-config.service';
export { EnvConfigError, envConfig } from './env/env-config';
export type { EnvConfig, EnvConfigOptions, EnvInput, EnvSchema, EnvVariableOf } from './env/env-config';
