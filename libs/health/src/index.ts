export { GrpcServingStatus, HEALTH_GRPC_PROTO_PATH } from './grpc/health.grpc-controller';
export type { GrpcHealthCheckRequest, GrpcHealthCheckResponse } from './grpc/health.grpc-controller';
export type {
  HealthCheckContext,
  HealthCheckDefinition,
  HealthCheckDetails,
  HealthCheckReport,
  ReadinessChange,
  ResolvedHealthCheck,
} from './health.check';
export {
  HEALTH_CLOCK,
  HEALTH_GRPC_PACKAGE,
  HEALTH_GRPC_SERVICE,
  HEALTH_OPTIONS,
  HealthEvent,
  HealthFailureKind,
  HealthIndicatorKey,
} from './health.constants';
export { HealthCheckError, HealthError, HealthOptionsError, ManagementServerError } from './health.errors';
export { HEALTH_READINESS_CHANGES_TOTAL } from './health.metrics';
export { HEALTH_MODULE_OPTIONS } from './health.module-definition';
export type { HealthModuleExtras, HealthOptionsFactory } from './health.module-definition';
export { HealthModule } from './health.module';
export { DEFAULT_HEALTH_OPTIONS, DEFAULT_HEALTH_PATH, resolveHealthOptions } from './health.options';
export type {
  HealthManagementOptions,
  HealthModuleOptions,
  ManagementRoute,
  ResolvedHealthOptions,
  ResolvedManagementOptions,
} from './health.options';
export { HealthProbes } from './health.probes';
export type { HealthProbeName, HealthProbeResponse } from './health.probes';
export { redactSecrets, urlSecrets } from './health.redaction';
export { customCheck } from './indicators/custom.indicator';
export { postgresCheck, typeOrmCheck } from './indicators/database.indicator';
export type {
  PgPoolClientLike,
  PgPoolLike,
  PostgresCheckOptions,
  TypeOrmCheckOptions,
  TypeOrmDataSourceLike,
} from './indicators/database.indicator';
export { grpcCheck } from './indicators/grpc.indicator';
export type { GrpcCheckOptions } from './indicators/grpc.indicator';
export { httpCheck } from './indicators/http.indicator';
export type { HttpCheckOptions } from './indicators/http.indicator';
export type { CheckOptions, ClientRef } from './indicators/indicator.utils';
export { redisCheck } from './indicators/redis.indicator';
export type { RedisCheckOptions, RedisClientLike } from './indicators/redis.indicator';
export { diskCheck, memoryCheck } from './indicators/system.indicator';
export type { DiskCheckOptions, MemoryCheckOptions } from './indicators/system.indicator';
export { ManagementServer } from './management.server';
export { ReadinessService } from './readiness.service';
export type { ReadinessSnapshot } from './readiness.service';
