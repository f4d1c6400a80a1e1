import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from '@nestjs/common';
import { TypeOrmModule, TypeOrmModuleOptions } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import type { SampleConfig } from '../sample.config';
import { SQLITE_IN_MEMORY } from '../sample.config';
import { SAMPLE_CONFIG } from '../sample.constants';
import { OrderEntity } from './order.entity';

/** Any constant shared by every instance: the key of the advisory lock that serialises schema changes. */
const SCHEMA_LOCK_KEY = 7_270_001;

export function dataSourceOptions(config: SampleConfig): TypeOrmModuleOptions {
  const common = {
    entities: [OrderEntity] as Array<typeof OrderEntity>,
    // The schema is expand/contract, applied by ensureOrdersSchema: blue and green run against one
    // schema, so neither may let TypeORM rewrite it to match its own entities.
    synchronize: false,
    logging: false,
    // A database down at boot fails the start quickly (the orchestrator retries) instead of
    // holding a process that serves nothing for half a minute.
    retryAttempts: 2,
    retryDelay: 1000,
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

/**
 * Creates the orders table if it is missing. Additive only (expand/contract): a running older
 * version keeps working against it. On PostgreSQL an advisory lock keeps instances that start
 * together from racing on CREATE TABLE.
 */
export async function ensureOrdersSchema(dataSource: DataSource): Promise<void> {
  if (dataSource.options.type === 'postgres') {
    await dataSource.transaction(async (manager) => {
      await manager.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
      await manager.query(
        'CREATE TABLE IF NOT EXISTS orders (id SERIAL PRIMARY KEY, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL)',
      );
    });
    return;
  }
  await dataSource.query(
    'CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL)',
  );
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [SAMPLE_CONFIG],
      useFactory: (config: SampleConfig) => dataSourceOptions(config),
    }),
    TypeOrmModule.forFeature([OrderEntity]),
  ],
  exports: [TypeOrmModule],
})
export class DatabaseModule {}
