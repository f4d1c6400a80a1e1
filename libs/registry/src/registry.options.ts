import { isIP } from 'node:net';
import { RegistryOptionsError } from './registry.errors';
import type { RegistryDriverKind, ReleaseTrack } from './registry.types';

/** TLS material for the registry connection (PEM). */
export interface RegistryTlsOptions {
  /** CA bundle that signed the registry's certificate. */
  ca?: string | Buffer;
  /** Client certificate, for mutual TLS. */
  cert?: string | Buffer;
  /** Client private key, for mutual TLS. */
  key?: string | Buffer;
  /**
   * Consul only: verify the agent's certificate. Turn off only on a test bench.
   * @default true
   */
  rejectUnauthorized?: boolean;
}

/**
 * The check Consul runs to decide whether this instance gets traffic. It must reflect readiness:
 * a check that always answers 200 keeps a draining or broken instance in rotation.
 */
export interface ConsulCheckOptions {
  /**
   * `http`: the agent GETs `http://<address>:<port><path>` every `intervalMs`.
   * `ttl`: this instance reports its own health every `ttlMs / 3` (pass while the lifecycle is
   * READY and `isHealthy` agrees); a TTL check is never registered without that heartbeat.
   * @default 'http'
   */
  type?: 'http' | 'ttl';
  /**
   * Path of the readiness probe (HTTP checks). Never the liveness probe: it answers 200 while draining.
   * @default '/health/ready'
   */
  path?: string;
  /** @default 'http' */
  scheme?: 'http' | 'https';
  /** HTTPS checks: skip verifying the instance's certificate. @default false */
  tlsSkipVerify?: boolean;
  /**
   * Time between two HTTP checks (Consul clamps anything below 1 s).
   * @default 10000
   */
  intervalMs?: number;
  /**
   * Timeout of one HTTP check; below `intervalMs`.
   * @default 2000
   */
  timeoutMs?: number;
  /**
   * TTL checks: the check turns critical when no heartbeat arrives within this time.
   * @default 15000
   */
  ttlMs?: number;
  /**
   * Consul removes the instance once its check has been critical this long: the safety net for a
   * process killed with SIGKILL. Consul's minimum is 1 minute (its reaper runs every 30 s).
   * @default 60000
   */
  deregisterCriticalServiceAfterMs?: number;
  /**
   * TTL checks: extra health condition on top of the lifecycle being READY (e.g. the health
   * module's readiness). A heartbeat reports `fail` while it returns false.
   */
  isHealthy?: () => boolean | Promise<boolean>;
}

export interface ConsulDriverOptions {
  /**
   * The Consul agent to register with; normally the agent on this node. Every call for one
   * registration (register, heartbeats, deregister) goes to the same agent: the host name is resolved
   * once per registration, because Consul deregisters only on the agent that registered.
   * @default 'http://127.0.0.1:8500'
   */
  url?: string;
  /** ACL token (`X-Consul-Token`); needs `service:write` on the service, `service:read` for discovery. */
  token?: string;
  /** Datacenter for discovery queries. @default the agent's */
  datacenter?: string;
  tls?: RegistryTlsOptions;
  check?: ConsulCheckOptions;
}

export interface EtcdDriverOptions {
  /**
   * etcd client URLs.
   * @default ['http://127.0.0.1:2379']
   */
  endpoints?: string[];
  /**
   * Keys are `<keyPrefix><service>/<instanceId>`, holding the instance as JSON.
   * @default '/services/'
   */
  keyPrefix?: string;
  /**
   * TTL of the lease the key is attached to: a process that dies without deregistering disappears
   * after at most this long. Kept alive every TTL / 3.
   * @default 10
   */
  leaseTtlSeconds?: number;
  auth?: { username: string; password: string };
  tls?: RegistryTlsOptions;
}

export interface RegistryDiscoveryOptions {
  /**
   * Return only instances whose every check passes, unless a query asks otherwise.
   * @default true
   */
  passingOnly?: boolean;
  /**
   * What to do when the registry suddenly reports no instance of a service that had some: keep
   * serving the last known good set (a registry restart or an ACL mistake must not blackhole every
   * caller at once) for at most `keepLastKnownMaxMs`, or accept the empty set at once.
   * @default 'keep-last-known'
   */
  onEmpty?: 'keep-last-known' | 'accept';
  /** @default 60000 */
  keepLastKnownMaxMs?: number;
  /**
   * Consul blocking queries: how long the agent may hold one query (max 10 minutes).
   * @default 30000
   */
  waitMs?: number;
  /**
   * Consul: minimum time between two queries for one service, so that a registry answering at once
   * (index reset, flapping) is not polled in a hot loop.
   * @default 500
   */
  minQueryIntervalMs?: number;
}

export interface RegistryRetryOptions {
  /** @default 500 */
  initialDelayMs?: number;
  /** @default 30000 */
  maxDelayMs?: number;
  /** @default 2 */
  multiplier?: number;
  /**
   * Share of each delay that is random (0: none, 1: anywhere between 0 and the delay), so that a
   * fleet restarted together does not retry in lockstep.
   * @default 0.5
   */
  jitter?: number;
}

/** Options of `RegistryModule.forRoot()`; every field is optional. */
export interface RegistryModuleOptions {
  /**
   * `consul`, `etcd`, or `none` (nothing is registered; discovery finds nothing).
   * @default 'none'
   */
  driver?: RegistryDriverKind;
  /**
   * Register this instance. `false` makes a discovery-only client (a gateway, a job).
   * @default true
   */
  register?: boolean;
  /** Logical service name (a DNS label). Required when registering. */
  service?: string;
  /**
   * Unique and stable id of this instance.
   * @default `${service}-${hostname()}-${port}`
   */
  instanceId?: string;
  /**
   * Address advertised to callers.
   * @default the first non-loopback IPv4 address of this host
   */
  address?: string;
  /**
   * Port advertised to callers.
   * @default the port the HTTP server listens on
   */
  port?: number;
  /** @default [] */
  tags?: string[];
  /**
   * Extra metadata. `version` and `color` come from LifecycleModule and `track` from the option below;
   * they cannot be set here.
   * @default {}
   */
  meta?: Record<string, string>;
  /** @default 'stable' */
  track?: ReleaseTrack;
  /**
   * Bound of one register, heartbeat or anti-entropy call.
   * @default 3000
   */
  operationTimeoutMs?: number;
  /**
   * Bound of one deregistration: a dead registry never delays the shutdown by more than this (at
   * DRAINING, and again in onApplicationShutdown).
   * @default 3000
   */
  deregisterTimeoutMs?: number;
  /**
   * How often the registry is asked whether it still holds this instance; a lost entry (agent
   * restart, wiped etcd) is restored within this interval plus `operationTimeoutMs`.
   * @default 30000
   */
  antiEntropyIntervalMs?: number;
  /** Backoff of registration retries while the registry is unreachable. */
  retry?: RegistryRetryOptions;
  consul?: ConsulDriverOptions;
  etcd?: EtcdDriverOptions;
  discovery?: RegistryDiscoveryOptions;
}

export interface ResolvedConsulCheck {
  readonly type: 'http' | 'ttl';
  readonly path: string;
  readonly scheme: 'http' | 'https';
  readonly tlsSkipVerify: boolean;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly ttlMs: number;
  readonly deregisterCriticalServiceAfterMs: number;
  readonly isHealthy: (() => boolean | Promise<boolean>) | undefined;
}

export interface ResolvedConsulOptions {
  readonly url: string;
  readonly token: string | undefined;
  readonly datacenter: string | undefined;
  readonly tls: RegistryTlsOptions | undefined;
  readonly check: ResolvedConsulCheck;
}

export interface ResolvedEtcdOptions {
  readonly endpoints: readonly string[];
  readonly keyPrefix: string;
  readonly leaseTtlSeconds: number;
  readonly auth: { readonly username: string; readonly password: string } | undefined;
  readonly tls: RegistryTlsOptions | undefined;
}

export interface ResolvedRegistryOptions {
  readonly driver: RegistryDriverKind;
  readonly register: boolean;
  readonly service: string | undefined;
  readonly instanceId: string | undefined;
  readonly address: string | undefined;
  readonly port: number | undefined;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly track: ReleaseTrack;
  readonly operationTimeoutMs: number;
  readonly deregisterTimeoutMs: number;
  readonly antiEntropyIntervalMs: number;
  readonly retry: Required<Readonly<RegistryRetryOptions>>;
  readonly consul: ResolvedConsulOptions;
  readonly etcd: ResolvedEtcdOptions;
  readonly discovery: Required<Readonly<RegistryDiscoveryOptions>>;
}

export const DEFAULT_REGISTRY_OPTIONS = {
  driver: 'none',
  register: true,
  track: 'stable',
  operationTimeoutMs: 3_000,
  deregisterTimeoutMs: 3_000,
  antiEntropyIntervalMs: 30_000,
  retry: { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 },
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
const DNS_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
// Consul's rules for service meta: keys of letters, digits, "-" and "_" (up to 128), values up to 512, at most 64 pairs.
const META_KEY = /^[a-zA-Z0-9_-]{1,128}$/;
const MAX_META_PAIRS = 64;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveRegistryOptions(input: RegistryModuleOptions = {}): ResolvedRegistryOptions {
  if (input === null || typeof input !== 'object') throw new RegistryOptionsError(['options must be an object']);
  const problems: string[] = [];
  const d = DEFAULT_REGISTRY_OPTIONS;

  const driver = input.driver ?? d.driver;
  if (!['consul', 'etcd', 'none'].includes(driver)) problems.push(`driver must be "consul", "etcd" or "none" (got ${show(input.driver)})`);
  const register = bool(problems, 'register', input.register) ?? d.register;
  const registering = register && (driver === 'consul' || driver === 'etcd');

  if (input.service !== undefined && (typeof input.service !== 'string' || !DNS_LABEL.test(input.service))) {
    problems.push(`service must be a DNS label: letters, digits and "-", at most 63 (got ${show(input.service)})`);
  } else if (registering && input.service === undefined) {
    problems.push(`service is required to register with driver "${driver}" (or set register: false for a discovery-only client)`);
  }
  if (
    input.instanceId !== undefined &&
    !(typeof input.instanceId === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(input.instanceId))
  ) {
    problems.push(`instanceId must be 1-128 letters, digits, "_", ".", ":" or "-" (got ${show(input.instanceId)})`);
  }
  if (input.address !== undefined && !validAddress(input.address)) {
    problems.push(
      `address must be an IP address or host name that callers can reach, not a wildcard such as 0.0.0.0 (got ${show(input.address)})`,
    );
  }
  if (input.port !== undefined && !(Number.isInteger(input.port) && input.port >= 1 && input.port <= 65535)) {
    problems.push(`port must be a whole number from 1 to 65535 (got ${show(input.port)})`);
  }
  const tags = stringList(problems, 'tags', input.tags);
  const meta = metaMap(problems, input.meta);
  const track = input.track ?? d.track;
  if (track !== 'stable' && track !== 'canary') problems.push(`track must be "stable" or "canary" (got ${show(input.track)})`);

  const operationTimeoutMs = wholeMs(problems, 'operationTimeoutMs', input.operationTimeoutMs, 1) ?? d.operationTimeoutMs;
  const deregisterTimeoutMs = wholeMs(problems, 'deregisterTimeoutMs', input.deregisterTimeoutMs, 1) ?? d.deregisterTimeoutMs;
  const antiEntropyIntervalMs = wholeMs(problems, 'antiEntropyIntervalMs', input.antiEntropyIntervalMs, 100) ?? d.antiEntropyIntervalMs;

  const retryIn = objectOrEmpty<RegistryRetryOptions>(problems, 'retry', input.retry);
  const retry = {
    initialDelayMs: wholeMs(problems, 'retry.initialDelayMs', retryIn.initialDelayMs, 1) ?? d.retry.initialDelayMs,
    maxDelayMs: wholeMs(problems, 'retry.maxDelayMs', retryIn.maxDelayMs, 1) ?? d.retry.maxDelayMs,
    multiplier: d.retry.multiplier as number,
    jitter: d.retry.jitter as number,
  };
  if (retryIn.multiplier !== undefined) {
    if (typeof retryIn.multiplier === 'number' && Number.isFinite(retryIn.multiplier) && retryIn.multiplier >= 1)
      retry.multiplier = retryIn.multiplier;
    else problems.push(`retry.multiplier must be a number >= 1 (got ${show(retryIn.multiplier)})`);
  }
  if (retryIn.jitter !== undefined) {
    if (typeof retryIn.jitter === 'number' && retryIn.jitter >= 0 && retryIn.jitter <= 1) retry.jitter = retryIn.jitter;
    else problems.push(`retry.jitter must be a number from 0 to 1 (got ${show(retryIn.jitter)})`);
  }
  if (retry.maxDelayMs < retry.initialDelayMs) {
    problems.push(`retry.maxDelayMs (${retry.maxDelayMs}) must be at least retry.initialDelayMs (${retry.initialDelayMs})`);
  }

  const consul = resolveConsul(problems, input.consul, driver === 'consul', operationTimeoutMs);
  const etcd = resolveEtcd(problems, input.etcd, driver === 'etcd', operationTimeoutMs);

  const discIn = objectOrEmpty<RegistryDiscoveryOptions>(problems, 'discovery', input.discovery);
  const onEmpty = discIn.onEmpty ?? d.discovery.onEmpty;
  if (onEmpty !== 'keep-last-known' && onEmpty !== 'accept')
    problems.push(`discovery.onEmpty must be "keep-last-known" or "accept" (got ${show(discIn.onEmpty)})`);
  const discovery = {
    passingOnly: bool(problems, 'discovery.passingOnly', discIn.passingOnly) ?? d.discovery.passingOnly,
    onEmpty,
    keepLastKnownMaxMs: wholeMs(problems, 'discovery.keepLastKnownMaxMs', discIn.keepLastKnownMaxMs, 0) ?? d.discovery.keepLastKnownMaxMs,
    waitMs: wholeMs(problems, 'discovery.waitMs', discIn.waitMs, 1000) ?? d.discovery.waitMs,
    minQueryIntervalMs: wholeMs(problems, 'discovery.minQueryIntervalMs', discIn.minQueryIntervalMs, 0) ?? d.discovery.minQueryIntervalMs,
  };
  if (discovery.waitMs > CONSUL_MAX_WAIT_MS)
    problems.push(`discovery.waitMs must be at most ${CONSUL_MAX_WAIT_MS} (Consul's longest blocking query, 10 minutes)`);

  if (problems.length > 0) throw new RegistryOptionsError(problems);
  return Object.freeze({
    driver,
    register,
    service: input.service,
    instanceId: input.instanceId,
    address: input.address,
    port: input.port,
    tags,
    meta,
    track,
    operationTimeoutMs,
    deregisterTimeoutMs,
    antiEntropyIntervalMs,
    retry,
    consul,
    etcd,
    discovery,
  });
}

function resolveConsul(
  problems: string[],
  raw: ConsulDriverOptions | undefined,
  active: boolean,
  operationTimeoutMs: number,
): ResolvedConsulOptions {
  const input = objectOrEmpty<ConsulDriverOptions>(problems, 'consul', raw);
  const d = DEFAULT_REGISTRY_OPTIONS.consul;
  const url = input.url ?? d.url;
  if (!validHttpUrl(url))
    problems.push(`consul.url must be an http:// or https:// URL of a Consul agent, without a path (got ${show(input.url)})`);
  for (const field of ['token', 'datacenter'] as const) {
    const value = input[field];
    if (value !== undefined && (typeof value !== 'string' || value.trim() === ''))
      problems.push(`consul.${field} must be a non-empty string`);
  }
  const tls = resolveTls(problems, 'consul.tls', input.tls);
  const c = objectOrEmpty<ConsulCheckOptions>(problems, 'consul.check', input.check);
  const dc = d.check;
  const type = c.type ?? dc.type;
  if (type !== 'http' && type !== 'ttl') problems.push(`consul.check.type must be "http" or "ttl" (got ${show(c.type)})`);
  const path = c.path ?? dc.path;
  if (typeof path !== 'string' || !path.startsWith('/')) {
    problems.push(`consul.check.path must start with "/" (got ${show(c.path)})`);
  } else if (/\/(live|liveness|livez)\/?$/.test(path)) {
    problems.push(
      `consul.check.path ${show(path)} is a liveness probe: it answers 200 while the instance drains, so Consul would keep routing to it; point the check at the readiness probe (/health/ready)`,
    );
  }
  const scheme = c.scheme ?? dc.scheme;
  if (scheme !== 'http' && scheme !== 'https') problems.push(`consul.check.scheme must be "http" or "https" (got ${show(c.scheme)})`);
  const check: ResolvedConsulCheck = {
    type,
    path,
    scheme,
    tlsSkipVerify: bool(problems, 'consul.check.tlsSkipVerify', c.tlsSkipVerify) ?? dc.tlsSkipVerify,
    intervalMs: wholeMs(problems, 'consul.check.intervalMs', c.intervalMs, 1000) ?? dc.intervalMs,
    timeoutMs: wholeMs(problems, 'consul.check.timeoutMs', c.timeoutMs, 1) ?? dc.timeoutMs,
    ttlMs: wholeMs(problems, 'consul.check.ttlMs', c.ttlMs, 1000) ?? dc.ttlMs,
    deregisterCriticalServiceAfterMs:
      wholeMs(problems, 'consul.check.deregisterCriticalServiceAfterMs', c.deregisterCriticalServiceAfterMs, 1) ??
      dc.deregisterCriticalServiceAfterMs,
    isHealthy: c.isHealthy,
  };
  if (c.isHealthy !== undefined && typeof c.isHealthy !== 'function') problems.push('consul.check.isHealthy must be a function');
  if (check.deregisterCriticalServiceAfterMs < CONSUL_MIN_DEREGISTER_CRITICAL_MS) {
    problems.push(
      `consul.check.deregisterCriticalServiceAfterMs must be at least ${CONSUL_MIN_DEREGISTER_CRITICAL_MS} (Consul's minimum is 1 minute; lower values are raised by the agent) (got ${check.deregisterCriticalServiceAfterMs})`,
    );
  }
  if (active && type === 'http' && check.timeoutMs >= check.intervalMs) {
    problems.push(`consul.check.timeoutMs (${check.timeoutMs}) must be shorter than consul.check.intervalMs (${check.intervalMs})`);
  }
  if (active && type === 'ttl' && check.ttlMs / 3 + operationTimeoutMs >= check.ttlMs) {
    problems.push(
      `consul.check.ttlMs (${check.ttlMs}) is too short for operationTimeoutMs (${operationTimeoutMs}): a heartbeat every ttlMs / 3 that takes up to operationTimeoutMs must land before the TTL runs out; raise ttlMs or lower operationTimeoutMs`,
    );
  }
  return Object.freeze({ url: url.replace(/\/$/, ''), token: input.token, datacenter: input.datacenter, tls, check: Object.freeze(check) });
}

function resolveEtcd(
  problems: string[],
  raw: EtcdDriverOptions | undefined,
  active: boolean,
  operationTimeoutMs: number,
): ResolvedEtcdOptions {
  const input = objectOrEmpty<EtcdDriverOptions>(problems, 'etcd', raw);
  const d = DEFAULT_REGISTRY_OPTIONS.etcd;
  let endpoints: string[] = [...d.endpoints];
  if (input.endpoints !== undefined) {
    if (!Array.isArray(input.endpoints) || input.endpoints.length === 0) {
      problems.push(`etcd.endpoints must be a non-empty array of URLs such as "http://127.0.0.1:2379" (got ${show(input.endpoints)})`);
    } else {
      endpoints = input.endpoints;
      input.endpoints.forEach((e, i) => {
        if (!validHttpUrl(e))
          problems.push(`etcd.endpoints[${i}] must be an http:// or https:// URL such as "http://127.0.0.1:2379" (got ${show(e)})`);
      });
    }
  }
  const keyPrefix = input.keyPrefix ?? d.keyPrefix;
  if (typeof keyPrefix !== 'string' || !/^\/([A-Za-z0-9_.-]+\/)*$/.test(keyPrefix)) {
    problems.push(`etcd.keyPrefix must start and end with "/" and hold letters, digits, "_", "." or "-" (got ${show(input.keyPrefix)})`);
  }
  const ttl = input.leaseTtlSeconds ?? d.leaseTtlSeconds;
  // etcd raises any TTL below its minimum (about 1.5 s with default election settings) silently.
  if (!(Number.isInteger(ttl) && ttl >= 2 && ttl <= 3600))
    problems.push(`etcd.leaseTtlSeconds must be a whole number of seconds from 2 to 3600 (got ${show(input.leaseTtlSeconds)})`);
  else if (active && (ttl * 1000) / 3 + operationTimeoutMs >= ttl * 1000) {
    problems.push(
      `etcd.leaseTtlSeconds (${ttl}) is too short for operationTimeoutMs (${operationTimeoutMs}): a keep-alive every TTL / 3 that takes up to operationTimeoutMs must land before the lease expires`,
    );
  }
  let auth: ResolvedEtcdOptions['auth'];
  if (input.auth !== undefined) {
    const a = input.auth as { username?: unknown; password?: unknown };
    if (a === null || typeof a !== 'object' || typeof a.username !== 'string' || a.username === '' || typeof a.password !== 'string') {
      problems.push('etcd.auth must be { username, password } with a non-empty username');
    } else {
      auth = Object.freeze({ username: a.username, password: a.password });
    }
  }
  const tls = resolveTls(problems, 'etcd.tls', input.tls);
  return Object.freeze({ endpoints: Object.freeze([...endpoints]), keyPrefix, leaseTtlSeconds: ttl, auth, tls });
}

function resolveTls(problems: string[], at: string, raw: RegistryTlsOptions | undefined): RegistryTlsOptions | undefined {
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== 'object') {
    problems.push(`${at} must be an object with ca, cert and key (PEM)`);
    return undefined;
  }
  for (const field of ['ca', 'cert', 'key'] as const) {
    const value = raw[field];
    if (value !== undefined && typeof value !== 'string' && !Buffer.isBuffer(value))
      problems.push(`${at}.${field} must be a PEM string or Buffer`);
  }
  if ((raw.cert === undefined) !== (raw.key === undefined)) problems.push(`${at}: cert and key go together (mutual TLS needs both)`);
  bool(problems, `${at}.rejectUnauthorized`, raw.rejectUnauthorized);
  return Object.freeze({ ...raw });
}

function stringList(problems: string[], at: string, raw: unknown): readonly string[] {
  if (raw === undefined) return Object.freeze([]);
  if (!Array.isArray(raw)) {
    problems.push(`${at} must be an array of strings (got ${show(raw)})`);
    return Object.freeze([]);
  }
  const seen = new Set<string>();
  raw.forEach((value, i) => {
    if (typeof value !== 'string' || value.trim() === '' || value.length > 255)
      problems.push(`${at}[${i}] must be a non-empty string of at most 255 characters (got ${show(value)})`);
    else if (seen.has(value)) problems.push(`${at}[${i}] ${show(value)} is listed twice`);
    else seen.add(value);
  });
  return Object.freeze([...seen]);
}

function metaMap(problems: string[], raw: unknown): Readonly<Record<string, string>> {
  if (raw === undefined) return Object.freeze({});
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`meta must be an object of string values (got ${show(raw)})`);
    return Object.freeze({});
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  const meta: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (RESERVED_META_KEYS.includes(key)) {
      problems.push(
        `meta.${key} is set by the module (version and color from LifecycleModule, track from the track option); remove it from meta`,
      );
    } else if (!META_KEY.test(key) || key.startsWith('consul-')) {
      problems.push(`meta key ${show(key)} must be 1-128 letters, digits, "-" or "_", not starting with "consul-"`);
    } else if (typeof value !== 'string' || value.length > 512) {
      problems.push(`meta.${key} must be a string of at most 512 characters (got ${show(value)})`);
    } else {
      meta[key] = value;
    }
  }
  if (entries.length + RESERVED_META_KEYS.length > MAX_META_PAIRS) {
    problems.push(`meta has ${entries.length} keys; with version, color and track that exceeds Consul's limit of ${MAX_META_PAIRS}`);
  }
  return Object.freeze(meta);
}

function objectOrEmpty<T extends object>(problems: string[], at: string, raw: T | undefined): Partial<T> {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${at} must be an object (got ${show(raw)})`);
    return {};
  }
  return raw;
}

function wholeMs(problems: string[], at: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= MAX_TIMER_MS) return value;
  problems.push(`${at} must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS} (got ${show(value)})`);
  return undefined;
}

function bool(problems: string[], at: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'boolean') return value;
  problems.push(`${at} must be a boolean (got ${show(value)})`);
  return undefined;
}

function validAddress(value: unknown): boolean {
  if (typeof value !== 'string' || value === '') return false;
  if (value === '0.0.0.0' || value === '::' || value === '[::]') return false;
  return (
    isIP(value) !== 0 ||
    /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(value)
  );
}

function validHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && (url.pathname === '/' || url.pathname === '') && !url.search;
  } catch {
    return false;
  }
}

/** Renders a rejected value for an error message; JSON.stringify would print NaN as null and drop functions. */
function show(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'function') return 'a function';
  return JSON.stringify(value) ?? String(value);
}
