import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from '@nestjs/common';
import { TypeOrmModule, TypeOrmModuleOptions } from '@nestjs/typeorm';
import { systemClock } from '@nest-rollout/lifecycle';
import { sampleConfig, type SampleConfig, SQLITE_IN_MEMORY } from '../sample.config';
import { DATABASE_CLOCK, DATABASE_MIGRATOR, DatabaseConnector } from './database.connector';
import { DatabaseAvailabilityInterceptor } from './database-availability.interceptor';
import { runOrdersMigrations } from './orders-migrations';
import { ORDERS_SCHEMA, ordersSchema } from './orders-schema';
import { TypeOrmLogger } from './typeorm.logger';

export function dataSourceOptions(config: SampleConfig): TypeOrmModuleOptions {
  const schema = ordersSchema(config.ordersSchemaPhase);
  const common = {
    // The orders table as this release of the schema change maps it (ORDERS_SCHEMA_PHASE).
    entities: [schema.entity],
    // Its migrations, up to this release's: DatabaseConnector runs the pending ones at start-up,
    // under a lock (runOrdersMigrations), and `migrate.js` runs them as a job.
    migrations: [...schema.migrations],
    migrationsRun: false,
    // The schema changes expand/contract, by migrations: blue and green run against one schema, so
    // neither may let TypeORM rewrite it to match its own entities.
    synchronize: false,
    // Never connected at boot, where TypeORM's own retries would end the process: DatabaseConnector
    // connects as a warm-up task, once the server answers the liveness probe.
    manualInitialization: true,
    // TypeORM's warnings and slow queries as JSON lines (queries and their errors are not logged).
    logger: new TypeOrmLogger(['warn', 'migration']),
  };
  if (config.database.kind === 'postgres') {
    return {
      ...common,
      type: 'postgres',
      url: config.database.url,
      applicationName: 'nest-rollout-sample',
      connectTimeoutMS: 3000,
      // The pool the orders and the readiness check share; the check borrows one connection per run.
      extra: { max: 10, idleTimeoutMillis: 30_000 },
    };
  }
  const file = config.database.file;
  if (file !== SQLITE_IN_MEMORY) mkdirSync(dirname(file), { recursive: true });
  return {
    ...common,
    type: 'better-sqlite3',
    database: file,
    // Several instances may share one file on a host (a blue-green pair): WAL lets readers and a
    // writer work side by side, and a writer waits for the lock instead of failing at once.
    timeout: 5000,
    prepareDatabase: (db: { pragma(source: string): unknown }) => {
      if (file !== SQLITE_IN_MEMORY) db.pragma('journal_mode = WAL');
    },
  };
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [sampleConfig.KEY],
      useFactory: (config: SampleConfig) => dataSourceOptions(config),
    }),
  ],
  providers: [
    { provide: DATABASE_CLOCK, useValue: systemClock },
    { provide: DATABASE_MIGRATOR, useValue: runOrdersMigrations },
    { provide: ORDERS_SCHEMA, inject: [sampleConfig.KEY], useFactory: (config: SampleConfig) => ordersSchema(config.ordersSchemaPhase) },
    DatabaseConnector,
    DatabaseAvailabilityInterceptor,
  ],
  exports: [TypeOrmModule, ORDERS_SCHEMA, DatabaseConnector, DatabaseAvailabilityInterceptor],
})
export class DatabaseModule {}
