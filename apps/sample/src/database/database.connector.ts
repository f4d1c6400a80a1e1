import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { redactSecrets, urlSecrets } from '@nest-rollout/health';
import { describeError, LifecycleClock, LifecycleService, untilAborted } from '@nest-rollout/lifecycle';
import type { DataSource } from 'typeorm';
import { sampleConfig, type SampleConfig } from '../sample.config';
import { SampleEvent } from '../sample.constants';
import { writeStartupFailure } from '../startup-failure';
import type { runOrdersMigrations } from './orders-migrations';

/** The clock the connector backs off on: `systemClock`, or a `ManualClock` in unit tests. */
export const DATABASE_CLOCK = 'SAMPLE:DATABASE_CLOCK';

/** What migrates the schema once connected: `runOrdersMigrations`, or a fake in unit tests. */
export const DATABASE_MIGRATOR = 'SAMPLE:DATABASE_MIGRATOR';
export type DatabaseMigrator = typeof runOrdersMigrations;

export const DATABASE_CONNECT_TASK = 'database.connect';

/**
 * Between two attempts: 100 ms, doubling up to 2 s, each shortened by up to half at random. The
 * cap keeps the wait short once the database is up (the instance turns ready within 2 s of it);
 * the jitter keeps a fleet that started together from knocking in lockstep.
 */
export const DATABASE_RETRY = { initialDelayMs: 100, maxDelayMs: 2000, multiplier: 2, jitter: 0.5 } as const;

/**
 * What the lifecycle allows the task beyond DATABASE_CONNECT_TIMEOUT_MS. The connector gives up
 * by itself at its budget, naming the database's last error; the lifecycle's own timeout, which
 * could only say "did not finish", is a backstop.
 */
const BACKSTOP_MS = 2000;

/** Time left for the last attempt before the budget runs out (a refused connection answers in a few ms). */
const LAST_ATTEMPT_MS = 250;

/** Delay before retry number `attempt` (1 for the first retry); `random` is injected so that specs can pin it. */
export function retryDelayMs(attempt: number, random: () => number): number {
  const { initialDelayMs, maxDelayMs, multiplier, jitter } = DATABASE_RETRY;
  const base = Math.min(maxDelayMs, initialDelayMs * multiplier ** Math.max(0, attempt - 1));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(base * (1 - jitter * r)));
}

/** The database did not answer within the start-up budget; the instance stops (exit 1). */
export class DatabaseUnavailableError extends Error {
  readonly code = 'SAMPLE_DATABASE_UNAVAILABLE';
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * Connects the orders' DataSource as a warm-up task, so that a database that comes up after the
 * service (a PostgreSQL still starting next to it) costs no crash loop: the server listens and
 * answers the liveness probe at once, readiness names the database as not connected, and the
 * instance turns ready as soon as the database answers and the orders table is in place.
 * TypeORM itself never connects at boot (`manualInitialization`), so its own retries cannot end
 * the process.
 */
@Injectable()
export class DatabaseConnector implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('Database');
  private readonly secrets: readonly string[];
  /** Aborted when the application closes: a start-up interrupted by SIGTERM stops retrying. */
  private readonly closing = new AbortController();
  private isConnected = false;

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Inject(sampleConfig.KEY) private readonly config: SampleConfig,
    private readonly lifecycle: LifecycleService,
    @Inject(DATABASE_CLOCK) private readonly clock: LifecycleClock,
    @Inject(DATABASE_MIGRATOR) private readonly migrate: DatabaseMigrator,
  ) {
    this.secrets = urlSecrets(config.database.kind === 'postgres' ? config.database.url : undefined);
  }

  /** True once the database answered and its schema is migrated; until then the orders routes answer 503. */
  get connected(): boolean {
    return this.isConnected;
  }

  onModuleInit(): void {
    this.lifecycle.registerWarmupTask({
      name: DATABASE_CONNECT_TASK,
      critical: true,
      timeoutMs: this.config.databaseConnectTimeoutMs + BACKSTOP_MS,
      run: (signal) => this.connect(signal),
    });
  }

  beforeApplicationShutdown(): void {
    this.closing.abort();
  }

  /**
   * Connects and runs the migrations of this release that the database has not run yet (one
   * instance at a time: see runOrdersMigrations). PostgreSQL is retried with backoff
   * until DATABASE_CONNECT_TIMEOUT_MS has passed since the first attempt; SQLite, a local file
   * that either opens or does not, is tried once.
   */
  async connect(signal: AbortSignal): Promise<void> {
    const budgetMs = this.config.databaseConnectTimeoutMs;
    const startedAt = this.clock.now();
    const stop = new AbortController();
    const cancelBudget = this.clock.setTimer(budgetMs, () => stop.abort());
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.closing.signal.addEventListener('abort', onAbort, { once: true });
    let lastError: unknown;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const migrated = await untilAborted(this.connectOnce(), stop.signal);
          this.isConnected = true;
          if (migrated.length > 0) {
            this.logger.log({
              event: SampleEvent.DATABASE_MIGRATED,
              dependency: this.config.database.kind,
              schema_phase: this.config.ordersSchemaPhase,
              migrations: migrated,
            });
          }
          this.logger.log({
            event: SampleEvent.DATABASE_CONNECTED,
            dependency: this.config.database.kind,
            schema_phase: this.config.ordersSchemaPhase,
            attempts: attempt,
            duration_ms: this.clock.now() - startedAt,
          });
          return;
        } catch (error) {
          // An attempt cut short by the budget says nothing about the database.
          if (!stop.signal.aborted) lastError = error;
          // The last wait is cut short so that one more attempt fits in the budget.
          const remainingMs = budgetMs - (this.clock.now() - startedAt) - LAST_ATTEMPT_MS;
          const retry = this.config.database.kind === 'postgres' && remainingMs > 0;
          if (!retry || stop.signal.aborted) throw this.giveUp(attempt, lastError);
          const delayMs = Math.min(retryDelayMs(attempt, Math.random), remainingMs);
          this.logger.warn({
            event: SampleEvent.DATABASE_CONNECT_FAILED,
            dependency: this.config.database.kind,
            attempt,
            retry_in_ms: delayMs,
            error: this.describe(lastError),
          });
          await this.clock.sleep(delayMs, stop.signal);
          if (stop.signal.aborted) throw this.giveUp(attempt, lastError);
        }
      }
    } finally {
      cancelBudget();
      signal.removeEventListener('abort', onAbort);
      this.closing.signal.removeEventListener('abort', onAbort);
    }
  }

  /** The names of the migrations it ran. */
  private async connectOnce(): Promise<string[]> {
    // A DataSource whose initialize() failed can be initialised again; one that succeeded while
    // the migrations failed (a lock timeout) must not be.
    if (!this.dataSource.isInitialized) await this.dataSource.initialize();
    return this.migrate(this.dataSource);
  }

  private giveUp(attempts: number, lastError: unknown): Error {
    if (this.closing.signal.aborted) return new Error('database connection abandoned: the application is shutting down');
    const last = lastError === undefined ? 'no answer' : this.describe(lastError).message;
    const database = this.config.database;
    const error =
      database.kind === 'postgres'
        ? new DatabaseUnavailableError(
            `PostgreSQL did not answer within ${this.config.databaseConnectTimeoutMs} ms (DATABASE_CONNECT_TIMEOUT_MS), ` +
              `${attempts} attempt${attempts === 1 ? '' : 's'}; last error: ${last}. ` +
              'Check DATABASE_URL and that the database is running, or allow it more time with DATABASE_CONNECT_TIMEOUT_MS.',
          )
        : new DatabaseUnavailableError(
            `the SQLite database ${database.file} could not be opened: ${last}. Check DATABASE_URL (sqlite:<file>) and that its folder is writable.`,
          );
    writeStartupFailure(error.message);
    return error;
  }

  /** Log fields of a driver error, with the connection string's password masked. */
  private describe(error: unknown): { message: string; code?: string } {
    const { message, code } = describeError(error);
    return { message: redactSecrets(message, this.secrets), ...(code === undefined ? {} : { code }) };
  }
}
