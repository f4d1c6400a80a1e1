import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  EVEN_WITH_OTHER_PROBLEMS,
  describeOptionIssues,
  optionGroup,
  parseModuleOptions,
  rejected,
  withoutDefault,
} from '@nest-rollout/lifecycle';
import { z } from 'zod';
import type { HealthCheckDefinition, ResolvedHealthCheck } from './health.check';
import { HealthIndicatorKey } from './health.constants';
import { HealthOptionsError } from './health.errors';

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
const RESERVED_NAMES: readonly string[] = Object.values(HealthIndicatorKey);

const BOOLEAN = 'must be a boolean';
const COUNT = 'must be a whole number from 1 to 1000';
const NON_EMPTY_STRING = 'must be a non-empty string';
const CHECK_NAME = 'must be 1-63 letters, digits, "_", "-" or "."';
const PORT = 'must be a port number from 0 to 65535';
const HOST = 'must be a non-empty host name or address';
const ROUTE_PATH = 'must start with "/" and hold only URL path characters';
const REDACT = 'must be at least 4 characters long';
const GRPC_SERVICE = 'must be a gRPC service name such as "orders.v1.Orders"';
const HEALTH_PATH = 'must be a URL path such as "health" or "ops/health"';

const isFunction = (value: unknown): boolean => typeof value === 'function';
/** `z.custom` aborts the whole parse by default, which would skip the rules across fields. */
const NOT_ABORTING = { abort: false } as const;

/** A timer setting: whole milliseconds that setTimeout honours. */
function milliseconds(min: number) {
  const error = `must be a whole number of milliseconds from ${min} to ${MAX_TIMER_MS}`;
  return z.int({ error }).min(min, { error }).max(MAX_TIMER_MS, { error });
}

const count = z.int({ error: COUNT }).min(1, { error: COUNT }).max(1000, { error: COUNT });
const nonEmptyString = z.string({ error: NON_EMPTY_STRING }).regex(/\S/, { error: NON_EMPTY_STRING });

const healthCheckSchema = optionGroup(
  {
    /** Key of the check in the probe body and the logs: letters, digits, `_`, `-`, `.`. */
    name: z
      .string({ error: CHECK_NAME })
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: CHECK_NAME })
      .refine((name) => !RESERVED_NAMES.includes(name), {
        // Echoes one of the probes' own indicator names, never a value of the user's.
        error: (issue) => `"${String(issue.input)}" is reserved for the probes' own indicators; choose another`,
      }),
    /**
     * What the check depends on (`postgres`, `redis`, `http`, ...), named in failure details.
     * @default 'custom'
     */
    dependency: nonEmptyString.default('custom'),
    /** Resolves when the dependency is up, throws when it is down. */
    run: z.custom<HealthCheckDefinition['run']>(isFunction, {
      ...NOT_ABORTING,
      error: 'must be a function that resolves when the dependency is up and throws when it is down',
    }),
    /**
     * A run that takes longer is reported down (kind `timeout`) and its signal aborted.
     * @default the module's `timeoutMs`
     */
    timeoutMs: milliseconds(1).optional(),
    /**
     * A critical check that is down makes the instance unready; a non-critical one is reported
     * (`degraded` in the body) while the instance stays ready.
     * @default true
     */
    critical: z.boolean({ error: BOOLEAN }).default(true),
    /** @default the module's `intervalMs` */
    intervalMs: milliseconds(10).optional(),
    /** @default the module's `failureThreshold` */
    failureThreshold: count.optional(),
    /** @default the module's `successThreshold` */
    successThreshold: count.optional(),
  },
  "must be a check object such as postgresCheck('database', { pool })",
);

const managementRouteSchema = optionGroup(
  {
    /** @default 'GET' (HEAD is answered by GET routes) */
    method: z.enum(['GET', 'POST', 'PUT', 'DELETE'], { error: 'must be GET, POST, PUT or DELETE' }).optional(),
    /** Exact path, starting with `/`. */
    path: z.string({ error: ROUTE_PATH }).regex(/^\/[A-Za-z0-9_\-./]*$/, { error: ROUTE_PATH }),
    /** Plain Node handler: the management server is framework-free, so it works under either adapter. */
    handle: z.custom<(req: IncomingMessage, res: ServerResponse) => unknown>(isFunction, {
      ...NOT_ABORTING,
      error: 'must be a function (req, res) => void',
    }),
  },
  'must be an object { path, handle }',
);

/** A separate HTTP server for the probes (and `/metrics`), so the public ingress exposes neither. */
const managementSchema = optionGroup(
  {
    /** Port of the management server; `0` takes a free one (see `ManagementServer.address()`). */
    port: z.int({ error: PORT }).min(0, { error: PORT }).max(65535, { error: PORT }),
    /**
     * Address to bind. The kubelet probes the pod IP, so loopback only suits probes from the same host.
     * @default '0.0.0.0'
     */
    host: z.string({ error: HOST }).regex(/\S/, { error: HOST }).default(DEFAULT_HEALTH_OPTIONS.managementHost),
    /**
     * Also serve the probes on the application's own port (they answer 404 there otherwise).
     * @default false
     */
    alsoOnAppPort: z.boolean({ error: BOOLEAN }).default(false),
    /**
     * Extra routes; more can be added at run time with `ManagementServer.addRoute()`.
     * @default []
     */
    routes: z.array(managementRouteSchema, { error: 'must be an array of { path, handle }' }).default(() => []),
  },
  'must be an object such as { port: 9000 }',
);

/** Options of `HealthModule.forRoot()`, before the defaults. */
const healthOptionsObject = optionGroup({
  /**
   * Put the lifecycle state (`STARTING`, `READY`, `DRAINING`, ...) in every probe body, so that
   * an operator can tell "draining" from "a dependency is down" at a glance.
   * @default true
   */
  exposeState: z.boolean({ error: BOOLEAN }).default(DEFAULT_HEALTH_OPTIONS.exposeState),
  /**
   * Time between the starts of two runs of a check.
   * @default 5000
   */
  intervalMs: milliseconds(10).default(DEFAULT_HEALTH_OPTIONS.intervalMs),
  /**
   * Timeout of one run of a check; a hung dependency is reported down once it passes.
   * @default 1000
   */
  timeoutMs: milliseconds(1).default(DEFAULT_HEALTH_OPTIONS.timeoutMs),
  /**
   * A result older than this counts as down (kind `stale`): the safety net for a scheduler that
   * stopped running. Must be at least `intervalMs + timeoutMs` of every check, the longest normal
   * gap between two results.
   * @default per check, the larger of 2 * intervalMs + timeoutMs and intervalMs + timeoutMs + 10000
   */
  maxAgeMs: withoutDefault(milliseconds(1)),
  /**
   * Consecutive failures before an up check is reported down (damping for flapping dependencies).
   * @default 1
   */
  failureThreshold: count.default(DEFAULT_HEALTH_OPTIONS.failureThreshold),
  /**
   * Consecutive successes before a down check is reported up again.
   * @default 1
   */
  successThreshold: count.default(DEFAULT_HEALTH_OPTIONS.successThreshold),
  /**
   * Dependency checks behind `/health/ready`. They run in the background; the probe answers from
   * their latest results and never runs a check itself.
   * @default []
   */
  readiness: z
    .array(healthCheckSchema, { error: 'must be an array of checks' })
    .superRefine(checkNamesAreUnique, EVEN_WITH_OTHER_PROBLEMS)
    .default(() => []),
  /** Serve the probes on a separate port. Off by default. */
  management: managementSchema.optional(),
  /**
   * Values to mask in failure messages and logs (passwords, tokens); credentials inside URLs and
   * `password=`-style pairs are masked anyway. `urlSecrets(process.env.DATABASE_URL)` helps.
   * @default []
   */
  redact: z.array(z.string({ error: REDACT }).min(4, { error: REDACT }), { error: 'must be an array of strings' }).default(() => []),
  /**
   * gRPC service names that the grpc.health.v1 service answers for (besides `''`, `liveness`,
   * `readiness` and `startup`); each follows readiness.
   * @default []
   */
  grpcServices: z
    .array(z.string({ error: GRPC_SERVICE }).regex(/^[A-Za-z_][A-Za-z0-9_.]*$/, { error: GRPC_SERVICE }), {
      error: 'must be an array of strings',
    })
    .default(() => []),
});

type ParsedHealthCheck = z.output<typeof healthCheckSchema>;
type ParsedHealthOptions = z.output<typeof healthOptionsObject>;

function checkNamesAreUnique(checks: ParsedHealthCheck[], ctx: z.RefinementCtx<ParsedHealthCheck[]>): void {
  const firstIndex = new Map<string, number>();
  checks.forEach((check, index) => {
    if (rejected(ctx, `[${index}].name`)) return;
    const first = firstIndex.get(check.name);
    if (first === undefined) {
      firstIndex.set(check.name, index);
      return;
    }
    ctx.addIssue({
      code: 'custom',
      path: [index, 'name'],
      message: `is used twice (also readiness[${first}].name); check names are keys in the probe body and must be unique`,
    });
  });
}

/** The timings a check runs with: its own, else the module's. */
function checkTimings(check: ParsedHealthCheck, options: ParsedHealthOptions): { intervalMs: number; timeoutMs: number } {
  return { intervalMs: check.intervalMs ?? options.intervalMs, timeoutMs: check.timeoutMs ?? options.timeoutMs };
}

/** A module-wide maxAgeMs must leave every check room for one normal gap between two results. */
function checkMaxAge(options: ParsedHealthOptions, ctx: z.RefinementCtx<ParsedHealthOptions>): void {
  const { maxAgeMs } = options;
  if (maxAgeMs === undefined || rejected(ctx, 'maxAgeMs', 'intervalMs', 'timeoutMs', 'readiness')) return;
  options.readiness.forEach((check, index) => {
    if (rejected(ctx, `readiness[${index}].intervalMs`, `readiness[${index}].timeoutMs`)) return;
    const { intervalMs, timeoutMs } = checkTimings(check, options);
    if (maxAgeMs >= intervalMs + timeoutMs) return;
    const label = rejected(ctx, `readiness[${index}].name`) ? `readiness[${index}]` : `readiness[${index}] ("${check.name}")`;
    ctx.addIssue({
      code: 'custom',
      path: ['maxAgeMs'],
      message:
        `shorter than ${label}'s intervalMs + timeoutMs (${intervalMs} + ${timeoutMs} = ${intervalMs + timeoutMs}): ` +
        'its results would turn stale between two normal runs; raise maxAgeMs or shorten the interval',
    });
  });
}

function resolveCheck(check: ParsedHealthCheck, options: ParsedHealthOptions): ResolvedHealthCheck {
  const { intervalMs, timeoutMs } = checkTimings(check, options);
  return Object.freeze({
    name: check.name,
    dependency: check.dependency,
    run: check.run,
    timeoutMs,
    critical: check.critical,
    intervalMs,
    maxAgeMs: options.maxAgeMs ?? defaultMaxAgeMs(intervalMs, timeoutMs),
    failureThreshold: check.failureThreshold ?? options.failureThreshold,
    successThreshold: check.successThreshold ?? options.successThreshold,
  });
}

const healthOptionsSchema = healthOptionsObject.superRefine(checkMaxAge, EVEN_WITH_OTHER_PROBLEMS).transform((options) =>
  Object.freeze({
    ...options,
    readiness: Object.freeze(options.readiness.map((check) => resolveCheck(check, options))),
    management: options.management && Object.freeze({ ...options.management, routes: Object.freeze(options.management.routes) }),
    redact: Object.freeze(options.redact),
    grpcServices: Object.freeze(options.grpcServices),
  }),
);

/** Options of `HealthModule.forRoot()`; every field is optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface HealthModuleOptions extends z.input<typeof healthOptionsSchema> {}
/** The options after one merge with the defaults, as `HEALTH_OPTIONS` provides them. */
export type ResolvedHealthOptions = z.output<typeof healthOptionsSchema>;
/** A separate HTTP server for the probes (and `/metrics`), so the public ingress exposes neither. */
export type HealthManagementOptions = z.input<typeof managementSchema>;
export type ResolvedManagementOptions = NonNullable<ResolvedHealthOptions['management']>;
/** An extra route of the management server, e.g. `/metrics` from another module. */
export type ManagementRoute = z.input<typeof managementRouteSchema>;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveHealthOptions(input: HealthModuleOptions = {}): ResolvedHealthOptions {
  return parseModuleOptions(healthOptionsSchema, input, (problems) => new HealthOptionsError(problems));
}

/** Why a management route is unusable, or undefined; shared with `ManagementServer.addRoute()`. */
export function managementRouteProblem(route: ManagementRoute): string | undefined {
  const result = managementRouteSchema.safeParse(route);
  return result.success ? undefined : describeOptionIssues(result.error.issues, managementRouteSchema).join('; ');
}

const healthPathSchema = z.strictObject({
  path: z
    .string({ error: HEALTH_PATH })
    .regex(/^[A-Za-z0-9_\-/]+$/, { error: HEALTH_PATH })
    .regex(/[^/]/, { error: HEALTH_PATH })
    .transform((path) => path.replace(/^\/+|\/+$/g, '')),
});

export function validateHealthPath(path: unknown): string {
  return parseModuleOptions(healthPathSchema, { path }, (problems) => new HealthOptionsError(problems)).path;
}
