import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { sampleConfig } from '../sample.config';
import { dataSourceOptions } from './database.module';
import { runOrdersMigrations } from './orders-migrations';
import { ORDERS_SCHEMA_PHASES, ordersSchema, OrdersSchemaError, type OrdersSchemaPhase } from './orders-schema';

/** What OrdersService does with the rows, on a DataSource of one release. */
interface Release {
  readonly phase: OrdersSchemaPhase;
  readonly dataSource: DataSource;
  create(item: string, quantity: number, at?: Date): Promise<{ id: number; createdAt: string }>;
  get(id: number): Promise<{ item: string; quantity: number; createdAt: string } | null>;
  list(): Promise<Array<{ id: number; createdAt: string }>>;
}

/** A release of the sample on the SQLite file `file`, connected and migrated as start-up does; the migrations it ran. */
async function open(file: string, phase: OrdersSchemaPhase): Promise<{ release: Release; migrated: string[] }> {
  const options = dataSourceOptions(sampleConfig.parse({ DATABASE_URL: `sqlite:${file}`, ORDERS_SCHEMA_PHASE: phase }));
  const dataSource = await new DataSource(options as DataSourceOptions).initialize();
  const migrated = await runOrdersMigrations(dataSource);
  const schema = ordersSchema(phase);
  const orders = dataSource.getRepository(schema.entity);
  const release: Release = {
    phase,
    dataSource,
    async create(item, quantity, at = new Date()) {
      const row = await orders.save(orders.create(schema.newRow(item, quantity, at)));
      return { id: row.id, createdAt: schema.createdAtOf(row) };
    },
    async get(id) {
      const row = await orders.findOneBy({ id });
      return row && { item: row.item, quantity: row.quantity, createdAt: schema.createdAtOf(row) };
    },
    async list() {
      return (await orders.find({ order: { id: 'ASC' } })).map((row) => ({ id: row.id, createdAt: schema.createdAtOf(row) }));
    },
  };
  return { release, migrated };
}

async function columnsOf(dataSource: DataSource): Promise<string[]> {
  const rows = (await dataSource.query('PRAGMA table_info(orders)')) as Array<{ name: string; notnull: number }>;
  return rows.map((c) => `${c.name}${c.notnull ? ' NOT NULL' : ''}`);
}

/** The table after each release's migration. */
const COLUMNS_AFTER: Record<OrdersSchemaPhase, string[]> = {
  before: ['id', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL'],
  expand: ['id', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL', 'created_at_ms'],
  migrate: ['id', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL', 'created_at_ms NOT NULL'],
  retire: ['id', 'item NOT NULL', 'quantity NOT NULL', 'created_at', 'created_at_ms NOT NULL'],
  contract: ['id', 'item NOT NULL', 'quantity NOT NULL', 'created_at_ms NOT NULL'],
};

const MIGRATION_OF: Record<OrdersSchemaPhase, string> = {
  before: 'CreateOrders1735689600000',
  expand: 'AddOrdersCreatedAtMs1738368000000',
  migrate: 'BackfillOrdersCreatedAtMs1740787200000',
  retire: 'RetireOrdersCreatedAt1743465600000',
  contract: 'DropOrdersCreatedAt1746057600000',
};

describe('the orders schema change on SQLite, one release beside the next on one file', () => {
  let dir: string;
  const opened: DataSource[] = [];

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(true));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'orders-schema-'));
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((ds) => (ds.isInitialized ? ds.destroy() : undefined)));
    rmSync(dir, { recursive: true, force: true });
  });

  async function openTracked(file: string, phase: OrdersSchemaPhase) {
    const result = await open(file, phase);
    opened.push(result.release.dataSource);
    return result;
  }

  it('walks every release: each migrates once, and it and the one before it read what the other wrote', async () => {
    const file = join(dir, 'orders.db');
    const first = await openTracked(file, 'before');
    expect(first.migrated).toEqual([MIGRATION_OF.before]);
    let old = first.release;
    // Milliseconds that a float conversion would get wrong, written before created_at_ms exists.
    const widget = await old.create('widget', 2, new Date('2025-03-04T05:06:07.089Z'));
    const expected = new Map<number, string>([[widget.id, '2025-03-04T05:06:07.089Z']]);

    for (const phase of ORDERS_SCHEMA_PHASES.slice(1)) {
      const next = await openTracked(file, phase);
      expect({ phase, migrated: next.migrated }).toEqual({ phase, migrated: [MIGRATION_OF[phase]] });
      expect({ phase, columns: await columnsOf(next.release.dataSource) }).toEqual({ phase, columns: COLUMNS_AFTER[phase] });

      // Both ways, while both run: the old release wrote before and after the migration.
      const byOld = await old.create(`by ${old.phase}`, 3);
      const byNew = await next.release.create(`by ${phase}`, 4);
      expected.set(byOld.id, byOld.createdAt).set(byNew.id, byNew.createdAt);
      expect(await next.release.get(byOld.id)).toEqual({ item: `by ${old.phase}`, quantity: 3, createdAt: byOld.createdAt });
      expect(await old.get(byNew.id)).toEqual({ item: `by ${phase}`, quantity: 4, createdAt: byNew.createdAt });
      const all = [...expected].map(([id, createdAt]) => ({ id, createdAt }));
      expect({ phase, release: 'new', orders: await next.release.list() }).toEqual({ phase, release: 'new', orders: all });
      expect({ phase, release: 'old', orders: await old.list() }).toEqual({ phase, release: 'old', orders: all });

      // An old instance that restarts now (a pod rescheduled mid-rollout, or a rollback) finds
      // nothing to migrate and serves on the newer schema.
      const restarted = await openTracked(file, old.phase);
      expect(restarted.migrated).toEqual([]);
      expect(await restarted.release.list()).toEqual(all);

      old = next.release;
    }
  });

  it('never hands out the id of a deleted order again, through the table rebuilds', async () => {
    const file = join(dir, 'orders.db');
    const { release: before } = await openTracked(file, 'before');
    await before.create('kept', 1);
    const deleted = await before.create('deleted', 1);
    await before.dataSource.query('DELETE FROM orders WHERE id = ?', [deleted.id]);
    await before.dataSource.destroy();

    const { release: contract } = await openTracked(file, 'contract');
    expect((await contract.create('next', 1)).id).toBe(deleted.id + 1);
  });

  it('needs every step: a release that skips one breaks the release before it', async () => {
    const file = join(dir, 'orders.db');
    const { release: before } = await openTracked(file, 'before');
    await before.create('widget', 1);
    // `migrate` straight after `before`: it applies `expand`'s migration and its own, and makes
    // created_at_ms NOT NULL while `before` still inserts without it.
    const { migrated } = await openTracked(file, 'migrate');
    expect(migrated).toEqual([MIGRATION_OF.expand, MIGRATION_OF.migrate]);
    await expect(before.create('too late', 1)).rejects.toThrow(/NOT NULL constraint failed: orders.created_at_ms/);
  });

  it('refuses to read a row that a skipped release left without the column it reads', async () => {
    const file = join(dir, 'orders.db');
    const { release: expand } = await openTracked(file, 'expand');
    // A row as a `before` instance writes it, read by `expand`'s successor without the backfill.
    await expand.dataSource.query("INSERT INTO orders (item, quantity, created_at) VALUES ('widget', 1, '2025-01-01T00:00:00.000Z')");
    const row = { id: 1, item: 'widget', quantity: 1, createdAt: '2025-01-01T00:00:00.000Z', createdAtMs: null };

    expect(() => ordersSchema('migrate').createdAtOf(row)).toThrow(OrdersSchemaError);
    expect(() => ordersSchema('migrate').createdAtOf(row)).toThrow(
      /has no created_at_ms: a release of the orders schema change was skipped/,
    );
    expect(ordersSchema('expand').createdAtOf(row)).toBe('2025-01-01T00:00:00.000Z');
  });
});

describe('OrdersSchema', () => {
  const at = new Date('2025-06-07T08:09:10.011Z');

  it.each([
    ['before', { createdAt: '2025-06-07T08:09:10.011Z' }],
    ['expand', { createdAt: '2025-06-07T08:09:10.011Z', createdAtMs: at.getTime() }],
    ['migrate', { createdAt: '2025-06-07T08:09:10.011Z', createdAtMs: at.getTime() }],
    ['retire', { createdAtMs: at.getTime() }],
    ['contract', { createdAtMs: at.getTime() }],
  ] as const)('writes a new order of the %s release to the columns that release and the one before it read', (phase, columns) => {
    expect(ordersSchema(phase).newRow('widget', 2, at)).toEqual({ item: 'widget', quantity: 2, ...columns });
  });

  it('maps only the columns a release reads or writes, so that a later release may drop the others', () => {
    const mapped = (phase: OrdersSchemaPhase) => ordersSchema(phase).entity.options.columns;
    expect(Object.keys(mapped('before'))).toEqual(['id', 'item', 'quantity', 'createdAt']);
    expect(Object.keys(mapped('migrate'))).toEqual(['id', 'item', 'quantity', 'createdAt', 'createdAtMs']);
    expect(Object.keys(mapped('retire'))).toEqual(['id', 'item', 'quantity', 'createdAtMs']);
  });

  it('lists the migrations of every release up to its own, in order', () => {
    expect(ordersSchema('before').migrations.map((m) => m.name)).toEqual([MIGRATION_OF.before]);
    expect(ordersSchema('contract').migrations.map((m) => m.name)).toEqual(ORDERS_SCHEMA_PHASES.map((p) => MIGRATION_OF[p]));
  });

  it('runs the latest release unless ORDERS_SCHEMA_PHASE names an earlier one, and names the choices when it is wrong', () => {
    expect(sampleConfig.parse({}).ordersSchemaPhase).toBe('contract');
    expect(sampleConfig.parse({ ORDERS_SCHEMA_PHASE: 'expand' }).ordersSchemaPhase).toBe('expand');
    expect(() => sampleConfig.parse({ ORDERS_SCHEMA_PHASE: 'v2' })).toThrow(
      'ORDERS_SCHEMA_PHASE: must be "before", "expand", "migrate", "retire" or "contract"',
    );
  });
});
