import { Logger, ServiceUnavailableException, type CallHandler, type ExecutionContext } from '@nestjs/common';
import { LifecycleService, ManualClock, settle, type WarmupTask } from '@nest-rollout/lifecycle';
import { lastValueFrom, of, throwError } from 'rxjs';
import type { DataSource } from 'typeorm';
import { sampleConfig, type SampleConfig } from '../sample.config';
import { DatabaseAvailabilityInterceptor } from './database-availability.interceptor';
import { DATABASE_CONNECT_TASK, DATABASE_RETRY, DatabaseConnector, DatabaseUnavailableError, retryDelayMs } from './database.connector';

const POSTGRES_URL = 'postgres://orders:pw-secret-1234@db.internal:5432/orders';

/** A DataSource that refuses `failures` connections, then connects. */
class FakeDataSource {
  isInitialized = false;
  attempts = 0;

  constructor(
    readonly options: { type: string },
    private failures: number,
    private readonly error: () => Error = () =>
      Object.assign(new Error(`connect ECONNREFUSED 10.0.0.5:5432 (${POSTGRES_URL})`), { code: 'ECONNREFUSED' }),
  ) {}

  async initialize(): Promise<this> {
    this.attempts++;
    if (this.failures-- > 0) throw this.error();
    this.isInitialized = true;
    return this;
  }
}

/** Records the migration runs; the first `failures` of them fail as a database still starting up. */
class FakeMigrator {
  readonly runs: unknown[] = [];
  constructor(private failures = 0) {}

  readonly migrate = async (dataSource: unknown): Promise<string[]> => {
    this.runs.push(dataSource);
    if (this.failures-- > 0) throw Object.assign(new Error('the database system is starting up'), { code: '57P03' });
    return ['CreateOrders1735689600000'];
  };
}

interface Setup {
  readonly connector: DatabaseConnector;
  readonly dataSource: FakeDataSource;
  readonly migrator: FakeMigrator;
  readonly clock: ManualClock;
  readonly tasks: WarmupTask[];
  readonly stderr: string[];
}

let stderrSpy: jest.SpyInstance | undefined;

function setup(env: NodeJS.ProcessEnv, dataSource: FakeDataSource, migrator = new FakeMigrator()): Setup {
  const config: SampleConfig = sampleConfig.parse(env);
  const clock = new ManualClock();
  const tasks: WarmupTask[] = [];
  const lifecycle = { registerWarmupTask: (task: WarmupTask) => tasks.push(task) } as unknown as LifecycleService;
  const stderr: string[] = [];
  stderrSpy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
  const connector = new DatabaseConnector(dataSource as unknown as DataSource, config, lifecycle, clock, migrator.migrate);
  return { connector, dataSource, migrator, clock, tasks, stderr };
}

/** Runs `connect` to its end, moving the manual clock on in steps no retry delay exceeds. */
async function connectToEnd(s: Setup, signal = new AbortController().signal): Promise<{ error?: unknown; elapsedMs: number }> {
  const startedAt = s.clock.now();
  let outcome: { error?: unknown } | undefined;
  s.connector.connect(signal).then(
    () => (outcome = {}),
    (error: unknown) => (outcome = { error }),
  );
  while (outcome === undefined) await s.clock.advance(50);
  return { ...outcome, elapsedMs: s.clock.now() - startedAt };
}

beforeAll(() => {
  // The connector's log lines are not what these specs look at.
  Logger.overrideLogger(false);
});

afterEach(() => {
  stderrSpy?.mockRestore();
  stderrSpy = undefined;
});

describe('retryDelayMs', () => {
  it('doubles from 100 ms up to 2 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((attempt) => retryDelayMs(attempt, () => 0))).toEqual([
      100, 200, 400, 800, 1600, 2000, 2000, 2000,
    ]);
  });

  it('shortens each delay by up to half at random, so that instances started together spread out', () => {
    expect(retryDelayMs(3, () => 1)).toBe(400 * (1 - DATABASE_RETRY.jitter));
    expect(retryDelayMs(3, () => 0.5)).toBe(300);
  });
});

describe('DatabaseConnector', () => {
  it('registers one critical warm-up task whose timeout leaves the connector time to give up first', () => {
    const s = setup({ DATABASE_URL: POSTGRES_URL, DATABASE_CONNECT_TIMEOUT_MS: '45000' }, new FakeDataSource({ type: 'postgres' }, 0));
    s.connector.onModuleInit();

    expect(s.tasks).toEqual([expect.objectContaining({ name: DATABASE_CONNECT_TASK, critical: true })]);
    expect(s.tasks[0].timeoutMs).toBeGreaterThan(45_000);
  });

  it('connects at the first attempt and migrates the schema, without a word on stderr', async () => {
    const s = setup({}, new FakeDataSource({ type: 'better-sqlite3' }, 0));
    expect(s.connector.connected).toBe(false);

    const { error } = await connectToEnd(s);

    expect(error).toBeUndefined();
    expect(s.connector.connected).toBe(true);
    expect(s.migrator.runs).toEqual([s.dataSource]);
    expect(s.stderr).toEqual([]);
  });

  it('retries PostgreSQL with growing delays until it answers', async () => {
    const s = setup({ DATABASE_URL: POSTGRES_URL }, new FakeDataSource({ type: 'postgres' }, 4));

    const { error, elapsedMs } = await connectToEnd(s);

    expect(error).toBeUndefined();
    expect(s.dataSource.attempts).toBe(5);
    expect(s.connector.connected).toBe(true);
    // Four waits of at least half of 100, 200, 400 and 800 ms, at most all of them.
    expect(elapsedMs).toBeGreaterThanOrEqual(750);
    expect(elapsedMs).toBeLessThanOrEqual(1500 + 50);
    // Migrated once, on the connection that worked.
    expect(s.migrator.runs).toEqual([s.dataSource]);
  });

  it('retries the migrations without initialising a connected DataSource twice', async () => {
    const s = setup({ DATABASE_URL: POSTGRES_URL }, new FakeDataSource({ type: 'postgres' }, 0), new FakeMigrator(1));

    const { error } = await connectToEnd(s);

    expect(error).toBeUndefined();
    expect(s.dataSource.attempts).toBe(1);
    expect(s.migrator.runs).toHaveLength(2);
    expect(s.connector.connected).toBe(true);
  });

  it('gives up once DATABASE_CONNECT_TIMEOUT_MS has passed, naming the variable and the last error, with the password masked', async () => {
    const s = setup(
      { DATABASE_URL: POSTGRES_URL, DATABASE_CONNECT_TIMEOUT_MS: '5000' },
      new FakeDataSource({ type: 'postgres' }, Infinity),
    );

    const { error, elapsedMs } = await connectToEnd(s);

    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect(error).toMatchObject({ code: 'SAMPLE_DATABASE_UNAVAILABLE' });
    const message = (error as Error).message;
    expect(message).toMatch(
      /^PostgreSQL did not answer within 5000 ms \(DATABASE_CONNECT_TIMEOUT_MS\), \d+ attempts; last error: connect ECONNREFUSED/,
    );
    expect(message).not.toContain('pw-secret-1234');
    expect(s.connector.connected).toBe(false);
    // It keeps trying until close to the end of the budget, never beyond it.
    expect(elapsedMs).toBeGreaterThan(4000);
    expect(elapsedMs).toBeLessThanOrEqual(5000);
    expect(s.stderr).toEqual([`Start-up failed: ${message}\n`]);
  });

  it('gives up on an attempt that hangs when the budget runs out', async () => {
    const s = setup({ DATABASE_URL: POSTGRES_URL, DATABASE_CONNECT_TIMEOUT_MS: '1000' }, new FakeDataSource({ type: 'postgres' }, 0));
    s.dataSource.initialize = () => new Promise<never>(() => undefined);

    const { error, elapsedMs } = await connectToEnd(s);

    expect((error as Error).message).toMatch(/within 1000 ms .*1 attempt; last error: no answer/);
    expect(elapsedMs).toBe(1000);
  });

  it('tries SQLite once: a file that does not open will not open later', async () => {
    const s = setup(
      { DATABASE_URL: 'sqlite:/read-only/orders.db' },
      new FakeDataSource({ type: 'better-sqlite3' }, Infinity, () => new Error('unable to open database file')),
    );

    const { error, elapsedMs } = await connectToEnd(s);

    expect(s.dataSource.attempts).toBe(1);
    expect(elapsedMs).toBeLessThanOrEqual(50);
    expect((error as Error).message).toBe(
      'the SQLite database /read-only/orders.db could not be opened: unable to open database file. Check DATABASE_URL (sqlite:<file>) and that its folder is writable.',
    );
  });

  it('stops retrying, quietly, when the application closes during the start-up', async () => {
    const s = setup({ DATABASE_URL: POSTGRES_URL }, new FakeDataSource({ type: 'postgres' }, Infinity));
    const result = s.connector.connect(new AbortController().signal).catch((error: unknown) => error);
    await s.clock.advance(500);

    s.connector.beforeApplicationShutdown();
    await settle();

    expect(await result).toEqual(new Error('database connection abandoned: the application is shutting down'));
    expect(s.clock.pendingTimers()).toEqual([]);
    expect(s.stderr).toEqual([]);
  });
});

describe('DatabaseAvailabilityInterceptor', () => {
  const context = {} as ExecutionContext;
  const handler = (result: () => unknown): CallHandler => ({
    handle: () => {
      try {
        return of(result());
      } catch (error) {
        return throwError(() => error);
      }
    },
  });

  function interceptor(connected: boolean): DatabaseAvailabilityInterceptor {
    return new DatabaseAvailabilityInterceptor({ connected } as DatabaseConnector);
  }

  it('answers 503 without calling the handler while the database is not connected', () => {
    const handle = jest.fn();
    expect(() => interceptor(false).intercept(context, { handle })).toThrow(ServiceUnavailableException);
    expect(handle).not.toHaveBeenCalled();
  });

  it.each([
    ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' })],
    ['a server that is shutting down', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
    ['a connection cut mid-query', new Error('Connection terminated unexpectedly')],
  ])('turns %s into a 503', async (_case, error) => {
    const answer = lastValueFrom(
      interceptor(true).intercept(
        context,
        handler(() => {
          throw error;
        }),
      ),
    );
    await expect(answer).rejects.toBeInstanceOf(ServiceUnavailableException);
  });

  it('passes other errors and results through unchanged', async () => {
    const bug = Object.assign(new Error('column "qty" does not exist'), { code: '42703' });
    await expect(
      lastValueFrom(
        interceptor(true).intercept(
          context,
          handler(() => {
            throw bug;
          }),
        ),
      ),
    ).rejects.toBe(bug);
    await expect(
      lastValueFrom(
        interceptor(true).intercept(
          context,
          handler(() => ['order']),
        ),
      ),
    ).resolves.toEqual(['order']);
  });
});
