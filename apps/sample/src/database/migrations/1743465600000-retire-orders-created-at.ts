import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IrreversibleMigrationError, isPostgres, rebuildSqliteOrders } from './orders-table';

/**
 * retire: created_at becomes nullable, so that this release can stop writing it. It stays in the
 * table: `migrate` instances, still running while this one rolls out, write it on every insert.
 */
export class RetireOrdersCreatedAt1743465600000 implements MigrationInterface {
  readonly name = 'RetireOrdersCreatedAt1743465600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (isPostgres(queryRunner)) {
      // A change of the catalogue only: no scan, no rewrite.
      await queryRunner.query('ALTER TABLE orders ALTER COLUMN created_at DROP NOT NULL');
      return;
    }
    await rebuildSqliteOrders(
      queryRunner,
      'id INTEGER PRIMARY KEY AUTOINCREMENT, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32), created_at_ms BIGINT NOT NULL',
      ['id', 'item', 'quantity', 'created_at', 'created_at_ms'],
    );
  }

  down(): Promise<void> {
    throw new IrreversibleMigrationError(this.name);
  }
}
