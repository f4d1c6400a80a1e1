import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HealthCheckDefinition, ResolvedHealthCheck } from './health.check';
import { HealthIndicatorKey } from './health.constants';
import { HealthOptionsError } from './health.errors';

/** An extra route of the management server, e.g. `/metrics` from another module. */
export interface ManagementRoute {
  /** @default 'GET' (HEAD is answered by GET routes) */
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Exact path, starting with `/`. */
  readonly path: string;
  /** Plain Node handler: the management server is framework-free, so it works under either adapter. */
  handle(req: IncomingMessage, res: ServerResponse): unknown;
}

/** A separate HTTP server for the probes (and `/metrics`), so the public ingress exposes neither. */
export interface HealthManagementOptions {
  /** Port of the management server; `0` takes a free one (see `ManagementServer.address()`). */
  port: number;
  /**
   * Address to bind. The kubelet probes the pod IP, so loopback only suits probes from the same host.
   * @default '0.0.0.0'
   */
  host?: string;
  /**
   * Also serve the probes on the application's own port (they answer 404 there otherwise).
   * @default false
   */
  alsoOnAppPort?: boolean;
  /** Extra routes; more can be added at run time with `ManagementServer.addRoute()`. */
  routes?: ManagementRoute[];
}

/** Options of `HealthModule.forRoot()`; every field is optional. */
export interface HealthModuleOptions {
  /**
   * Put the lifecycle state (`STARTING`, `READY`, `DRAINING`, ...) in every probe body, so that
   * an operator can tell "draining" from "a dependency is down" at a glance.
   * @default true
   */
  exposeState?: boolean;
  /**
   * Dependency checks behind `/health/ready`. They run in the background; the probe answers from
   * their latest results and never runs a check itself.
   * @default []
   */
  readiness?: HealthCheckDefinition[];
  /**
   * Time between the starts of two runs of a check.
   * @default 5000
   */
  intervalMs?: number;
  /**
   * Timeout of one run of a check; a hung dependency is reported down once it passes.
   * @default 1000
   */
  timeoutMs?: number;
  /**
   * A result older than this counts as down (kind `stale`): the safety net for a scheduler that
   * stopped running. Must be at least `intervalMs + timeoutMs` of every check, the longest normal
   * gap between two results.
   * @default per check, the larger of 2 * intervalMs + timeoutMs and intervalMs + timeoutMs + 10000
   */
  maxAgeMs?: number;
  /**
   * Consecutive failures before an up check is reported down (damping for flapping dependencies).
   * @default 1
   */
  failureThreshold?: number;
  /**
   * Consecutive successes before a down check is reported up again.
   * @default 1
   */
  successThreshold?: number;
  /** Serve the probes on a separate port. Off by default. */
  management?: HealthManagementOptions;
  /**
   * Values to mask in failure messages and logs (passwords, tokens); credentials inside URLs and
   * `password=`-style pairs are masked anyway. `urlSecrets(process.env.DATABASE_URL)` helps.
   * @default []
   */
  redact?: string[];
  /**
   * gRPC service names that the grpc.health.v1 service answers for (besides `''`, `liveness`,
   * `readiness` and `startup`); each follows readiness.
   * @default []
   */
  grpcServices?: string[];
}

export interface ResolvedManagementOptions {
  readonly port: number;
  readonly host: string;
  readonly alsoOnAppPort: boolean;
  readonly routes: readonly ManagementRoute[];
}

export interface ResolvedHealthOptions {
  readonly exposeState: boolean;
  readonly readiness: readonly ResolvedHealthCheck[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** `undefined`: each check derives its own (see `HealthModuleOptions.maxAgeMs`). */
  readonly maxAgeMs: number | undefined;
  readonly failureThreshold: number;
  readonly successThreshold: number;
  readonly management: ResolvedManagementOptions | undefined;
  readonly redact: readonly string[];
  readonly grpcServices: readonly string[];
}

export const DEFAULT_HEALTH_OPTIONS = {
  exposeState: true,
  intervalMs: 5_000,
  timeoutMs: 1_000,
  failureThreshold: 1,
  successThreshold: 1,
  managementHost: '0.0.0.0',
} as const;

/**
 * Route prefix of the three probes; a static extra of `forRoot`/`forRootAsync` because Nest reads
 * controller paths when the module is defined, before any async option resolves.
 * @default 'health'
 */
export const DEFAULT_HEALTH_PATH = 'health';

/**
 * Room for one missed run, and for the event loop to stall under load (a probe storm on a busy
 * host delays timers by hundreds of milliseconds) without the instance turning unready for it.
 */
const MAX_AGE_MARGIN_MS = 10_000;

export function defaultMaxAgeMs(intervalMs: number, timeoutMs: number): number {
  return Math.max(2 * intervalMs + timeoutMs, intervalMs + timeoutMs + MAX_AGE_MARGIN_MS);
}

/** setTimeout's limit; longer values fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const CHECK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const RESERVED_NAMES: readonly string[] = Object.values(HealthIndicatorKey);
const GRPC_SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveHealthOptions(input: HealthModuleOptions = {}): ResolvedHealthOptions {
  if (input === null || typeof input !== 'object') throw new HealthOptionsError(['options must be an object']);
  const problems: string[] = [];
  const d = DEFAULT_HEALTH_OPTIONS;

  if (input.exposeState !== undefined && typeof input.exposeState !== 'boolean') {
    problems.push(`exposeState must be a boolean (got ${show(input.exposeState)})`);
  }
  const intervalMs = wholeMs(problems, 'intervalMs', input.intervalMs, 10) ?? d.intervalMs;
  const timeoutMs = wholeMs(problems, 'timeoutMs', input.timeoutMs, 1) ?? d.timeoutMs;
  const maxAgeMs = wholeMs(problems, 'maxAgeMs', input.maxAgeMs, 1);
  const failureThreshold = count(problems, 'failureThreshold', input.failureThreshold) ?? d.failureThreshold;
  const successThreshold = count(problems, 'successThreshold', input.successThreshold) ?? d.successThreshold;

  const readiness: ResolvedHealthCheck[] = [];
  if (input.readiness !== undefined && !Array.isArray(input.readiness)) {
    problems.push(`readiness must be an array of checks (got ${show(input.readiness)})`);
  }
  const seen = new Set<string>();
  (Array.isArray(input.readiness) ? input.readiness : []).forEach((check, index) => {
    const at = `readiness[${index}]`;
    if (check === null || typeof check !== 'object') {
      problems.push(`${at} must be a check object such as postgresCheck('database', { pool }) (got ${show(check)})`);
      return;
    }
    const label = typeof check.name === 'string' && CHECK_NAME.test(check.name) ? `${at} ("${check.name}")` : at;
    if (typeof check.name !== 'string' || !CHECK_NAME.test(check.name)) {
      problems.push(`${at}.name must be 1-63 letters, digits, "_", "-" or "." (got ${show(check.name)})`);
    } else if (RESERVED_NAMES.includes(check.name)) {
      problems.push(`${label}.name "${check.name}" is reserved for the probes' own indicators; choose another`);
    } else if (seen.has(check.name)) {
      problems.push(`${label}.name is used twice; check names are keys in the probe body and must be unique`);
    } else {
      seen.add(check.name);
    }
    if (typeof check.run !== 'function') problems.push(`${label}.run must be a function (got ${show(check.run)})`);
    if (check.dependency !== undefined && (typeof check.dependency !== 'string' || check.dependency.trim() === '')) {
      problems.push(`${label}.dependency must be a non-empty string (got ${show(check.dependency)})`);
    }
    if (check.critical !== undefined && typeof check.critical !== 'boolean') {
      problems.push(`${label}.critical must be a boolean (got ${show(check.critical)})`);
    }
    const resolved: ResolvedHealthCheck = {
      name: check.name,
      dependency: check.dependency ?? 'custom',
      run: check.run,
      timeoutMs: wholeMs(problems, `${label}.timeoutMs`, check.timeoutMs, 1) ?? timeoutMs,
      critical: check.critical ?? true,
      intervalMs: wholeMs(problems, `${label}.intervalMs`, check.intervalMs, 10) ?? intervalMs,
      maxAgeMs: 0,
      failureThreshold: count(problems, `${label}.failureThreshold`, check.failureThreshold) ?? failureThreshold,
      successThreshold: count(problems, `${label}.successThreshold`, check.successThreshold) ?? successThreshold,
    };
    const minAgeMs = resolved.intervalMs + resolved.timeoutMs;
    if (maxAgeMs !== undefined && maxAgeMs < minAgeMs) {
      problems.push(
        `maxAgeMs (${maxAgeMs}) is shorter than ${label}'s intervalMs + timeoutMs (${resolved.intervalMs} + ${resolved.timeoutMs} = ${minAgeMs}): ` +
          'its results would turn stale between two normal runs; raise maxAgeMs or shorten the interval',
      );
    }
    readiness.push({ ...resolved, maxAgeMs: maxAgeMs ?? defaultMaxAgeMs(resolved.intervalMs, resolved.timeoutMs) });
  });

  const management = resolveManagement(problems, input.management);
  const redact = stringList(problems, 'redact', input.redact, (s) => s.length >= 4, 'at least 4 characters long');
  const grpcServices = stringList(
    problems,
    'grpcServices',
    input.grpcServices,
    (s) => GRPC_SERVICE_NAME.test(s),
    'a gRPC service name such as "orders.v1.Orders"',
  );

  if (problems.length > 0) throw new HealthOptionsError(problems);
  return Object.freeze({
    exposeState: input.exposeState ?? d.exposeState,
    readiness: Object.freeze(readiness.map((c) => Object.freeze(c))),
    intervalMs,
    timeoutMs,
    maxAgeMs,
    failureThreshold,
    successThreshold,
    management,
    redact,
    grpcServices,
  });
}

function resolveManagement(problems: string[], input: HealthManagementOptions | undefined): ResolvedManagementOptions | undefined {
  if (input === undefined) return undefined;
  if (input === null || typeof input !== 'object') {
    problems.push(`management must be an object such as { port: 9000 } (got ${show(input)})`);
    return undefined;
  }
  if (!(Number.isInteger(input.port) && input.port >= 0 && input.port <= 65535)) {
    problems.push(`management.port must be a port number from 0 to 65535 (got ${show(input.port)})`);
  }
  if (input.host !== undefined && (typeof input.host !== 'string' || input.host.trim() === '')) {
    problems.push(`management.host must be a non-empty host name or address (got ${show(input.host)})`);
  }
  if (input.alsoOnAppPort !== undefined && typeof input.alsoOnAppPort !== 'boolean') {
    problems.push(`management.alsoOnAppPort must be a boolean (got ${show(input.alsoOnAppPort)})`);
  }
  const routes = input.routes ?? [];
  if (!Array.isArray(routes)) {
    problems.push(`management.routes must be an array of { path, handle } (got ${show(routes)})`);
  } else {
    routes.forEach((route, index) => {
      const problem = managementRouteProblem(route);
      if (problem) problems.push(`management.routes[${index}]: ${problem}`);
    });
  }
  return Object.freeze({
    port: input.port,
    host: input.host ?? DEFAULT_HEALTH_OPTIONS.managementHost,
    alsoOnAppPort: input.alsoOnAppPort ?? false,
    routes: Object.freeze(Array.isArray(routes) ? [...routes] : []),
  });
}

/** Why a management route is unusable, or undefined; shared with `ManagementServer.addRoute()`. */
export function managementRouteProblem(route: ManagementRoute): string | undefined {
  if (route === null || typeof route !== 'object') return `must be an object { path, handle } (got ${show(route)})`;
  if (typeof route.path !== 'string' || !/^\/[A-Za-z0-9_\-./]*$/.test(route.path)) {
    return `path must start with "/" and hold only URL path characters (got ${show(route.path)})`;
  }
  if (route.method !== undefined && !['GET', 'POST', 'PUT', 'DELETE'].includes(route.method)) {
    return `method must be GET, POST, PUT or DELETE (got ${show(route.method)})`;
  }
  if (typeof route.handle !== 'function') return `handle must be a function (req, res) => void (got ${show(route.handle)})`;
  return undefined;
}

export function validateHealthPath(path: unknown): string {
  if (typeof path !== 'string' || !/^[A-Za-z0-9_\-/]+$/.test(path) || path.replace(/\//g, '') === '') {
    throw new HealthOptionsError([`path must be a URL path such as "health" or "ops/health" (got ${show(path)})`]);
  }
  return path.replace(/^\/+|\/+$/g, '');
}

function wholeMs(problems: string[], field: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= MAX_TIMER_MS) return value;
  problems.push(`${field} must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS} (got ${show(value)})`);
  return undefined;
}

function count(problems: string[], field: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 1000) return value;
  problems.push(`${field} must be a whole number from 1 to 1000 (got ${show(value)})`);
  return undefined;
}

function stringList(problems: string[], field: string, value: unknown, ok: (s: string) => boolean, what: string): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value)) {
    problems.push(`${field} must be an array of strings (got ${show(value)})`);
    return Object.freeze([]);
  }
  value.forEach((item, index) => {
    if (typeof item !== 'string' || !ok(item)) problems.push(`${field}[${index}] must be ${what}`);
  });
  return Object.freeze(value.filter((item): item is string => typeof item === 'string'));
}

/** Shows a bad value in a message; functions and objects by their type, so no secret is echoed. */
function show(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (value === null || ['number', 'boolean', 'undefined'].includes(typeof value)) return String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return Array.isArray(value) ? 'an array' : 'an object';
}
