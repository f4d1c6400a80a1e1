export { REGISTRY_CLOCK, REGISTRY_OPTIONS, REGISTRY_RANDOM, RegistryEvent, RegistryMetric } from './registry.constants';
export { RegistryClient } from './registry.client';
export {
  RegistryDriverMissingError,
  RegistryError,
  RegistryOptionsError,
  RegistryPermissionError,
  RegistryRequestError,
  RegistryTimeoutError,
} from './registry.errors';
export { REGISTRY_MODULE_OPTIONS } from './registry.module-definition';
export type { RegistryModuleExtras, RegistryOptionsFactory } from './registry.module-definition';
export { RegistryModule } from './registry.module';
export { CONSUL_MIN_DEREGISTER_CRITICAL_MS, DEFAULT_REGISTRY_OPTIONS, resolveRegistryOptions } from './registry.options';
export type {
  ConsulCheckOptions,
  ConsulDriverOptions,
  EtcdDriverOptions,
  RegistryDiscoveryOptions,
  RegistryModuleOptions,
  RegistryRetryOptions,
  RegistryTlsOptions,
  ResolvedConsulCheck,
  ResolvedConsulOptions,
  ResolvedEtcdOptions,
  ResolvedRegistryOptions,
} from './registry.options';
export { RegistryService } from './registry.service';
export { RegistryStats } from './registry.stats';
export type {
  DiscoveryStatus,
  RegistryOperationCount,
  RegistryOperationKind,
  RegistryOperationResult,
  RegistryStatsEvent,
  RegistryStatsSnapshot,
} from './registry.stats';
export { RegistrationState } from './registry.types';
export type {
  InstanceHealth,
  InstanceQuery,
  RegistryDriverKind,
  ReleaseTrack,
  ServiceInstance,
  ServiceInstancesChange,
  ServiceRegistration,
} from './registry.types';
