import { EntitySchema, type EntitySchemaColumnOptions, type MigrationInterface } from 'typeorm';
import { CreateOrders1735689600000 } from './migrations/1735689600000-create-orders';
import { AddOrdersCreatedAtMs1738368000000 } from './migrations/1738368000000-add-orders-created-at-ms';
import { BackfillOrdersCreatedAtMs1740787200000 } from './migrations/1740787200000-backfill-orders-created-at-ms';
import { RetireOrdersCreatedAt1743465600000 } from './migrations/1743465600000-retire-orders-created-at';
import { DropOrdersCreatedAt1746057600000 } from './migrations/1746057600000-drop-orders-created-at';

/**
 * The releases of one schema change, written expand/contract: `orders.created_at` (ISO 8601 text)
 * is replaced by `orders.created_at_ms` (epoch milliseconds, an integer: exact, indexable for time
 * ranges, and the same on SQLite and PostgreSQL). Each release runs side by side with the one
 * before it against one database, as a rolling update or a blue-green pair does
 * (docs/migrations.md). A real service ships one step per release and deletes the older code
 * paths; the sample keeps every step, chosen by ORDERS_SCHEMA_PHASE, so that a test can run two
 * releases at once.
 */
export const ORDERS_SCHEMA_PHASES = ['before', 'expand', 'migrate', 'retire', 'contract'] as const;
export type OrdersSchemaPhase = (typeof ORDERS_SCHEMA_PHASES)[number];

/** The latest release: every step applied, `created_at` gone. */
export const DEFAULT_ORDERS_SCHEMA_PHASE: OrdersSchemaPhase = 'contract';

/** One of the two columns the change is about. */
export type CreatedAtColumn = 'created_at' | 'created_at_ms';

export interface OrdersSchemaPhaseRules {
  /** The migration this release adds; it runs at start-up (or as a job) before the instance serves. */
  readonly migration: new () => MigrationInterface;
  /** The columns a new order is written to. */
  readonly writes: readonly CreatedAtColumn[];
  /** The column an order's creation time is read from. */
  readonly reads: CreatedAtColumn;
}

/**
 * What each release does. Every row keeps the one before it working: a release writes whatever the
 * previous one reads, and reads only what the previous one writes (or what its migration filled
 * in), and its migration only adds what the previous one ignores or removes what it no longer uses.
 */
export const ORDERS_SCHEMA_RULES: Readonly<Record<OrdersSchemaPhase, OrdersSchemaPhaseRules>> = {
  // The release before the change (its migration adopts a table created by earlier builds).
  before: { migration: CreateOrders1735689600000, writes: ['created_at'], reads: 'created_at' },
  // Adds created_at_ms, nullable: `before` never sees it. Writes both; still reads created_at,
  // since the rows `before` writes meanwhile have no created_at_ms.
  expand: { migration: AddOrdersCreatedAtMs1738368000000, writes: ['created_at', 'created_at_ms'], reads: 'created_at' },
  // Backfills created_at_ms and makes it NOT NULL (`expand` writes it on every row). Reads it;
  // still writes created_at, which `expand` reads.
  migrate: { migration: BackfillOrdersCreatedAtMs1740787200000, writes: ['created_at', 'created_at_ms'], reads: 'created_at_ms' },
  // created_at becomes nullable and unused: `migrate` reads created_at_ms only.
  retire: { migration: RetireOrdersCreatedAt1743465600000, writes: ['created_at_ms'], reads: 'created_at_ms' },
  // Drops created_at, which `retire` neither reads nor writes. The same code as `retire`.
  contract: { migration: DropOrdersCreatedAt1746057600000, writes: ['created_at_ms'], reads: 'created_at_ms' },
};

/** A row of `orders` as a phase maps it: only the columns that phase reads or writes. */
export interface OrderRow {
  id: number;
  item: string;
  quantity: number;
  createdAt?: string | null;
  createdAtMs?: number | null;
}

/** The fields of a new order, before the database gives it an id. */
export type NewOrderRow = Omit<OrderRow, 'id'>;

const COLUMNS: Record<CreatedAtColumn, [property: 'createdAt' | 'createdAtMs', options: EntitySchemaColumnOptions]> = {
  created_at: ['createdAt', { name: 'created_at', type: 'varchar', length: 32, nullable: true }],
  created_at_ms: [
    'createdAtMs',
    {
      name: 'created_at_ms',
      type: 'bigint',
      nullable: true,
      // node-postgres returns BIGINT as a string, since not every one fits a JavaScript number;
      // epoch milliseconds do until the year 287396.
      transformer: {
        to: (value: unknown) => value,
        from: (value: unknown) => (value === null || value === undefined ? value : Number(value)),
      },
    },
  ],
};

/**
 * The orders table as one release sees it: its entity (only the columns it reads or writes, so that
 * a column dropped later is never in its queries), its migrations, and how an order's creation
 * time is written and read.
 */
export class OrdersSchema {
  readonly rules: OrdersSchemaPhaseRules;
  readonly entity: EntitySchema<OrderRow>;
  /** Every migration up to this release's, in order. */
  readonly migrations: ReadonlyArray<new () => MigrationInterface>;

  constructor(readonly phase: OrdersSchemaPhase) {
    this.rules = ORDERS_SCHEMA_RULES[phase];
    const mapped = new Set<CreatedAtColumn>([...this.rules.writes, this.rules.reads]);
    const columns: Record<string, EntitySchemaColumnOptions> = {
      id: { type: 'integer', primary: true, generated: 'increment' },
      item: { type: 'varchar', length: 200 },
      quantity: { type: 'integer' },
    };
    for (const column of mapped) {
      const [property, options] = COLUMNS[column];
      columns[property] = options;
    }
    this.entity = new EntitySchema<OrderRow>({ name: 'Order', tableName: 'orders', columns });
    const upTo = ORDERS_SCHEMA_PHASES.indexOf(phase);
    this.migrations = ORDERS_SCHEMA_PHASES.slice(0, upTo + 1).map((p) => ORDERS_SCHEMA_RULES[p].migration);
  }

  /** The columns of a new order created at `createdAt`. */
  newRow(item: string, quantity: number, createdAt: Date): NewOrderRow {
    const row: NewOrderRow = { item, quantity };
    if (this.rules.writes.includes('created_at')) row.createdAt = createdAt.toISOString();
    if (this.rules.writes.includes('created_at_ms')) row.createdAtMs = createdAt.getTime();
    return row;
  }

  /** When the order was created, in ISO 8601 (UTC), from the column this release reads. */
  createdAtOf(row: OrderRow): string {
    const value = this.rules.reads === 'created_at' ? row.createdAt : row.createdAtMs;
    if (value === null || value === undefined) {
      // NOT NULL from `migrate` on; a NULL here means a release was skipped.
      throw new OrdersSchemaError(
        `order ${row.id} has no ${this.rules.reads}: a release of the orders schema change was skipped; ` +
          'roll them out one at a time (docs/migrations.md)',
      );
    }
    return typeof value === 'number' ? new Date(value).toISOString() : value;
  }
}

/** The database does not hold what this release of the schema change expects. */
export class OrdersSchemaError extends Error {
  readonly code = 'SAMPLE_ORDERS_SCHEMA';
  constructor(message: string) {
    super(message);
    this.name = 'OrdersSchemaError';
  }
}

/** One instance per phase, so that the DataSource and the orders service share the entity object. */
const SCHEMAS: Readonly<Record<OrdersSchemaPhase, OrdersSchema>> = Object.freeze(
  Object.fromEntries(ORDERS_SCHEMA_PHASES.map((phase) => [phase, new OrdersSchema(phase)])) as Record<OrdersSchemaPhase, OrdersSchema>,
);

export function ordersSchema(phase: OrdersSchemaPhase): OrdersSchema {
  return SCHEMAS[phase];
}

/** Injection token of the running release's OrdersSchema. */
export const ORDERS_SCHEMA = 'SAMPLE:ORDERS_SCHEMA';
