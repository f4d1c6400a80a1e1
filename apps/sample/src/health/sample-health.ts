import { HealthCheckDefinition, HealthModuleOptions, redisCheck, typeOrmCheck, urlSecrets } from '@nest-rollout/health';
import type { DataSource } from 'typeorm';
import type { Redis } from 'ioredis';
import type { SampleConfig } from '../sample.config';

/**
 * The sample's readiness: the database it keeps orders in, and Redis when it has one — both
 * through the clients the orders use, so a probe never costs a connection. Redis is critical here:
 * an instance whose cache hangs answers every cached read half a second late.
 */
export function sampleHealthOptions(config: SampleConfig, dataSource: DataSource, redis: Redis | null): HealthModuleOptions {
  const readiness: HealthCheckDefinition[] = [typeOrmCheck('database', { dataSource, dependency: config.database.kind })];
  if (redis) readiness.push(redisCheck('cache', { client: redis }));
  return {
    readiness,
    intervalMs: config.health.intervalMs,
    timeoutMs: config.health.timeoutMs,
    failureThreshold: config.health.failureThreshold,
    successThreshold: config.health.successThreshold,
    management: config.managementPort === undefined ? undefined : { port: config.managementPort, host: config.host },
    redact: [...urlSecrets(config.database.kind === 'postgres' ? config.database.url : undefined), ...urlSecrets(config.redisUrl)],
  };
}
