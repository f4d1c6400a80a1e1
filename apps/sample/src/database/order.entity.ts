import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One order. Column types that mean the same on SQLite and PostgreSQL, so that one entity serves
 * both; the table itself is created by `ensureOrdersSchema`, not by TypeORM's `synchronize`.
 */
@Entity({ name: 'orders' })
export class OrderEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  item!: string;

  @Column({ type: 'integer' })
  quantity!: number;

  /** ISO 8601 in UTC: sorts as text and reads the same from either database. */
  @Column({ name: 'created_at', type: 'varchar', length: 32 })
  createdAt!: string;
}
