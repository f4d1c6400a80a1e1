import { isIP } from 'node:net';
import {
  backoffOptions,
  DEFAULT_BACKOFF_POLICY,
  EVEN_WITH_OTHER_PROBLEMS,
  optionGroup,
  parseModuleOptions,
  rejected,
  withoutDefault,
} from '@nest-rollout/lifecycle';
import type { BackoffOptions } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import { RegistryOptionsError } from './registry.errors';
import type { RegistryDriverKind, ReleaseTrack } from './registry.types';

export const DEFAULT_REGISTRY_OPTIONS = {
  driver: 'none',
  register: true,
  track: 'stable',
  operationTimeoutMs: 3_000,
  deregisterTimeoutMs: 3_000,
  antiEntropyIntervalMs: 30_000,
  retry: DEFAULT_BACKOFF_POLICY,
  consul: {
    url: 'http://127.0.0.1:8500',
    check: {
      type: 'http',
      path: '/health/ready',
      scheme: 'http',
      tlsSkipVerify: false,
      intervalMs: 10_000,
      timeoutMs: 2_000,
      ttlMs: 15_000,
      deregisterCriticalServiceAfterMs: 60_000,
    },
  },
  etcd: { endpoints: ['http://127.0.0.1:2379'], keyPrefix: '/services/', leaseTtlSeconds: 10 },
  discovery: { passingOnly: true, onEmpty: 'keep-last-known', keepLastKnownMaxMs: 60_000, waitMs: 30_000, minQueryIntervalMs: 500 },
} as const;

/** Consul's floor for deregister_critical_service_after; lower values are silently raised by the agent. */
export const CONSUL_MIN_DEREGISTER_CRITICAL_MS = 60_000;
/** Consul's longest blocking query. */
const CONSUL_MAX_WAIT_MS = 600_000;
/** Meta keys this module sets itself. */
export const RESERVED_META_KEYS: readonly string[] = ['version', 'color', 'track'];
const DRIVERS = ['consul', 'etcd', 'none'] as const satisfies readonly RegistryDriverKind[];
const TRACKS = ['stable', 'canary'] as const satisfies readonly ReleaseTrack[];
const DNS_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
const HOST_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const ETCD_KEY_PREFIX = /^\/([A-Za-z0-9_.-]+\/)*$/;
const LIVENESS_PATH = /\/(live|liveness|livez)\/?$/;
// Consul's rules for service meta: keys of letters, digits, "-" and "_" (up to 128), values up to 512, at most 64 pairs.
const META_KEY = /^[a-zA-Z0-9_-]{1,128}$/;
const MAX_META_PAIRS = 64;
const MAX_TIMER_MS = 2 ** 31 - 1;

const flag = z.boolean({ error: 'must be a boolean' });

function wholeNumber(min: number, max: number, message: string) {
  return z.number({ error: message }).int(message).min(min, message).max(max, message);
}

function wholeMs(min: number) {
  return wholeNumber(min, MAX_TIMER_MS, `must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS}`);
}

function nonBlank(message: string) {
  return z.string({ error: message }).regex(/\S/, message);
}

function httpUrl(message: string) {
  return z.string({ error: message }).refine(isHttpUrlWithoutPath, message);
}

const d = DEFAULT_REGISTRY_OPTIONS;

const pem = z.union([z.string(), z.instanceof(Buffer)], { error: 'must be a PEM string or Buffer' });

const registryTlsSchema = optionGroup({
  /** CA bundle that signed the registry's certificate. */
  ca: pem.optional(),
  /** Client certificate, for mutual TLS. */
  cert: pem.optional(),
  /** Client private key, for mutual TLS. */
  key: pem.optional(),
  /**
   * Consul only: verify the agent's certificate. Turn off only on a test bench.
   * @default true
   */
  rejectUnauthorized: flag.optional(),
}).refine((tls) => (tls.cert === undefined) === (tls.key === undefined), {
  error: 'cert and key go together (mutual TLS needs both)',
  ...EVEN_WITH_OTHER_PROBLEMS,
});

const consulCheckSchema = optionGroup({
  /**
   * `http`: the agent GETs `http://<address>:<port><path>` every `intervalMs`.
   * `ttl`: this instance reports its own health every `ttlMs / 3` (pass while the lifecycle is
   * READY and `isHealthy` agrees); a TTL check is never registered without that heartbeat.
   * @default 'http'
   */
  type: z.enum(['http', 'ttl'], { error: 'must be "http" or "ttl"' }).default(d.consul.check.type),
  /**
   * Path of the readiness probe (HTTP checks). Never the liveness probe: it answers 200 while draining.
   * @default '/health/ready'
   */
  path: z
    .string({ error: 'must start with "/"' })
    .startsWith('/', 'must start with "/"')
    .refine(
      (path) => !LIVENESS_PATH.test(path),
      'points at a liveness probe, which answers 200 while the instance drains, so Consul would keep routing to it; point the check at the readiness probe (/health/ready)',
    )
    .default(d.consul.check.path),
  /** @default 'http' */
  scheme: z.enum(['http', 'https'], { error: 'must be "http" or "https"' }).default(d.consul.check.scheme),
  /** HTTPS checks: skip verifying the instance's certificate. @default false */
  tlsSkipVerify: flag.default(d.consul.check.tlsSkipVerify),
  /**
   * Time between two HTTP checks (Consul clamps anything below 1 s).
   * @default 10000
   */
  intervalMs: wholeMs(1000).default(d.consul.check.intervalMs),
  /**
   * Timeout of one HTTP check; below `intervalMs`.
   * @default 2000
   */
  timeoutMs: wholeMs(1).default(d.consul.check.timeoutMs),
  /**
   * TTL checks: the check turns critical when no heartbeat arrives within this time.
   * @default 15000
   */
  ttlMs: wholeMs(1000).default(d.consul.check.ttlMs),
  /**
   * Consul removes the instance once its check has been critical this long: the safety net for a
   * process killed with SIGKILL. Consul's minimum is 1 minute (its reaper runs every 30 s).
   * @default 60000
   */
  deregisterCriticalServiceAfterMs: wholeMs(1)
    .min(
      CONSUL_MIN_DEREGISTER_CRITICAL_MS,
      `must be at least ${CONSUL_MIN_DEREGISTER_CRITICAL_MS} (Consul's minimum is 1 minute; lower values are raised by the agent)`,
    )
    .default(d.consul.check.deregisterCriticalServiceAfterMs),
  /**
   * TTL checks: extra health condition on top of the lifecycle being READY (e.g. the health
   * module's readiness). A heartbeat reports `fail` while it returns false.
   */
  isHealthy: withoutDefault(
    // z.function() would wrap the callback in a validating proxy; it is only checked to be callable.
    z.custom<() => boolean | Promise<boolean>>((value) => typeof value === 'function', 'must be a function'),
  ),
});

const consulSchema = optionGroup({
  /**
   * The Consul agent to register with; normally the agent on this node. Every call for one
   * registration (register, heartbeats, deregister) goes to the same agent: the host name is resolved
   * once per registration, because Consul deregisters only on the agent that registered.
   * @default 'http://127.0.0.1:8500'
   */
  url: httpUrl('must be an http:// or https:// URL of a Consul agent, without a path')
    .overwrite((url) => url.replace(/\/$/, ''))
    .default(d.consul.url),
  /** ACL token (`X-Consul-Token`); needs `service:write` on the service, `service:read` for discovery. */
  token: withoutDefault(nonBlank('must be a non-empty string')),
  /** Datacenter for discovery queries. @default the agent's */
  datacenter: withoutDefault(nonBlank('must be a non-empty string')),
  /** TLS to the agent (an `https://` url). */
  tls: withoutDefault(registryTlsSchema),
  /** The check that decides whether this instance gets traffic. */
  check: consulCheckSchema.prefault({}),
});

const etcdSchema = optionGroup({
  /**
   * etcd client URLs.
   * @default ['http://127.0.0.1:2379']
   */
  endpoints: z
    .array(httpUrl('must be an http:// or https:// URL such as "http://127.0.0.1:2379"'), {
      error: 'must be a non-empty array of URLs such as "http://127.0.0.1:2379"',
    })
    .min(1, 'must be a non-empty array of URLs such as "http://127.0.0.1:2379"')
    .readonly()
    .prefault(d.etcd.endpoints),
  /**
   * Keys are `<keyPrefix><service>/<instanceId>`, holding the instance as JSON.
   * @default '/services/'
   */
  keyPrefix: z
    .string({ error: 'must start and end with "/" and hold letters, digits, "_", "." or "-"' })
    .regex(ETCD_KEY_PREFIX, 'must start and end with "/" and hold letters, digits, "_", "." or "-"')
    .default(d.etcd.keyPrefix),
  /**
   * TTL of the lease the key is attached to: a process that dies without deregistering disappears
   * after at most this long. Kept alive every TTL / 3. At least 2: etcd silently raises any TTL below
   * its minimum (about 1.5 s with default election settings).
   * @default 10
   */
  leaseTtlSeconds: wholeNumber(2, 3600, 'must be a whole number of seconds from 2 to 3600').default(d.etcd.leaseTtlSeconds),
  /** etcd user, when authentication is enabled. */
  auth: withoutDefault(
    optionGroup(
      {
        username: z.string({ error: 'must be a non-empty string' }).min(1, 'must be a non-empty string'),
        password: z.string({ error: 'must be a string' }),
      },
      'must be { username, password } with a non-empty username',
    ),
  ),
  /** TLS to etcd (`https://` endpoints). */
  tls: withoutDefault(registryTlsSchema),
});

const discoverySchema = optionGroup({
  /**
   * Return only instances whose every check passes, unless a query asks otherwise.
   * @default true
   */
  passingOnly: flag.default(d.discovery.passingOnly),
  /**
   * What to do when the registry suddenly reports no instance of a service that had some: keep
   * serving the last known good set (a registry restart or an ACL mistake must not blackhole every
   * caller at once) for at most `keepLastKnownMaxMs`, or accept the empty set at once.
   * @default 'keep-last-known'
   */
  onEmpty: z.enum(['keep-last-known', 'accept'], { error: 'must be "keep-last-known" or "accept"' }).default(d.discovery.onEmpty),
  /** @default 60000 */
  keepLastKnownMaxMs: wholeMs(0).default(d.discovery.keepLastKnownMaxMs),
  /**
   * Consul blocking queries: how long the agent may hold one query (max 10 minutes).
   * @default 30000
   */
  waitMs: wholeMs(1000)
    .max(CONSUL_MAX_WAIT_MS, `must be at most ${CONSUL_MAX_WAIT_MS} (Consul's longest blocking query, 10 minutes)`)
    .default(d.discovery.waitMs),
  /**
   * Consul: minimum time between two queries for one service, so that a registry answering at once
   * (index reset, flapping) is not polled in a hot loop.
   * @default 500
   */
  minQueryIntervalMs: wholeMs(0).default(d.discovery.minQueryIntervalMs),
});

const registryOptionsSchema = optionGroup(
  {
    /**
     * `consul`, `etcd`, or `none` (nothing is registered; discovery finds nothing).
     * @default 'none'
     */
    driver: z.enum(DRIVERS, { error: 'must be "consul", "etcd" or "none"' }).default(d.driver),
    /**
     * Register this instance. `false` makes a discovery-only client (a gateway, a job).
     * @default true
     */
    register: flag.default(d.register),
    /** Logical service name (a DNS label). Required when registering. */
    service: withoutDefault(
      z
        .string({ error: 'must be a DNS label: letters, digits and "-", at most 63' })
        .regex(DNS_LABEL, 'must be a DNS label: letters, digits and "-", at most 63'),
    ),
    /**
     * Unique and stable id of this instance.
     * @default `${service}-${hostname()}-${port}`
     */
    instanceId: withoutDefault(
      z
        .string({ error: 'must be 1-128 letters, digits, "_", ".", ":" or "-"' })
        .regex(INSTANCE_ID, 'must be 1-128 letters, digits, "_", ".", ":" or "-"'),
    ),
    /**
     * Address advertised to callers.
     * @default the first non-loopback IPv4 address of this host
     */
    address: withoutDefault(
      z
        .string({ error: 'must be an IP address or host name that callers can reach, not a wildcard such as 0.0.0.0' })
        .refine(isReachableAddress, 'must be an IP address or host name that callers can reach, not a wildcard such as 0.0.0.0'),
    ),
    /**
     * Port advertised to callers.
     * @default the port the HTTP server listens on
     */
    port: withoutDefault(wholeNumber(1, 65535, 'must be a whole number from 1 to 65535')),
    /** @default [] */
    tags: z
      .array(
        z
          .string({ error: 'must be a non-empty string of at most 255 characters' })
          .refine((tag) => tag.trim() !== '' && tag.length <= 255, 'must be a non-empty string of at most 255 characters'),
        { error: 'must be an array of strings' },
      )
      .superRefine((tags, ctx) => {
        tags.forEach((tag, i) => {
          if (tags.indexOf(tag) < i) ctx.addIssue({ code: 'custom', path: [i], message: 'is listed twice' });
        });
      }, EVEN_WITH_OTHER_PROBLEMS)
      .readonly()
      .prefault([]),
    /**
     * Extra metadata. `version` and `color` come from LifecycleModule and `track` from the option below;
     * they cannot be set here.
     * @default {}
     */
    meta: z
      .record(
        z.string(),
        z.string({ error: 'must be a string of at most 512 characters' }).max(512, 'must be a string of at most 512 characters'),
        {
          error: 'must be an object of string values',
        },
      )
      .superRefine((meta, ctx) => {
        const keys = Object.keys(meta);
        for (const key of keys) {
          if (RESERVED_META_KEYS.includes(key)) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'is set by the module (version and color from LifecycleModule, track from the track option); remove it from meta',
            });
          } else if (!META_KEY.test(key) || key.startsWith('consul-')) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'key must be 1-128 letters, digits, "-" or "_", not starting with "consul-"',
            });
          }
        }
        if (keys.length + RESERVED_META_KEYS.length > MAX_META_PAIRS) {
          ctx.addIssue({
            code: 'custom',
            message: `must have at most ${MAX_META_PAIRS - RESERVED_META_KEYS.length} keys: with version, color and track, Consul allows ${MAX_META_PAIRS}`,
          });
        }
      }, EVEN_WITH_OTHER_PROBLEMS)
      .readonly()
      .prefault({}),
    /** @default 'stable' */
    track: z.enum(TRACKS, { error: 'must be "stable" or "canary"' }).default(d.track),
    /**
     * Bound of one register, heartbeat or anti-entropy call.
     * @default 3000
     */
    operationTimeoutMs: wholeMs(1).default(d.operationTimeoutMs),
    /**
     * Bound of one deregistration: a dead registry never delays the shutdown by more than this (at
     * DRAINING, and again in onApplicationShutdown).
     * @default 3000
     */
    deregisterTimeoutMs: wholeMs(1).default(d.deregisterTimeoutMs),
    /**
     * How often the registry is asked whether it still holds this instance; a lost entry (agent
     * restart, wiped etcd) is restored within this interval plus `operationTimeoutMs`.
     * @default 30000
     */
    antiEntropyIntervalMs: wholeMs(100).default(d.antiEntropyIntervalMs),
    /** Backoff of registration retries while the registry is unreachable. */
    retry: backoffOptions.prefault({}),
    /** Consul driver: the agent, its ACL token and the check that gates traffic. */
    consul: consulSchema.prefault({}),
    /** etcd driver: endpoints, key layout and lease. */
    etcd: etcdSchema.prefault({}),
    /** How RegistryClient discovers instances. */
    discovery: discoverySchema.prefault({}),
  },
  'options must be an object',
)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'driver', 'register', 'service')) return;
    if (options.register && options.driver !== 'none' && options.service === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['service'],
        message: `is required to register with driver "${options.driver}" (or set register: false for a discovery-only client)`,
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'driver', 'consul.check.type', 'consul.check.intervalMs', 'consul.check.timeoutMs')) return;
    const check = options.consul.check;
    if (options.driver === 'consul' && check.type === 'http' && check.timeoutMs >= check.intervalMs) {
      ctx.addIssue({ code: 'custom', path: ['consul', 'check', 'timeoutMs'], message: 'must be shorter than consul.check.intervalMs' });
    }
  }, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'driver', 'operationTimeoutMs', 'consul.check.type', 'consul.check.ttlMs')) return;
    const check = options.consul.check;
    if (options.driver === 'consul' && check.type === 'ttl' && check.ttlMs / 3 + options.operationTimeoutMs >= check.ttlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['consul', 'check', 'ttlMs'],
        message: `is too short for operationTimeoutMs: a heartbeat every ttlMs / 3 that takes up to operationTimeoutMs must land before the TTL runs out; raise ttlMs above ${1.5 * options.operationTimeoutMs} or lower operationTimeoutMs`,
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'driver', 'operationTimeoutMs', 'etcd.leaseTtlSeconds')) return;
    const ttlMs = options.etcd.leaseTtlSeconds * 1000;
    if (options.driver === 'etcd' && ttlMs / 3 + options.operationTimeoutMs >= ttlMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['etcd', 'leaseTtlSeconds'],
        message: `is too short for operationTimeoutMs: a keep-alive every TTL / 3 that takes up to operationTimeoutMs must land before the lease expires; raise leaseTtlSeconds to at least ${Math.floor((1.5 * options.operationTimeoutMs) / 1000) + 1} or lower operationTimeoutMs`,
      });
    }
  }, EVEN_WITH_OTHER_PROBLEMS);

/** Options of `RegistryModule.forRoot()`; every field is optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface RegistryModuleOptions extends z.input<typeof registryOptionsSchema> {}
/**
 * The options after one merge with `DEFAULT_REGISTRY_OPTIONS`: every key is present (undefined where
 * there is no default) and every level is frozen.
 */
export type ResolvedRegistryOptions = z.output<typeof registryOptionsSchema>;
/** TLS material for the registry connection (PEM). */
export type RegistryTlsOptions = z.input<typeof registryTlsSchema>;
/**
 * The check Consul runs to decide whether this instance gets traffic. It must reflect readiness:
 * a check that always answers 200 keeps a draining or broken instance in rotation.
 */
export type ConsulCheckOptions = z.input<typeof consulCheckSchema>;
export type ConsulDriverOptions = z.input<typeof consulSchema>;
export type EtcdDriverOptions = z.input<typeof etcdSchema>;
export type RegistryDiscoveryOptions = z.input<typeof discoverySchema>;
/** Backoff of registration retries while the registry is unreachable. */
export type RegistryRetryOptions = BackoffOptions;
export type ResolvedConsulCheck = z.output<typeof consulCheckSchema>;
export type ResolvedConsulOptions = z.output<typeof consulSchema>;
export type ResolvedEtcdOptions = z.output<typeof etcdSchema>;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveRegistryOptions(input: RegistryModuleOptions = {}): ResolvedRegistryOptions {
  return parseModuleOptions(registryOptionsSchema, input, (problems) => new RegistryOptionsError(problems));
}

function isReachableAddress(value: string): boolean {
  if (value === '0.0.0.0' || value === '::' || value === '[::]') return false;
  return isIP(value) !== 0 || HOST_NAME.test(value);
}

function isHttpUrlWithoutPath(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && (url.pathname === '/' || url.pathname === '') && !url.search;
  } catch {
    return false;
  }
}
