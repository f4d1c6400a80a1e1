import type { DataSource } from 'typeorm';

/** Any constant shared by every instance: the key of the advisory lock that serialises schema changes. */
const SCHEMA_LOCK_KEY = 7_270_001;

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
