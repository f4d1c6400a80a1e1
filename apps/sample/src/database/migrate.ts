import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { redactSecrets, urlSecrets } from '@nest-rollout/health';
import { describeError } from '@nest-rollout/lifecycle';
import { AppLogger } from '@nest-rollout/logging';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { sampleConfig, type SampleConfig, SQLITE_IN_MEMORY } from '../sample.config';
import { SampleEvent } from '../sample.constants';
import { dataSourceOptions } from './database.module';
import { runOrdersMigrations } from './orders-migrations';

/**
 * The migrations as a job: `node dist/apps/sample/database/migrate.js`, with the instances' own
 * DATABASE_URL and ORDERS_SCHEMA_PHASE, runs what that release needs and exits (0, or 1 with the
 * reason). Run it before a release rolls out (a Kubernetes Job, an Argo Rollouts PreSync hook)
 * when a migration may take longer than start-up should, e.g. a backfill of a large table; the
 * instances then find nothing left to migrate. Migrating at start-up needs no job: both take the
 * same lock, so they never run a migration twice.
 */
async function migrate(): Promise<number> {
  let config: SampleConfig;
  let logger: AppLogger;
  try {
    config = sampleConfig.parse();
    logger = new AppLogger({ level: config.logLevel, pretty: config.logPretty });
  } catch (error) {
    return fail(new AppLogger(), error, []);
  }
  // TypeORM's own warnings go through Nest's logger (TypeOrmLogger): JSON lines like the service's.
  Logger.overrideLogger(logger);
  const database = config.database;
  const secrets = urlSecrets(database.kind === 'postgres' ? database.url : undefined);
  if (database.kind === 'sqlite' && database.file === SQLITE_IN_MEMORY) {
    return fail(
      logger,
      new Error('DATABASE_URL is unset: an in-memory SQLite lives in each instance, which migrates its own at start-up'),
      [],
    );
  }
  const dataSource = new DataSource(dataSourceOptions(config) as DataSourceOptions);
  try {
    await dataSource.initialize();
    const migrations = await runOrdersMigrations(dataSource);
    logger.log(
      { event: SampleEvent.DATABASE_MIGRATED, dependency: database.kind, schema_phase: config.ordersSchemaPhase, migrations },
      'Migrations',
    );
    return 0;
  } catch (error) {
    return fail(logger, error, secrets);
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy().catch(() => undefined);
  }
}

/** One JSON line, one plain message on standard error, exit code 1; the connection string's password masked. */
function fail(logger: AppLogger, error: unknown, secrets: readonly string[]): number {
  const { message, code } = describeError(error);
  const masked = redactSecrets(message, secrets);
  logger.error(
    { event: SampleEvent.DATABASE_MIGRATION_FAILED, error: { message: masked, ...(code === undefined ? {} : { code }) } },
    'Migrations',
  );
  process.stderr.write(`Migration failed: ${masked}\n`);
  return 1;
}

void migrate().then((code) => {
  process.exitCode = code;
});
