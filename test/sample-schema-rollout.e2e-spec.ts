import { join } from 'node:path';
import { Client } from 'pg';
import { type Adapter, type AppInstance, ROOT, startSample } from './support/apps';
import { type PostgresInstance, startPostgres } from './support/postgres';
import { delay, logEvents, type ManagedProcess, startProcess } from './support/process';

/** The migration job of the built sample. */
const MIGRATE_JOB = join(ROOT, 'dist/apps/sample/database/migrate.js');

/**
 * The orders schema change (apps/sample/src/database/orders-schema.ts, docs/migrations.md) rolled
 * out as a rolling update does it, release after release, over one real PostgreSQL: each new
 * release starts and migrates while the one before it serves under traffic; then both serve at
 * once, each reading what the other wrote; and an instance of the older release started after the
 * migration (a pod rescheduled mid-rollout, or a rollback) serves on the newer schema.
 */

const PHASES = ['before', 'expand', 'migrate', 'retire', 'contract'] as const;
type Phase = (typeof PHASES)[number];

const MIGRATION_OF: Record<Phase, string> = {
  before: 'CreateOrders1735689600000',
  expand: 'AddOrdersCreatedAtMs1738368000000',
  migrate: 'BackfillOrdersCreatedAtMs1740787200000',
  retire: 'RetireOrdersCreatedAt1743465600000',
  contract: 'DropOrdersCreatedAt1746057600000',
};

/** `column nullable?` of the orders table after each release's migration, from information_schema. */
const COLUMNS_AFTER: Record<Phase, string[]> = {
  before: ['id NOT NULL', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL'],
  expand: ['id NOT NULL', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL', 'created_at_ms NULL'],
  migrate: ['id NOT NULL', 'item NOT NULL', 'quantity NOT NULL', 'created_at NOT NULL', 'created_at_ms NOT NULL'],
  retire: ['id NOT NULL', 'item NOT NULL', 'quantity NOT NULL', 'created_at NULL', 'created_at_ms NOT NULL'],
  contract: ['id NOT NULL', 'item NOT NULL', 'quantity NOT NULL', 'created_at_ms NOT NULL'],
};

interface Order {
  readonly id: string;
  readonly item: string;
  readonly quantity: number;
  readonly createdAt: string;
}

interface Release {
  readonly phase: Phase;
  readonly instance: AppInstance;
}

async function createOrder(release: Release, item: string, quantity: number): Promise<Order> {
  const res = await fetch(`${release.instance.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item, quantity }),
  });
  if (res.status !== 201) throw new Error(`POST /orders on ${release.phase}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Order;
}

async function getOrder(release: Release, id: string): Promise<Order> {
  const res = await fetch(`${release.instance.url}/orders/${id}`);
  if (res.status !== 200) throw new Error(`GET /orders/${id} on ${release.phase}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Order;
}

async function listOrders(release: Release): Promise<Order[]> {
  const res = await fetch(`${release.instance.url}/orders`);
  if (res.status !== 200) throw new Error(`GET /orders on ${release.phase}: ${res.status} ${await res.text()}`);
  return (await res.json()) as Order[];
}

/** Writes and reads an order on `release`, one after the other, until stopped; every failure is kept. */
function keepServing(release: Release): { stop(): Promise<{ rounds: number; failures: string[] }> } {
  let running = true;
  let rounds = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const order = await createOrder(release, `traffic on ${release.phase}`, 1);
        const read = await getOrder(release, order.id);
        if (JSON.stringify(read) !== JSON.stringify(order))
          failures.push(`read ${JSON.stringify(read)} after writing ${JSON.stringify(order)}`);
        rounds++;
      } catch (error) {
        failures.push((error as Error).message);
      }
      // A steady trickle, not a flood: the point is a request in flight whenever the schema changes.
      await delay(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { rounds, failures };
    },
  };
}

describe('the orders schema change rolled out release by release over one PostgreSQL', () => {
  let postgres: PostgresInstance | undefined;
  const started: AppInstance[] = [];

  beforeAll(async () => {
    postgres = await startPostgres();
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(started.map((instance) => instance.stop(2000)));
    await postgres?.destroy();
  }, 60_000);

  async function start(phase: Phase, adapter: Adapter, name: string, databaseUrl = postgres!.url): Promise<Release> {
    const instance = await startSample({
      name,
      adapter,
      env: { DATABASE_URL: databaseUrl, ORDERS_SCHEMA_PHASE: phase, APP_VERSION: phase, DRAIN_DELAY_MS: '0' },
    });
    started.push(instance);
    // Ready means connected and migrated; the log line can trail the probe by a moment.
    await instance.process.waitForLine((line) => line.includes('"event":"database.connected"'), 5000);
    return { phase, instance };
  }

  /** One query on a fresh connection to the database at `url`. */
  async function queryAt<T extends object>(url: string, sql: string): Promise<T[]> {
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  }

  /** The orders table's columns in the database at `url`. */
  async function columns(url = postgres!.url): Promise<string[]> {
    const rows = await queryAt<{ column_name: string; is_nullable: string }>(
      url,
      "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position",
    );
    return rows.map((c) => `${c.column_name} ${c.is_nullable === 'YES' ? 'NULL' : 'NOT NULL'}`);
  }

  /** Each writes one order, reads the other's, and both list the same orders (each from its own column). */
  async function bothServe(a: Release, b: Release, written: Map<string, Order>): Promise<void> {
    const byA = await createOrder(a, `by ${a.phase}`, 3);
    const byB = await createOrder(b, `by ${b.phase}`, 4);
    written.set(byA.id, byA).set(byB.id, byB);
    expect(await getOrder(b, byA.id)).toEqual(byA);
    expect(await getOrder(a, byB.id)).toEqual(byB);
    // Every order written so far, by any release, reads the same on both.
    for (const order of written.values()) {
      expect({ on: a.phase, order: await getOrder(a, order.id) }).toEqual({ on: a.phase, order });
      expect({ on: b.phase, order: await getOrder(b, order.id) }).toEqual({ on: b.phase, order });
    }
    const [listA, listB] = await Promise.all([listOrders(a), listOrders(b)]);
    expect(listA.length).toBeGreaterThan(0);
    expect({ on: b.phase, orders: listB }).toEqual({ on: b.phase, orders: listA });
  }

  it('runs each release beside the one before it: it migrates under traffic, both serve reads and writes both ways, and the older one restarts on the newer schema', async () => {
    const adapters: Adapter[] = ['express', 'fastify'];
    let old = await start('before', 'express', 'orders-before');
    expect(logEvents(old.instance.process.stdout, 'database.migrated').map((e) => e.migrations)).toEqual([[MIGRATION_OF.before]]);
    expect(await columns()).toEqual(COLUMNS_AFTER.before);
    // Milliseconds in the text that the backfill must carry over exactly.
    const written = new Map<string, Order>();
    const first = await createOrder(old, 'written before the change', 2);
    written.set(first.id, first);

    for (const [step, phase] of PHASES.slice(1).entries()) {
      const traffic = keepServing(old);
      const next = await start(phase, adapters[(step + 1) % 2], `orders-${phase}`);
      const { rounds, failures } = await traffic.stop();
      expect({ phase, failures }).toEqual({ phase, failures: [] });
      expect(rounds).toBeGreaterThan(0);

      expect({ phase, migrated: logEvents(next.instance.process.stdout, 'database.migrated').map((e) => e.migrations) }).toEqual({
        phase,
        migrated: [[MIGRATION_OF[phase]]],
      });
      expect({ phase, columns: await columns() }).toEqual({ phase, columns: COLUMNS_AFTER[phase] });
      await bothServe(old, next, written);

      // The older release started after the migration: nothing left to migrate, and it serves.
      const restarted = await start(old.phase, adapters[step % 2 === 0 ? 1 : 0], `orders-${old.phase}-restarted`);
      expect(logEvents(restarted.instance.process.stdout, 'database.migrated')).toEqual([]);
      expect(logEvents(restarted.instance.process.stdout, 'database.connected')).toEqual([
        expect.objectContaining({ schema_phase: old.phase, dependency: 'postgres' }),
      ]);
      await bothServe(restarted, next, written);

      const exits = await Promise.all([old.instance.stop(), restarted.instance.stop()]);
      expect(exits.map((exit) => exit.code)).toEqual([0, 0]);
      old = next;
    }
    // The last release keeps the orders of the first, to the millisecond.
    expect(await getOrder(old, first.id)).toEqual(first);
  }, 180_000);

  /** Runs the migration job to its exit. */
  async function runJob(name: string, env: Record<string, string>): Promise<{ code: number | null; proc: ManagedProcess }> {
    const proc = startProcess({ name, command: process.execPath, args: [MIGRATE_JOB], cwd: ROOT, env });
    const exit = await proc.waitForExit(20_000);
    return { code: exit.code, proc };
  }

  it('migrates as a job that exits, after which the release starts with a user that may not change the schema; a job that cannot connect exits 1 and masks the password', async () => {
    // A database of its own, so that the job starts from nothing.
    await postgres!.query('CREATE DATABASE orders_job');
    const url = postgres!.url.replace(/\/postgres$/, '/orders_job');

    const first = await runJob('migrate-job', { DATABASE_URL: url, ORDERS_SCHEMA_PHASE: 'expand' });
    expect({ code: first.code, stderr: first.proc.stderr }).toEqual({ code: 0, stderr: [] });
    expect(logEvents(first.proc.stdout, 'database.migrated').map((e) => [e.schema_phase, e.migrations])).toEqual([
      ['expand', [MIGRATION_OF.before, MIGRATION_OF.expand]],
    ]);
    expect(await columns(url)).toEqual(COLUMNS_AFTER.expand);

    const again = await runJob('migrate-job-again', { DATABASE_URL: url, ORDERS_SCHEMA_PHASE: 'expand' });
    expect(again.code).toBe(0);
    expect(logEvents(again.proc.stdout, 'database.migrated').map((e) => e.migrations)).toEqual([[]]);

    // The instances' own user may read and write the orders, and nothing more: start-up must find
    // nothing to migrate and issue no DDL.
    await queryAt(
      url,
      "CREATE ROLE orders_app LOGIN PASSWORD 'app-pw-1234'; REVOKE CREATE ON SCHEMA public FROM PUBLIC; " +
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orders_app; ' +
        'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO orders_app',
    );
    const appUrl = url.replace(/^postgres:\/\/postgres:[^@]+@/, 'postgres://orders_app:app-pw-1234@');
    const release = await start('expand', 'express', 'orders-after-job', appUrl);
    expect(logEvents(release.instance.process.stdout, 'database.migrated')).toEqual([]);
    const order = await createOrder(release, 'after the job', 1);
    expect(await getOrder(release, order.id)).toEqual(order);
    expect((await release.instance.stop()).code).toBe(0);

    const refused = await runJob('migrate-job-refused', {
      DATABASE_URL: `postgres://orders:pw-job-secret@127.0.0.1:${postgres!.port}/orders_job`,
      ORDERS_SCHEMA_PHASE: 'expand',
    });
    expect(refused.code).toBe(1);
    expect(logEvents(refused.proc.stdout, 'database.migration_failed')).toEqual([
      expect.objectContaining({ error: expect.objectContaining({ message: expect.stringContaining('password authentication failed') }) }),
    ]);
    expect(refused.proc.stderr).toEqual([expect.stringMatching(/^Migration failed: .*password authentication failed/)]);
    expect([...refused.proc.stdout, ...refused.proc.stderr].join('\n')).not.toContain('pw-job-secret');
  }, 60_000);
});
