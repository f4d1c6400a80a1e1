import { hostname } from 'node:os';
import { z } from 'zod';
import { LifecycleOptionsError } from './lifecycle.errors';
import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected, withoutDefault } from './module-options';

const SUPPORTED_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];

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

const MILLISECONDS = 'must be a whole number of milliseconds >= 0';
const milliseconds = z.int({ error: MILLISECONDS }).min(0, { error: MILLISECONDS });
const NON_EMPTY_STRING = 'must be a non-empty string';
const nonEmptyString = z.string({ error: NON_EMPTY_STRING }).regex(/\S/, { error: NON_EMPTY_STRING });
const POSITIVE_NUMBER = 'must be a positive number';
const COLOR = 'must be a lower-case label such as "blue" or "green"';
const BOOLEAN = 'must be a boolean';

const lifecycleOptionsObject = optionGroup({
  /**
   * Default timeout of one warm-up task. A critical task that fails or times out stops the process.
   * @default 30000
   */
  warmupTimeoutMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.warmupTimeoutMs),
  /**
   * Settle delay between the end of warm-up and READY ("wait a few seconds before reporting ready").
   * @default 500
   */
  minReadyDelayMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.minReadyDelayMs),
  /**
   * Time between DRAINING (readiness 503, registry deregistered) and closing the listener, so that
   * load balancers and kube-proxy notice the instance is going away while it still serves.
   * @default 5000
   */
  drainDelayMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.drainDelayMs),
  /**
   * Default timeout of one drain task (e.g. registry deregistration). Drain tasks run in parallel
   * with the drain delay; STOPPING begins when both are over.
   * @default 5000
   */
  drainTaskTimeoutMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.drainTaskTimeoutMs),
  /**
   * Once the listener is closed, how long in-flight requests may take before their connections are
   * force-closed (and logged as cut).
   * @default 15000
   */
  shutdownTimeoutMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.shutdownTimeoutMs),
  /**
   * Time budgeted for Nest's shutdown hooks (onModuleDestroy, beforeApplicationShutdown,
   * onApplicationShutdown). Used in the time-budget check against `hardDeadlineMs`.
   * @default 5000
   */
  hookTimeoutMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.hookTimeoutMs),
  /**
   * From the first signal, the time after which the process exits with code 1 whatever still runs.
   * @default max(drainDelayMs, drainTaskTimeoutMs) + shutdownTimeoutMs + hookTimeoutMs + 3000 (28000 with the other defaults)
   */
  hardDeadlineMs: milliseconds.optional(),
  /**
   * The pod's `terminationGracePeriodSeconds`, when known: the hard deadline must end before it,
   * or the kubelet's SIGKILL cuts the shutdown short.
   */
  terminationGracePeriodSeconds: withoutDefault(z.number({ error: POSITIVE_NUMBER }).positive({ error: POSITIVE_NUMBER })),
  /**
   * Signals that start the graceful shutdown. A second signal skips what is left of the drain delay.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals: z
    .array(z.enum(SUPPORTED_SIGNALS, { error: `must be one of ${SUPPORTED_SIGNALS.join(', ')}` }), {
      error: `must be a non-empty array of ${SUPPORTED_SIGNALS.join(', ')}`,
    })
    .min(1, { error: `must be a non-empty array of ${SUPPORTED_SIGNALS.join(', ')}` })
    .default(DEFAULT_LIFECYCLE_OPTIONS.signals),
  /**
   * Identifies this instance in logs, metrics and the registry.
   * @default `${hostname()}-${process.pid}`
   */
  instanceId: nonEmptyString.optional(),
  /**
   * Version of the running build.
   * @default process.env.APP_VERSION ?? process.env.npm_package_version ?? '0.0.0'
   */
  // Its default comes from the environment that resolveLifecycleOptions is given.
  version: withoutDefault(nonEmptyString),
  /**
   * Deployment colour (blue/green) or any lower-case label.
   * @default 'default'
   */
  color: z
    .string({ error: COLOR })
    .regex(/^[a-z][a-z0-9-]{0,31}$/, { error: COLOR })
    .default(DEFAULT_LIFECYCLE_OPTIONS.color),
  /**
   * Keep-alive idle timeout of the HTTP server. Must be longer than the idle timeout of the load
   * balancer in front (60 s for AWS ALB, nginx upstream keepalive_timeout 60 s), or the balancer
   * reuses a socket that Node is closing and answers 502.
   * @default 65000
   */
  keepAliveTimeoutMs: milliseconds.default(DEFAULT_LIFECYCLE_OPTIONS.keepAliveTimeoutMs),
  /**
   * `server.headersTimeout`; must be greater than `keepAliveTimeoutMs`.
   * @default keepAliveTimeoutMs + 1000
   */
  headersTimeoutMs: milliseconds.optional(),
  /**
   * Exit the process when the shutdown sequence ends (code 0, or 1 on failure / deadline).
   * @default true
   */
  exitOnShutdown: z.boolean({ error: BOOLEAN }).default(DEFAULT_LIFECYCLE_OPTIONS.exitOnShutdown),
});

type ParsedLifecycleOptions = z.output<typeof lifecycleOptionsObject>;

/** hardDeadlineMs, by default the shutdown's phases plus a margin. */
function hardDeadlineMsOf(o: ParsedLifecycleOptions): number {
  return o.hardDeadlineMs ?? shutdownBudgetMs(o) + DEADLINE_MARGIN_MS;
}

/** headersTimeoutMs, by default just above the keep-alive timeout. */
function headersTimeoutMsOf(o: ParsedLifecycleOptions): number {
  return o.headersTimeoutMs ?? o.keepAliveTimeoutMs + 1000;
}

/**
 * One time budget: the phases of the shutdown must fit inside the hard deadline, and the hard
 * deadline inside the orchestrator's grace period; otherwise SIGKILL lands mid-drain.
 */
function checkTimeBudget(o: ParsedLifecycleOptions, ctx: z.RefinementCtx<ParsedLifecycleOptions>): void {
  if (!rejected(ctx, 'drainDelayMs', 'drainTaskTimeoutMs', 'shutdownTimeoutMs', 'hookTimeoutMs', 'hardDeadlineMs')) {
    const budget = shutdownBudgetMs(o);
    const hardDeadlineMs = hardDeadlineMsOf(o);
    if (budget > hardDeadlineMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['hardDeadlineMs'],
        message:
          `${hardDeadlineMs} ms is shorter than the shutdown it must cover: max(drainDelayMs ${o.drainDelayMs}, ` +
          `drainTaskTimeoutMs ${o.drainTaskTimeoutMs}) + shutdownTimeoutMs ${o.shutdownTimeoutMs} + hookTimeoutMs ` +
          `${o.hookTimeoutMs} = ${budget} ms; raise hardDeadlineMs or shorten the phases`,
      });
    }
    const grace = o.terminationGracePeriodSeconds;
    if (!rejected(ctx, 'terminationGracePeriodSeconds') && grace !== undefined && hardDeadlineMs >= grace * 1000) {
      ctx.addIssue({
        code: 'custom',
        path: ['hardDeadlineMs'],
        message:
          `${hardDeadlineMs} ms must end before terminationGracePeriodSeconds (${grace} s = ${grace * 1000} ms), ` +
          'or the kubelet kills the process mid-shutdown; raise terminationGracePeriodSeconds or shorten the phases',
      });
    }
  }
  if (!rejected(ctx, 'keepAliveTimeoutMs', 'headersTimeoutMs') && headersTimeoutMsOf(o) <= o.keepAliveTimeoutMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['headersTimeoutMs'],
      message: `${headersTimeoutMsOf(o)} ms must be greater than keepAliveTimeoutMs (${o.keepAliveTimeoutMs} ms)`,
    });
  }
}

const lifecycleOptionsSchema = lifecycleOptionsObject.superRefine(checkTimeBudget, EVEN_WITH_OTHER_PROBLEMS).transform((o) => ({
  ...o,
  hardDeadlineMs: hardDeadlineMsOf(o),
  headersTimeoutMs: headersTimeoutMsOf(o),
  signals: [...new Set(o.signals)] as readonly NodeJS.Signals[],
  instanceId: o.instanceId ?? `${hostname()}-${process.pid}`,
}));

/** Options of `LifecycleModule.forRoot()`; every field is optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface LifecycleModuleOptions extends z.input<typeof lifecycleOptionsSchema> {}

/** The options after one merge with the defaults, as `LIFECYCLE_OPTIONS` provides them. */
export type ResolvedLifecycleOptions = Readonly<z.output<typeof lifecycleOptionsSchema> & { version: string }>;

/** Merges the input with the defaults once and validates it; every problem is reported together. */
export function resolveLifecycleOptions(
  input: LifecycleModuleOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedLifecycleOptions {
  const options = parseModuleOptions(lifecycleOptionsSchema, input, (problems) => new LifecycleOptionsError(problems));
  return Object.freeze({ ...options, version: options.version ?? (env.APP_VERSION || env.npm_package_version || '0.0.0') });
}
