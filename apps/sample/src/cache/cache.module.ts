import { Global, Inject, Injectable, Logger, Module, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { redactSecrets, urlSecrets } from '@nest-rollout/health';
import { Redis } from 'ioredis';
import { sampleConfig, type SampleConfig } from '../sample.config';

/** The application's one Redis client, or null without REDIS_URL; the readiness check borrows it. */
export const REDIS_CLIENT = 'SAMPLE:REDIS_CLIENT';

/** Time a cache call may take before the request goes to the database instead. */
const CACHE_COMMAND_TIMEOUT_MS = 500;

export function createRedisClient(url: string): Redis {
  return new Redis(url, {
    // Connected by a warm-up task, so that a Redis down at boot leaves the instance unready, not dead.
    lazyConnect: true,
    // A request must never queue behind a reconnect: with the cache away it reads the database.
    enableOfflineQueue: false,
    commandTimeout: CACHE_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
    connectionName: 'nest-rollout-sample',
  });
}

/** A read-through cache of single orders; every failure falls back to the database. */
@Injectable()
export class OrdersCache implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('OrdersCache');
  private readonly ttlSeconds = 60;
  /** One log line per outage, not one per reconnect attempt. */
  private failing = false;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: Redis | null,
    @Inject(sampleConfig.KEY) private readonly config: SampleConfig,
    private readonly lifecycle: LifecycleService,
  ) {}

  onModuleInit(): void {
    const redis = this.redis;
    if (!redis) return;
    const secrets = urlSecrets(this.config.redisUrl);
    redis.on('error', (error: Error) => {
      if (this.failing) return;
      this.failing = true;
      this.logger.warn({ event: 'cache.unavailable', error: redactSecrets(error.message, secrets) });
    });
    redis.on('ready', () => {
      if (this.failing) this.logger.log({ event: 'cache.available' });
      this.failing = false;
    });
    this.lifecycle.registerWarmupTask({
      name: 'cache.connect',
      critical: false,
      timeoutMs: 5000,
      run: () => redis.connect(),
    });
  }

  async get<T>(key: string): Promise<T | undefined> {
    if (this.redis?.status !== 'ready') return undefined;
    try {
      const text = await this.redis.get(key);
      return text === null ? undefined : (JSON.parse(text) as T);
    } catch {
      return undefined;
    }
  }

  set(key: string, value: unknown): void {
    if (this.redis?.status !== 'ready') return;
    this.redis.set(key, JSON.stringify(value), 'EX', this.ttlSeconds).catch(() => undefined);
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.redis || this.redis.status === 'end') return;
    // QUIT lets Redis finish what it is doing; a Redis that does not answer is cut off.
    await Promise.race([this.redis.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    this.redis.disconnect();
  }
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS_CLIENT,
      inject: [sampleConfig.KEY],
      useFactory: (config: SampleConfig) => (config.redisUrl ? createRedisClient(config.redisUrl) : null),
    },
    OrdersCache,
  ],
  exports: [REDIS_CLIENT, OrdersCache],
})
export class CacheModule {}
