import type { QueryRunner } from 'typeorm';

/** The database a migration runs on: the SQL differs where SQLite has no ALTER for a change. */
export function isPostgres(queryRunner: QueryRunner): boolean {
  return queryRunner.connection.options.type === 'postgres';
}

/**
 * Recreates `orders` with `definition` and copies every row over: SQLite can add and drop a column
 * but cannot change a column's NOT NULL, so it rebuilds the table as its documentation describes
 * (create, copy, drop, rename), inside the migrations' transaction. The AUTOINCREMENT counter is
 * carried over, so that the id of a deleted order is never handed out again (it is a cache key).
 */
export async function rebuildSqliteOrders(queryRunner: QueryRunner, definition: string, columns: readonly string[]): Promise<void> {
  const list = columns.join(', ');
  await queryRunner.query(`CREATE TABLE orders_rebuild (${definition})`);
  await queryRunner.query(
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'orders_rebuild', seq FROM sqlite_sequence WHERE name = 'orders'",
  );
  await queryRunner.query(`INSERT INTO orders_rebuild (${list}) SELECT ${list} FROM orders`);
  await queryRunner.query('DROP TABLE orders');
  await queryRunner.query('ALTER TABLE orders_rebuild RENAME TO orders');
}

/**
 * These migrations go forward only. Expand/contract never needs a schema rollback: the release
 * before each step runs on the schema that step leaves (that is the point of the pattern), so a
 * bad release is rolled back by deploying the previous one.
 */
export class IrreversibleMigrationError extends Error {
  readonly code = 'SAMPLE_MIGRATION_IRREVERSIBLE';
  constructor(migration: string) {
    super(
      `${migration} is not reverted: the previous release runs on the schema it leaves, so deploy that release instead ` +
        '(docs/migrations.md)',
    );
    this.name = 'IrreversibleMigrationError';
  }
}
