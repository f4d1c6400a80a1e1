import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IrreversibleMigrationError, isPostgres } from './orders-table';

/**
 * The orders table as it was before the schema change (`created_at` as ISO 8601 text). IF NOT
 * EXISTS: a database created by a build that predates migrations is adopted as it is.
 */
export class CreateOrders1735689600000 implements MigrationInterface {
  readonly name = 'CreateOrders1735689600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      isPostgres(queryRunner)
        ? 'CREATE TABLE IF NOT EXISTS orders (id SERIAL PRIMARY KEY, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL)'
        : 'CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, item VARCHAR(200) NOT NULL, quantity INTEGER NOT NULL, created_at VARCHAR(32) NOT NULL)',
    );
  }

  down(): Promise<void> {
    throw new IrreversibleMigrationError(this.name);
  }
}
