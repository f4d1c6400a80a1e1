import { type DataSource, MigrationExecutor } from 'typeorm';

/**
 * The key of the advisory lock that serialises schema changes across instances: any constant all
 * of them share (the same one the sample's builds before migrations took around CREATE TABLE).
 */
export const SCHEMA_LOCK_KEY = 7_270_001;

/**
 * How long a schema change waits for a table lock on PostgreSQL (and for the advisory lock held
 * by another instance that migrates). ALTER TABLE queues behind any running transaction on the
 * table, and every query after it queues behind the ALTER: an unbounded wait would stall the
 * instances serving. Past it the attempt fails and start-up retries it with backoff.
 */
export const MIGRATION_LOCK_TIMEOUT_MS = 5000;

/**
 * Runs the migrations of the DataSource's options that the database has not run yet, one instance
 * at a time, and returns their names. PostgreSQL: under an advisory lock, each migration in its own
 * transaction unless it opts out (a batched backfill). SQLite: in one write transaction taken at
 * once (BEGIN IMMEDIATE), so that instances sharing a file wait for each other (up to the busy
 * timeout) instead of running the same migration twice.
 */
export async function runOrdersMigrations(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  const executor = new MigrationExecutor(dataSource, runner);
  try {
    if (dataSource.options.type === 'postgres') {
      await runner.query(`SET lock_timeout = ${MIGRATION_LOCK_TIMEOUT_MS}`);
      await runner.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK_KEY]);
      try {
        executor.transaction = 'each';
        return (await executor.executePendingMigrations()).map((m) => m.name);
      } finally {
        // The connection goes back to the pool: it must not keep the lock or the timeout. A
        // connection that failed has lost its session, and the lock and the setting with it.
        await runner.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK_KEY]).catch(() => undefined);
        await runner.query('RESET lock_timeout').catch(() => undefined);
      }
    }
    executor.transaction = 'none';
    await runner.query('BEGIN IMMEDIATE');
    try {
      const applied = (await executor.executePendingMigrations()).map((m) => m.name);
      await runner.query('COMMIT');
      return applied;
    } catch (error) {
      await runner.query('ROLLBACK');
      throw error;
    }
  } finally {
    await runner.release();
  }
}
