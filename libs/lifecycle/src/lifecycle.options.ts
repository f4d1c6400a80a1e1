import { hostname } from 'node:os';
import { LifecycleOptionsError } from './lifecycle.errors';

const SUPPORTED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

/** Options of `LifecycleModule.forRoot()`; every field is optional. */
export interface LifecycleModuleOptions {
  /**
   * Default timeout of one warm-up task. A critical task that fails or times out stops the process.
   * @default 30000
   */
  warmupTimeoutMs?: number;
  /**
   * Settle delay between the end of warm-up and READY ("wait a few seconds before reporting ready").
   * @default 500
   */
  minReadyDelayMs?: number;
  /**
   * Time between DRAINING (readiness 503, registry deregistered) and closing the listener, so that
   * load balancers and kube-proxy notice the instance is going away while it still serves.
   * @default 5000
   */
  drainDelayMs?: number;
  /**
   * Default timeout of one drain task (e.g. registry deregistration). Drain tasks run in parallel
   * with the drain delay; STOPPING begins when both are over.
   * @default 5000
   */
  drainTaskTimeoutMs?: number;
  /**
   * Once the listener is closed, how long in-flight requests may take before their connections are
   * force-closed (and logged as cut).
   * @default 15000
   */
  shutdownTimeoutMs?: number;
  /**
   * Time budgeted for Nest's shutdown hooks (onModuleDestroy, beforeApplicationShutdown,
   * onApplicationShutdown). Used in the time-budget check against `hardDeadlineMs`.
   * @default 5000
   */
  hookTimeoutMs?: number;
  /**
   * From the first signal, the time after which the process exits with code 1 whatever still runs.
   * @default max(drainDelayMs, drainTaskTimeoutMs) + shutdownTimeoutMs + hookTimeoutMs + 3000 (28000 with the other defaults)
   */
  hardDeadlineMs?: number;
  /**
   * The pod's `terminationGracePeriodSeconds`, when known: the hard deadline must end before it,
   * or the kubelet's SIGKILL cuts the shutdown short.
   */
  terminationGracePeriodSeconds?: number;
  /**
   * Signals that start the graceful shutdown. A second signal skips what is left of the drain delay.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals?: NodeJS.Signals[];
  /**
   * Identifies this instance in logs, metrics and the registry.
   * @default `${hostname()}-${process.pid}`
   */
  instanceId?: string;
  /**
   * Version of the running build.
   * @default process.env.APP_VERSION ?? process.env.npm_package_version ?? '0.0.0'
   */
  version?: string;
  /**
   * Deployment colour (blue/green) or any lower-case label.
   * @default 'default'
   */
  color?: string;
  /**
   * Keep-alive idle timeout of the HTTP server. Must be longer than the idle timeout of the load
   * balancer in front (60 s for AWS ALB, nginx upstream keepalive_timeout 60 s), or the balancer
   * reuses a socket that Node is closing and answers 502.
   * @default 65000
   */
  keepAliveTimeoutMs?: number;
  /**
   * `server.headersTimeout`; must be greater than `keepAliveTimeoutMs`.
   * @default keepAliveTimeoutMs + 1000
   */
  headersTimeoutMs?: number;
  /**
   * Exit the process when the shutdown sequence ends (code 0, or 1 on failure / deadline).
   * @default true
   */
  exitOnShutdown?: boolean;
}

export interface ResolvedLifecycleOptions {
  readonly warmupTimeoutMs: number;
  readonly minReadyDelayMs: number;
  readonly drainDelayMs: number;
  readonly drainTaskTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly hookTimeoutMs: number;
  readonly hardDeadlineMs: number;
  readonly terminationGracePeriodSeconds: number | undefined;
  readonly signals: readonly NodeJS.Signals[];
  readonly instanceId: string;
  readonly version: string;
  readonly color: string;
  readonly keepAliveTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly exitOnShutdown: boolean;
}

/** Margin between the end of the budgeted shutdown and the hard deadline. */
const DEADLINE_MARGIN_MS = 3000;

export const DEFAULT_LIFECYCLE_OPTIONS = {
  warmupTimeoutMs: 30_000,
  minReadyDelayMs: 500,
  drainDelayMs: 5_000,
  drainTaskTimeoutMs: 5_000,
  shutdownTimeoutMs: 15_000,
  hookTimeoutMs: 5_000,
  signals: ['SIGTERM', 'SIGINT'] as NodeJS.Signals[],
  color: 'default',
  keepAliveTimeoutMs: 65_000,
  exitOnShutdown: true,
} as const;

/** The shutdown time the options ask for, before the hard deadline's margin. */
export function shutdownBudgetMs(
  o: Pick<ResolvedLifecycleOptions, 'drainDelayMs' | 'drainTaskTimeoutMs' | 'shutdownTimeoutMs' | 'hookTimeoutMs'>,
): number {
  return Math.max(o.drainDelayMs, o.drainTaskTimeoutMs) + o.shutdownTimeoutMs + o.hookTimeoutMs;
}

const MS_FIELDS = [
  'warmupTimeoutMs',
  'minReadyDelayMs',
  'drainDelayMs',
  'drainTaskTimeoutMs',
  'shutdownTimeoutMs',
  'hookTimeoutMs',
  'hardDeadlineMs',
  'keepAliveTimeoutMs',
  'headersTimeoutMs',
] as const;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveLifecycleOptions(
  input: LifecycleModuleOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedLifecycleOptions {
  const problems: string[] = [];
  if (input === null || typeof input !== 'object') {
    throw new LifecycleOptionsError(['options must be an object']);
  }
  for (const field of MS_FIELDS) {
    const value = input[field];
    if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
      problems.push(`${field} must be a whole number of milliseconds >= 0 (got ${show(value)})`);
    }
  }
  const grace = input.terminationGracePeriodSeconds;
  if (grace !== undefined && !(typeof grace === 'number' && Number.isFinite(grace) && grace > 0)) {
    problems.push(`terminationGracePeriodSeconds must be a positive number (got ${show(grace)})`);
  }
  const signals = input.signals ?? DEFAULT_LIFECYCLE_OPTIONS.signals;
  if (!Array.isArray(signals) || signals.length === 0) {
    problems.push(`signals must be a non-empty array of ${SUPPORTED_SIGNALS.join(', ')}`);
  } else {
    for (const s of signals) {
      if (!SUPPORTED_SIGNALS.includes(s)) problems.push(`signals: ${show(s)} is not one of ${SUPPORTED_SIGNALS.join(', ')}`);
    }
  }
  for (const field of ['instanceId', 'version'] as const) {
    const value = input[field];
    if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) {
      problems.push(`${field} must be a non-empty string (got ${show(value)})`);
    }
  }
  if (input.color !== undefined && !(typeof input.color === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(input.color))) {
    problems.push(`color must be a lower-case label such as "blue" or "green" (got ${show(input.color)})`);
  }
  if (input.exitOnShutdown !== undefined && typeof input.exitOnShutdown !== 'boolean') {
    problems.push(`exitOnShutdown must be a boolean (got ${show(input.exitOnShutdown)})`);
  }
  if (problems.length > 0) throw new LifecycleOptionsError(problems);

  const d = DEFAULT_LIFECYCLE_OPTIONS;
  const partial = {
    warmupTimeoutMs: input.warmupTimeoutMs ?? d.warmupTimeoutMs,
    minReadyDelayMs: input.minReadyDelayMs ?? d.minReadyDelayMs,
    drainDelayMs: input.drainDelayMs ?? d.drainDelayMs,
    drainTaskTimeoutMs: input.drainTaskTimeoutMs ?? d.drainTaskTimeoutMs,
    shutdownTimeoutMs: input.shutdownTimeoutMs ?? d.shutdownTimeoutMs,
    hookTimeoutMs: input.hookTimeoutMs ?? d.hookTimeoutMs,
  };
  const keepAliveTimeoutMs = input.keepAliveTimeoutMs ?? d.keepAliveTimeoutMs;
  const resolved: ResolvedLifecycleOptions = {
    ...partial,
    hardDeadlineMs: input.hardDeadlineMs ?? shutdownBudgetMs(partial) + DEADLINE_MARGIN_MS,
    terminationGracePeriodSeconds: grace,
    signals: [...new Set(signals)],
    instanceId: input.instanceId ?? `${hostname()}-${process.pid}`,
    version: input.version ?? (env.APP_VERSION || env.npm_package_version || '0.0.0'),
    color: input.color ?? d.color,
    keepAliveTimeoutMs,
    headersTimeoutMs: input.headersTimeoutMs ?? keepAliveTimeoutMs + 1000,
    exitOnShutdown: input.exitOnShutdown ?? d.exitOnShutdown,
  };

  // One time budget: the phases of the shutdown must fit inside the hard deadline, and the hard
  // deadline inside the orchestrator's grace period; otherwise SIGKILL lands mid-drain.
  const budget = shutdownBudgetMs(resolved);
  if (budget > resolved.hardDeadlineMs) {
    problems.push(
      `hardDeadlineMs (${resolved.hardDeadlineMs}) is shorter than the shutdown it must cover: ` +
        `max(drainDelayMs ${resolved.drainDelayMs}, drainTaskTimeoutMs ${resolved.drainTaskTimeoutMs}) + shutdownTimeoutMs ` +
        `${resolved.shutdownTimeoutMs} + hookTimeoutMs ${resolved.hookTimeoutMs} = ${budget} ms; raise hardDeadlineMs or shorten the phases`,
    );
  }
  if (grace !== undefined && resolved.hardDeadlineMs >= grace * 1000) {
    problems.push(
      `hardDeadlineMs (${resolved.hardDeadlineMs}) must end before terminationGracePeriodSeconds (${grace} s = ${grace * 1000} ms), ` +
        'or the kubelet kills the process mid-shutdown; raise terminationGracePeriodSeconds or shorten the phases',
    );
  }
  if (resolved.headersTimeoutMs <= resolved.keepAliveTimeoutMs) {
    problems.push(
      `headersTimeoutMs (${resolved.headersTimeoutMs}) must be greater than keepAliveTimeoutMs (${resolved.keepAliveTimeoutMs})`,
    );
  }
  if (problems.length > 0) throw new LifecycleOptionsError(problems);
  return Object.freeze(resolved);
}

/** Renders a rejected value for an error message; JSON.stringify would print NaN and Infinity as null. */
function show(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value);
}
