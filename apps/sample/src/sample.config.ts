import { isIP } from 'node:net';
import type { ConfigType } from '@nestjs/config';
import { envConfig } from '@nest-rollout/config';
import { z } from 'zod';
import { DEFAULT_ORDERS_SCHEMA_PHASE, ORDERS_SCHEMA_PHASES } from './database/orders-schema';
import { DEFAULT_DYNAMIC_CONFIG_FILE } from './sample.dynamic-config';

/** Embedded SQLite in memory: `npm start` needs no set-up, and instances started side by side share no file. */
export const SQLITE_IN_MEMORY = ':memory:';

/** The lifecycle's own default budget for one warm-up task. */
export const DEFAULT_DATABASE_CONNECT_TIMEOUT_MS = 30_000;

export type SampleDatabase = { readonly kind: 'sqlite'; readonly file: string } | { readonly kind: 'postgres'; readonly url: string };

// Messages state the expected form and never the value: DATABASE_URL and REDIS_URL carry passwords.

function wholeNumber(min: number, max: number) {
  return z
    .string()
    .refine((raw) => Number.isInteger(Number(raw)) && Number(raw) >= min && Number(raw) <= max, {
      message: `must be a whole number from ${min} to ${max}`,
    })
    .transform(Number);
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const quoted = values.map((v) => `"${v}"`);
  return z.enum(values, { error: `must be ${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` });
}

const databaseUrl = z.string().superRefine((raw, ctx) => {
  if (raw.startsWith('sqlite:')) {
    if (raw === 'sqlite:') ctx.addIssue({ code: 'custom', message: '"sqlite:" needs a file (sqlite:./data/orders.db) or sqlite::memory:' });
  } else if (!/^postgres(ql)?:\/\//.test(raw)) {
    ctx.addIssue({ code: 'custom', message: 'must start with postgres://, postgresql:// or sqlite: (e.g. sqlite:./data/orders.db)' });
  } else if (!URL.canParse(raw)) {
    ctx.addIssue({ code: 'custom', message: 'is not a valid URL (expected postgres://user:password@host:5432/database)' });
  }
});

const httpUrl = z.string().refine((raw) => /^https?:\/\//.test(raw) && URL.canParse(raw), {
  message: 'must be an http:// or https:// URL',
});

/** The variables the object-level rule reads: it runs only when each of them is valid on its own. */
const CROSS_CHECKED = new Set(['PORT', 'PORT_MANAGEMENT', 'PORT_GRPC', 'CANARY_JWT_SECRET', 'CANARY_JWKS_URL']);

function cidrList(raw: string): string[] {
  return raw.split(',').map((entry) => entry.trim());
}

function forceTrustOf(raw: string): 'none' | 'any' | string[] {
  return raw === 'none' || raw === 'any' ? raw : cidrList(raw);
}

function isCidr(value: string): boolean {
  const [address, bits, extra] = value.split('/');
  const family = isIP(address);
  return extra === undefined && family !== 0 && /^\d{1,3}$/.test(bits ?? '') && Number(bits) <= (family === 4 ? 32 : 128);
}

const redisUrl = z.string().refine((raw) => /^rediss?:\/\//.test(raw) && URL.canParse(raw), {
  message: 'must be a redis:// or rediss:// URL (e.g. redis://:password@127.0.0.1:6379/0)',
});

/**
 * Every variable the sample reads, and nothing else (the keys of this schema are the list). None
 * of them is set by npm (`npm_*`, `COLOR`, `NODE`, `INIT_CWD`), Node (`NODE_*`), a shell (`HOST` in
 * zsh, `HOSTNAME`, ...), or Kubernetes (`<SERVICE>_PORT*` and `<SERVICE>_SERVICE_*` for every
 * Service in the namespace, hence `PORT_MANAGEMENT` rather than `MANAGEMENT_PORT`): `npm start` and
 * a pod get exactly what they were given. An empty variable counts as unset.
 */
export const sampleEnvSchema = z
  .object({
    PORT: wholeNumber(0, 65535).default(3000),
    LISTEN_HOST: z.string().default('0.0.0.0'),
    ADAPTER: oneOf(['express', 'fastify']).default('express'),
    DRAIN_DELAY_MS: wholeNumber(0, 600_000).optional(),
    SHUTDOWN_TIMEOUT_MS: wholeNumber(0, 600_000).optional(),
    MIN_READY_DELAY_MS: wholeNumber(0, 600_000).optional(),
    HARD_DEADLINE_MS: wholeNumber(0, 3_600_000).optional(),
    WARMUP_DELAY_MS: wholeNumber(0, 600_000).default(0),
    APP_COLOR: z.string().optional(),
    APP_VERSION: z.string().optional(),
    APP_TRACK: oneOf(['stable', 'canary']).default('stable'),
    LOG_LEVEL: z.string().default('info'),
    LOG_PRETTY: oneOf(['true', 'false']).default('false'),
    /** Unset: embedded SQLite in memory; `sqlite:<file>`; `postgres://…`. */
    DATABASE_URL: databaseUrl.optional(),
    /**
     * How long start-up keeps trying to reach PostgreSQL (backing off between attempts) before it
     * gives up and the instance exits 1. The server answers the liveness probe meanwhile, so a
     * database that starts after the service costs no restart.
     */
    DATABASE_CONNECT_TIMEOUT_MS: wholeNumber(100, 3_600_000).default(DEFAULT_DATABASE_CONNECT_TIMEOUT_MS),
    /** An optional read-through cache of single orders. */
    REDIS_URL: redisUrl.optional(),
    /** The probes (and /metrics) move to this port, on LISTEN_HOST, and leave the public one. */
    PORT_MANAGEMENT: wholeNumber(0, 65535).optional(),
    HEALTH_INTERVAL_MS: wholeNumber(10, 3_600_000).optional(),
    HEALTH_TIMEOUT_MS: wholeNumber(1, 600_000).optional(),
    HEALTH_FAILURE_THRESHOLD: wholeNumber(1, 1000).optional(),
    HEALTH_SUCCESS_THRESHOLD: wholeNumber(1, 1000).optional(),
    REGISTRY_DRIVER: oneOf(['none', 'consul', 'etcd']).default('none'),
    CONSUL_URL: z.string().optional(),
    /** Comma-separated. */
    ETCD_ENDPOINTS: z.string().optional(),
    /**
     * A canary instance this stable instance forwards canary decisions to, when no registry finds
     * one (`http://orders-canary:3000`). With REGISTRY_DRIVER set and no CANARY_URL, canary
     * instances come from the registry (meta `track=canary`).
     */
    CANARY_URL: httpUrl.optional(),
    /** HMAC secret (HS256) that verifies the tokens whose claims the canary rules read. */
    CANARY_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    /** JWKS URL of the token issuer (RS256, PS256, ES256 or EdDSA), instead of CANARY_JWT_SECRET. */
    CANARY_JWKS_URL: httpUrl.optional(),
    /**
     * Who may force a side with `x-canary: always|never`: `none`, `any`, or comma-separated CIDRs
     * of the proxies allowed to (`10.0.0.0/8,127.0.0.1/32`).
     */
    CANARY_FORCE_TRUST: z
      .string()
      .default('none')
      .refine((raw) => raw === 'none' || raw === 'any' || cidrList(raw).every(isCidr), {
        message: 'must be "none", "any" or comma-separated CIDRs (10.0.0.0/8,127.0.0.1/32)',
      }),
    /** The dynamic configuration (degrade switches, canary rules): a YAML file, watched and hot-reloaded. */
    DYNAMIC_CONFIG_FILE: z.string().default(DEFAULT_DYNAMIC_CONFIG_FILE),
    /**
     * The orders and grpc.health.v1 over gRPC on this port too (on LISTEN_HOST). Unset, the
     * default: no gRPC server. A fixed default port would collide as soon as two instances share a
     * host (a blue-green pair, the tests), and a service without gRPC clients should not open one.
     * Not `GRPC_PORT`: Kubernetes sets that in every pod of a namespace with a Service named `grpc`.
     */
    PORT_GRPC: wholeNumber(1, 65535).optional(),
    /**
     * Which release of the orders schema change this instance runs (`before`, `expand`, `migrate`,
     * `retire`, `contract`; docs/migrations.md): the migrations it applies at start-up and the
     * columns it writes and reads. The latest by default; an earlier one only to run an older
     * release beside a newer one, as a rolling update does.
     */
    ORDERS_SCHEMA_PHASE: oneOf(ORDERS_SCHEMA_PHASES).default(DEFAULT_ORDERS_SCHEMA_PHASE),
  })
  .superRefine(
    (env, ctx) => {
      if (env.CANARY_JWT_SECRET !== undefined && env.CANARY_JWKS_URL !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['CANARY_JWKS_URL'], message: 'set CANARY_JWT_SECRET or CANARY_JWKS_URL, not both' });
      }
      if (env.PORT_MANAGEMENT !== undefined && env.PORT_MANAGEMENT !== 0 && env.PORT_MANAGEMENT === env.PORT) {
        ctx.addIssue({
          code: 'custom',
          path: ['PORT_MANAGEMENT'],
          message: `must differ from PORT (both ${env.PORT}); the probes move off the public port`,
        });
      }
      if (env.PORT_GRPC !== undefined && (env.PORT_GRPC === env.PORT || env.PORT_GRPC === env.PORT_MANAGEMENT)) {
        ctx.addIssue({
          code: 'custom',
          path: ['PORT_GRPC'],
          message: `must differ from PORT and PORT_MANAGEMENT (${env.PORT_GRPC} is taken); gRPC has a port of its own`,
        });
      }
    },
    // Zod skips object rules after any other problem; these need only the variables they compare,
    // so that one error still lists every problem.
    { when: ({ issues }) => !issues.some((issue) => CROSS_CHECKED.has(String(issue.path?.[0]))) },
  );

/**
 * The sample's static settings, validated when the process starts, with every invalid variable
 * named in one `EnvValidationError`: the service never starts half-configured. Injected with
 * `@Inject(sampleConfig.KEY) config: SampleConfig`; main.ts calls `sampleConfig.parse()` itself,
 * since the adapter, the logger and the port are chosen before Nest starts.
 */
export const sampleConfig = envConfig('sample', sampleEnvSchema, (env) => ({
  port: env.PORT,
  host: env.LISTEN_HOST,
  adapter: env.ADAPTER,
  drainDelayMs: env.DRAIN_DELAY_MS,
  shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
  minReadyDelayMs: env.MIN_READY_DELAY_MS,
  hardDeadlineMs: env.HARD_DEADLINE_MS,
  warmupDelayMs: env.WARMUP_DELAY_MS,
  color: env.APP_COLOR,
  version: env.APP_VERSION,
  logLevel: env.LOG_LEVEL,
  logPretty: env.LOG_PRETTY === 'true',
  /** Where the orders live: embedded SQLite (in memory unless a file is named) or PostgreSQL. */
  database: databaseOf(env.DATABASE_URL),
  databaseConnectTimeoutMs: env.DATABASE_CONNECT_TIMEOUT_MS,
  redisUrl: env.REDIS_URL,
  managementPort: env.PORT_MANAGEMENT,
  registry: {
    driver: env.REGISTRY_DRIVER,
    consulUrl: env.CONSUL_URL,
    etcdEndpoints: env.ETCD_ENDPOINTS?.split(',')
      .map((endpoint) => endpoint.trim())
      .filter(Boolean),
    track: env.APP_TRACK,
  },
  canary: {
    url: env.CANARY_URL,
    jwtSecret: env.CANARY_JWT_SECRET,
    jwksUrl: env.CANARY_JWKS_URL,
    /** `none`, `any`, or the proxies' CIDRs. */
    forceTrust: forceTrustOf(env.CANARY_FORCE_TRUST),
  },
  health: {
    intervalMs: env.HEALTH_INTERVAL_MS,
    timeoutMs: env.HEALTH_TIMEOUT_MS,
    failureThreshold: env.HEALTH_FAILURE_THRESHOLD,
    successThreshold: env.HEALTH_SUCCESS_THRESHOLD,
  },
  dynamicConfigFile: env.DYNAMIC_CONFIG_FILE,
  /** The gRPC server's port; undefined: no gRPC. */
  grpcPort: env.PORT_GRPC,
  ordersSchemaPhase: env.ORDERS_SCHEMA_PHASE,
}));

export type SampleConfig = ConfigType<typeof sampleConfig>;

/** Every variable the sample reads: the keys of its schema. */
export const SAMPLE_ENV_VARIABLES = sampleConfig.variables;

export type SampleEnvVariable = (typeof SAMPLE_ENV_VARIABLES)[number];

function databaseOf(url: string | undefined): SampleDatabase {
  if (url === undefined) return { kind: 'sqlite', file: SQLITE_IN_MEMORY };
  if (url.startsWith('sqlite:')) return { kind: 'sqlite', file: url.slice('sqlite:'.length) };
  return { kind: 'postgres', url };
}
