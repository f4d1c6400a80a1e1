export { ConfigError, ConfigSourceError, DynamicConfigOptionsError, EnvValidationError, InvalidConfigError } from './config.errors';
export type { ConfigSourceFailure } from './config.errors';
export type { ConfigSource, ConfigSourceUpdate } from './dynamic/sources/config-source';
export type { ConfigChange, ConfigReloadResult, DynamicConfig } from './dynamic/dynamic-config.types';
