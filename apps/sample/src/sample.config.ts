/**
 * The sample's static settings, read once from the environment with every invalid variable named
 * in one error: the service never starts half-configured.
 */
export interface SampleConfig {
  readonly port: number;
  readonly host: string;
  readonly adapter: 'express' | 'fastify';
  readonly drainDelayMs: number | undefined;
  readonly shutdownTimeoutMs: number | undefined;
  readonly minReadyDelayMs: number | undefined;
  readonly hardDeadlineMs: number | undefined;
  readonly warmupDelayMs: number;
  readonly color: string | undefined;
  readonly version: string | undefined;
  readonly logLevel: string;
  readonly logPretty: boolean;
  /** Where the orders live: embedded SQLite (in memory unless a file is named) or PostgreSQL. */
  readonly database: SampleDatabase;
  /**
   * DATABASE_CONNECT_TIMEOUT_MS: how long start-up keeps trying to reach PostgreSQL (backing off
   * between attempts) before it gives up and the instance exits 1. The server answers the
   * liveness probe meanwhile, so a database that starts after the service costs no restart.
   */
  readonly databaseConnectTimeoutMs: number;
  /** REDIS_URL: an optional read-through cache of single orders. */
  readonly redisUrl: string | undefined;
  /** PORT_MANAGEMENT: the probes move to this port (on LISTEN_HOST) and leave the public one. */
  readonly managementPort: number | undefined;
  /** REGISTRY_DRIVER, CONSUL_URL, ETCD_ENDPOINTS (comma-separated), APP_TRACK. */
  readonly registry: {
    readonly driver: 'none' | 'consul' | 'etcd';
    readonly consulUrl: string | undefined;
    readonly etcdEndpoints: string[] | undefined;
    readonly track: 'stable' | 'canary';
  };
  readonly health: {
    readonly intervalMs: number | undefined;
    readonly timeoutMs: number | undefined;
    readonly failureThreshold: number | undefined;
    readonly successThreshold: number | undefined;
  };
}

export type SampleDatabase = { readonly kind: 'sqlite'; readonly file: string } | { readonly kind: 'postgres'; readonly url: string };

/** Embedded SQLite in memory: `npm start` needs no set-up, and instances started side by side share no file. */
export const SQLITE_IN_MEMORY = ':memory:';

/** The lifecycle's own default budget for one warm-up task. */
export const DEFAULT_DATABASE_CONNECT_TIMEOUT_MS = 30_000;

export class SampleConfigError extends Error {
  readonly code = 'SAMPLE_INVALID_ENV';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid environment (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SampleConfigError';
  }
}

/**
 * Every variable the sample reads, and nothing else. None of them is set by npm (`npm_*`, `COLOR`,
 * `NODE`, `INIT_CWD`), Node (`NODE_*`), a shell (`HOST` in zsh, `HOSTNAME`, ...), or Kubernetes
 * (`<SERVICE>_PORT*` and `<SERVICE>_SERVICE_*` for every Service in the namespace, hence
 * `PORT_MANAGEMENT` rather than `MANAGEMENT_PORT`): `npm start` and a pod get exactly what they were given.
 */
export const SAMPLE_ENV_VARIABLES = [
  'PORT',
  'LISTEN_HOST',
  'ADAPTER',
  'DRAIN_DELAY_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'MIN_READY_DELAY_MS',
  'HARD_DEADLINE_MS',
  'WARMUP_DELAY_MS',
  'APP_COLOR',
  'APP_VERSION',
  'APP_TRACK',
  'LOG_LEVEL',
  'LOG_PRETTY',
  'DATABASE_URL',
  'DATABASE_CONNECT_TIMEOUT_MS',
  'REDIS_URL',
  'PORT_MANAGEMENT',
  'HEALTH_INTERVAL_MS',
  'HEALTH_TIMEOUT_MS',
  'HEALTH_FAILURE_THRESHOLD',
  'HEALTH_SUCCESS_THRESHOLD',
  'REGISTRY_DRIVER',
  'CONSUL_URL',
  'ETCD_ENDPOINTS',
] as const;

export type SampleEnvVariable = (typeof SAMPLE_ENV_VARIABLES)[number];

export function loadSampleConfig(processEnv: NodeJS.ProcessEnv = process.env): SampleConfig {
  const env: Partial<Record<SampleEnvVariable, string>> = {};
  for (const name of SAMPLE_ENV_VARIABLES) env[name] = processEnv[name];
  const problems: string[] = [];
  const int = (name: SampleEnvVariable, min: number, max: number): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return undefined;
    }
    return value;
  };
  const adapter = env.ADAPTER ?? 'express';
  if (adapter !== 'express' && adapter !== 'fastify')
    problems.push(`ADAPTER must be "express" or "fastify" (got ${JSON.stringify(adapter)})`);
  const logPretty = env.LOG_PRETTY ?? 'false';
  if (logPretty !== 'true' && logPretty !== 'false')
    problems.push(`LOG_PRETTY must be "true" or "false" (got ${JSON.stringify(logPretty)})`);
  const registryDriver = env.REGISTRY_DRIVER || 'none';
  if (registryDriver !== 'none' && registryDriver !== 'consul' && registryDriver !== 'etcd')
    problems.push(`REGISTRY_DRIVER must be "none", "consul" or "etcd" (got ${JSON.stringify(registryDriver)})`);
  const track = env.APP_TRACK || 'stable';
  if (track !== 'stable' && track !== 'canary') problems.push(`APP_TRACK must be "stable" or "canary" (got ${JSON.stringify(track)})`);
  const config: SampleConfig = {
    port: int('PORT', 0, 65535) ?? 3000,
    host: env.LISTEN_HOST || '0.0.0.0',
    adapter: adapter as SampleConfig['adapter'],
    drainDelayMs: int('DRAIN_DELAY_MS', 0, 600_000),
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 0, 600_000),
    minReadyDelayMs: int('MIN_READY_DELAY_MS', 0, 600_000),
    hardDeadlineMs: int('HARD_DEADLINE_MS', 0, 3_600_000),
    warmupDelayMs: int('WARMUP_DELAY_MS', 0, 600_000) ?? 0,
    color: env.APP_COLOR || undefined,
    version: env.APP_VERSION || undefined,
    logLevel: env.LOG_LEVEL || 'info',
    logPretty: logPretty === 'true',
    database: parseDatabaseUrl(env.DATABASE_URL, problems),
    databaseConnectTimeoutMs: int('DATABASE_CONNECT_TIMEOUT_MS', 100, 3_600_000) ?? DEFAULT_DATABASE_CONNECT_TIMEOUT_MS,
    redisUrl: parseRedisUrl(env.REDIS_URL, problems),
    managementPort: int('PORT_MANAGEMENT', 0, 65535),
    registry: {
      driver: registryDriver as SampleConfig['registry']['driver'],
      consulUrl: env.CONSUL_URL || undefined,
      etcdEndpoints: env.ETCD_ENDPOINTS
        ? env.ETCD_ENDPOINTS.split(',')
            .map((e) => e.trim())
            .filter(Boolean)
        : undefined,
      track: track as SampleConfig['registry']['track'],
    },
    health: {
      intervalMs: int('HEALTH_INTERVAL_MS', 10, 3_600_000),
      timeoutMs: int('HEALTH_TIMEOUT_MS', 1, 600_000),
      failureThreshold: int('HEALTH_FAILURE_THRESHOLD', 1, 1000),
      successThreshold: int('HEALTH_SUCCESS_THRESHOLD', 1, 1000),
    },
  };
  if (config.managementPort !== undefined && config.managementPort !== 0 && config.managementPort === config.port) {
    problems.push(`PORT_MANAGEMENT must differ from PORT (both ${config.port}); the probes move off the public port`);
  }
  if (problems.length > 0) throw new SampleConfigError(problems);
  return config;
}

// The URLs below carry credentials: a problem names the variable and the expected form, never the value.
function parseDatabaseUrl(raw: string | undefined, problems: string[]): SampleDatabase {
  if (raw === undefined || raw === '') return { kind: 'sqlite', file: SQLITE_IN_MEMORY };
  if (raw.startsWith('sqlite:')) {
    const file = raw.slice('sqlite:'.length);
    if (file === '') problems.push('DATABASE_URL "sqlite:" needs a file (sqlite:./data/orders.db) or sqlite::memory:');
    return { kind: 'sqlite', file: file || SQLITE_IN_MEMORY };
  }
  if (/^postgres(ql)?:\/\//.test(raw)) {
    try {
      new URL(raw);
      return { kind: 'postgres', url: raw };
    } catch {
      problems.push('DATABASE_URL is not a valid URL (expected postgres://user:password@host:5432/database)');
    }
  } else {
    problems.push('DATABASE_URL must start with postgres://, postgresql:// or sqlite: (e.g. sqlite:./data/orders.db)');
  }
  return { kind: 'sqlite', file: SQLITE_IN_MEMORY };
}

function parseRedisUrl(raw: string | undefined, problems: string[]): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (/^rediss?:\/\//.test(raw)) {
    try {
      new URL(raw);
      return raw;
    } catch {
      // reported below
    }
  }
  problems.push('REDIS_URL must be a redis:// or rediss:// URL (e.g. redis://:password@127.0.0.1:6379/0)');
  return undefined;
}
