import { TypeOrmHealthIndicator } from '@nestjs/terminus';
import { untilAborted } from '@nest-rollout/lifecycle';
import type { HealthCheckDefinition } from '../health.check';
import { ClientRef, CheckOptions, commonFields, fromTerminus, resolveClient, terminusTimeoutMs } from './indicator.utils';

/** What `postgresCheck` needs of a `pg` Pool (structural, so this package does not depend on `pg`). */
export interface PgPoolLike {
  connect(): Promise<PgPoolClientLike>;
}
export interface PgPoolClientLike {
  query(text: string): Promise<unknown>;
  /** `release(true)` destroys the connection instead of returning it to the pool. */
  release(destroy?: boolean | Error): void;
}

export interface PostgresCheckOptions extends CheckOptions {
  /** The application's `pg` Pool, or the token of its provider. */
  readonly pool: ClientRef<PgPoolLike>;
  /** @default 'SELECT 1' */
  readonly query?: string;
}

/**
 * PostgreSQL through the application's own `pg` Pool: borrows a connection, runs `SELECT 1`, gives
 * it back. A run that times out destroys the connection it borrowed rather than return one with a
 * query still hanging on it, so a hung server cannot drain the pool one check at a time.
 */
export function postgresCheck(name: string, options: PostgresCheckOptions): HealthCheckDefinition {
  const query = options.query ?? 'SELECT 1';
  return {
    name,
    ...commonFields(options, 'postgres'),
    run: async (context) => {
      const pool = resolveClient(options.pool, isPgPool, context);
      const client = await untilAborted(pool.connect(), context.signal, (late) => late.release());
      let broken = false;
      try {
        await untilAborted(client.query(query), context.signal);
      } catch (error) {
        broken = true;
        throw error;
      } finally {
        client.release(broken);
      }
    },
  };
}

function isPgPool(value: unknown): value is PgPoolLike {
  return typeof value === 'object' && value !== null && typeof (value as PgPoolLike).connect === 'function';
}

/** What terminus' TypeORM indicator needs of a DataSource. */
export interface TypeOrmDataSourceLike {
  query(sql: string): Promise<unknown>;
  readonly options: { readonly type: string };
}

export interface TypeOrmCheckOptions extends CheckOptions {
  /**
   * The DataSource (or its token, e.g. `getDataSourceToken('reports')`).
   * @default the application's default DataSource from @nestjs/typeorm
   */
  readonly dataSource?: ClientRef<TypeOrmDataSourceLike>;
}

/**
 * A database behind TypeORM (PostgreSQL, SQLite, MySQL, ...) through @nestjs/terminus'
 * `TypeOrmHealthIndicator`, on the application's own DataSource and its pool.
 */
export function typeOrmCheck(name: string, options: TypeOrmCheckOptions = {}): HealthCheckDefinition {
  return {
    name,
    ...commonFields(options, 'database'),
    run: async (context) => {
      const indicator = await context.terminus(TypeOrmHealthIndicator);
      const connection = options.dataSource === undefined ? undefined : resolveClient(options.dataSource, isDataSource, context);
      return fromTerminus(await indicator.pingCheck(name, { connection, timeout: terminusTimeoutMs(context.timeoutMs) }), name);
    },
  };
}

function isDataSource(value: unknown): value is TypeOrmDataSourceLike {
  return typeof value === 'object' && value !== null && typeof (value as TypeOrmDataSourceLike).query === 'function' && 'options' in value;
}
