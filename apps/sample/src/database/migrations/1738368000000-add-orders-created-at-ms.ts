import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IrreversibleMigrationError } from './orders-table';

/**
 * expand: the new column, nullable and without a default, so that the release before (which
 * inserts without it) keeps working, and so that neither database rewrites the table: adding it is
 * a change of the catalogue only, over in milliseconds whatever the table's size.
 */
export class AddOrdersCreatedAtMs1738368000000 implements MigrationInterface {
  readonly name = 'AddOrdersCreatedAtMs1738368000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE orders ADD COLUMN created_at_ms BIGINT');
  }

  down(): Promise<void> {
    throw new IrreversibleMigrationError(this.name);
  }
}
