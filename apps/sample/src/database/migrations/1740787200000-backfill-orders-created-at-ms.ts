import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IrreversibleMigrationError, isPostgres, rebuildSqliteOrders } from './orders-table';

/** Rows updated per statement on PostgreSQL: each batch commits on its own and holds its row locks briefly. */
export const BACKFILL_BATCH_ROWS = 1000;

/**
 * migrate: fills created_at_ms for the rows written before `expand` (and by `before` instances
 * while `expand` rolled out), then makes it NOT NULL. Safe while `expand` instances still run: they
 * write both columns on every row. Idempotent (only NULLs are filled), so a run cut short is
 * simply run again.
 */
export class BackfillOrdersCreatedAtMs1740787200000 implements MigrationInterface {
  readonly name = 'BackfillOrdersCreatedAtMs1740787200000';
  /**
   * Outside one transaction on PostgreSQL: the backfill commits batch by batch instead of locking
   * every row until the end, and the constraint is validated without blocking writes (below).
   */
  readonly transaction = false;

  async up(queryRunner: QueryRunner): Promise<void> {
    if (isPostgres(queryRunner)) return this.upPostgres(queryRunner);
    // One UPDATE: SQLite runs every migration in one write transaction anyway.
    await queryRunner.query(
      "UPDATE orders SET created_at_ms = CAST(ROUND(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) WHERE created_at_ms IS NULL",
    );
    await rebuildSqliteOrders(
      queryRunner,
      'id INTEGER PRIMARY KEY AUTOINCREMENT, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL, created_at_ms BIGINT NOT NULL',
      ['id', 'item', 'quantity', 'created_at', 'created_at_ms'],
    );
  }

  private async upPostgres(queryRunner: QueryRunner): Promise<void> {
    for (;;) {
      const { affected } = await queryRunner.query(
        'UPDATE orders SET created_at_ms = (EXTRACT(EPOCH FROM created_at::timestamptz) * 1000)::bigint ' +
          'WHERE id IN (SELECT id FROM orders WHERE created_at_ms IS NULL ORDER BY id LIMIT $1)',
        [BACKFILL_BATCH_ROWS],
        true,
      );
      if (!affected) break;
    }
    // SET NOT NULL alone scans the table under an exclusive lock, blocking every read and write
    // meanwhile. A NOT VALID check is added at once, validated while writes go on, and then lets
    // SET NOT NULL skip the scan (PostgreSQL 12 and later).
    await queryRunner.query('ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_created_at_ms_not_null');
    await queryRunner.query('ALTER TABLE orders ADD CONSTRAINT orders_created_at_ms_not_null CHECK (created_at_ms IS NOT NULL) NOT VALID');
    await queryRunner.query('ALTER TABLE orders VALIDATE CONSTRAINT orders_created_at_ms_not_null');
    await queryRunner.startTransaction();
    try {
      await queryRunner.query('ALTER TABLE orders ALTER COLUMN created_at_ms SET NOT NULL');
      await queryRunner.query('ALTER TABLE orders DROP CONSTRAINT orders_created_at_ms_not_null');
      await queryRunner.commitTransaction();
    } catch (error) {
      await queryRunner.rollbackTransaction();
      throw error;
    }
  }

  down(): Promise<void> {
    throw new IrreversibleMigrationError(this.name);
  }
}
