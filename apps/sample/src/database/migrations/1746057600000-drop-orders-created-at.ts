import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IrreversibleMigrationError } from './orders-table';

/**
 * contract: created_at goes, in the release after the one that stopped writing it; `retire`
 * instances, still running meanwhile, do not map it, so no query of theirs names it.
 */
export class DropOrdersCreatedAt1746057600000 implements MigrationInterface {
  readonly name = 'DropOrdersCreatedAt1746057600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // PostgreSQL only marks the column dropped (no rewrite); SQLite 3.35 and later drop it in place.
    await queryRunner.query('ALTER TABLE orders DROP COLUMN created_at');
  }

  down(): Promise<void> {
    throw new IrreversibleMigrationError(this.name);
  }
}
