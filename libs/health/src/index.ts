export { HEALTH_OPTIONS, HealthIndicatorKey } from './health.constants';
export { HealthOptionsError } from './health.errors';
export { HEALTH_MODULE_OPTIONS } from './health.module-definition';
export { HealthModule } from './health.module';
export { DEFAULT_HEALTH_OPTIONS, DEFAULT_HEALTH_PATH, resolveHealthOptions } from './health.options';
export type { HealthModuleOptions, ResolvedHealthOptions } from './health.options';
