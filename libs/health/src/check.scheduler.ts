import type { LifecycleClock } from '@nest-rollout/lifecycle';
import type { HealthCheckContext, HealthCheckDetails, HealthCheckReport, ResolvedHealthCheck } from './health.check';
import { HealthFailureKind } from './health.constants';
import { HealthCheckError } from './health.errors';
import { classifyFailure, redactSecrets } from './health.redaction';

/** The outcome of one run of a check. */
type Observation =
  | { readonly ok: true; readonly at: number; readonly durationMs: number; readonly details: HealthCheckDetails | undefined }
  | { readonly ok: false; readonly at: number; readonly durationMs: number; readonly kind: HealthFailureKind; readonly message: string };

interface CheckState {
  readonly check: ResolvedHealthCheck;
  /** After damping; `pending` until the first run ends. */
  status: 'pending' | 'up' | 'down';
  last: Observation | undefined;
  /** The latest failure, kept while damping still reports the check up. */
  lastFailure: Extract<Observation, { ok: false }> | undefined;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  /** The wait before the next run. */
  cancelTimer: (() => void) | undefined;
  /** The run in flight: its abort controller and its timeout. */
  running: { readonly abort: AbortController; readonly cancelTimeout: () => void } | undefined;
}

export interface CheckSchedulerHooks {
  /** Builds the context handed to a check's `run`. */
  context(check: ResolvedHealthCheck, signal: AbortSignal): HealthCheckContext;
  /** Called once per change of a check's damped status (never once per run). */
  onStatusChange(report: HealthCheckReport, previous: 'pending' | 'up' | 'down'): void;
  /** Secrets to mask in failure messages. */
  readonly secrets: readonly string[];
}

/**
 * Runs every check in the background, each on its own interval and bounded by its timeout, and
 * keeps the latest result. Probes read `reports()`, which never runs a check: a probe storm never
 * reaches a dependency, and a hung dependency never hangs a probe.
 */
export class CheckScheduler {
  private readonly states: CheckState[];
  private started = false;
  private stopped = false;
  private firstRoundDone: () => void = () => undefined;
  /** Resolves once every check has a first result (or the scheduler stopped). */
  readonly firstRound: Promise<void>;

  constructor(
    checks: readonly ResolvedHealthCheck[],
    private readonly clock: LifecycleClock,
    private readonly hooks: CheckSchedulerHooks,
  ) {
    this.states = checks.map((check) => ({
      check,
      status: 'pending',
      last: undefined,
      lastFailure: undefined,
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      cancelTimer: undefined,
      running: undefined,
    }));
    this.firstRound = new Promise<void>((resolve) => (this.firstRoundDone = resolve));
    if (this.states.length === 0) this.firstRoundDone();
  }

  /** Runs every check once now, then each on its interval. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const state of this.states) this.run(state);
  }

  /**
   * Runs at once every check that `which` selects and that is not running now; its interval
   * starts over from there.
   */
  refresh(which: (report: HealthCheckReport) => boolean): void {
    if (!this.started || this.stopped) return;
    const now = this.clock.now();
    for (const state of this.states) {
      if (state.running || !which(this.report(state, now))) continue;
      state.cancelTimer?.();
      this.run(state);
    }
  }

  /** Cancels the timers and aborts the runs in flight; later results are ignored. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const state of this.states) {
      state.cancelTimer?.();
      state.running?.cancelTimeout();
      state.running?.abort.abort(new HealthCheckError(HealthFailureKind.ERROR, 'health checks stopped'));
      state.running = undefined;
    }
    this.firstRoundDone();
  }

  /** The state of every check now, with `maxAgeMs` applied: an old result counts as down. */
  reports(): HealthCheckReport[] {
    const now = this.clock.now();
    return this.states.map((state) => this.report(state, now));
  }

  private run(state: CheckState): void {
    if (this.stopped) return;
    const { check } = state;
    const startedAt = this.clock.now();
    const abort = new AbortController();
    let settled = false;
    const settle = (outcome: { ok: true; details: HealthCheckDetails | undefined } | { ok: false; error: unknown }) => {
      if (settled) return;
      settled = true;
      cancelTimeout();
      state.running = undefined;
      if (this.stopped) return;
      const at = this.clock.now();
      const durationMs = at - startedAt;
      if (outcome.ok) {
        this.record(state, { ok: true, at, durationMs, details: outcome.details });
      } else {
        const { kind, message } = classifyFailure(outcome.error, this.hooks.secrets);
        this.record(state, { ok: false, at, durationMs, kind, message });
      }
      // The next run starts one interval after this one started, or at once if this one overran:
      // runs of a check never overlap (unless one ignores its signal), so a slow dependency is not
      // piled on.
      const delay = Math.max(0, startedAt + check.intervalMs - at);
      state.cancelTimer = this.clock.setTimer(delay, () => this.run(state));
    };
    // The timeout is the scheduler's, not the check's: a check that ignores its signal is still
    // reported down on time, and its late answer is dropped.
    const cancelTimeout = this.clock.setTimer(check.timeoutMs, () => {
      // Node runs timers before I/O: after the event loop was busy (a probe storm), the answer may
      // already sit in a socket buffer. One turn of I/O first, so that a busy process is not
      // blamed on its dependency.
      setImmediate(() => {
        if (settled) return;
        const error = new HealthCheckError(HealthFailureKind.TIMEOUT, `no answer within ${check.timeoutMs} ms`);
        abort.abort(error);
        settle({ ok: false, error });
      });
    });
    state.running = { abort, cancelTimeout };
    let pending: Promise<HealthCheckDetails | void>;
    try {
      pending = Promise.resolve(check.run(this.hooks.context(check, abort.signal)));
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (details) => settle({ ok: true, details: toDetails(details, this.hooks.secrets) }),
      (error: unknown) => settle({ ok: false, error }),
    );
  }

  private record(state: CheckState, observation: Observation): void {
    const { check } = state;
    const previous = state.status;
    state.last = observation;
    if (observation.ok) {
      state.consecutiveSuccesses += 1;
      state.consecutiveFailures = 0;
    } else {
      state.lastFailure = observation;
      state.consecutiveFailures += 1;
      state.consecutiveSuccesses = 0;
    }
    // The first result counts at once: damping guards a serving instance against a flapping
    // dependency, and an instance that has not turned ready yet is in no load balancer.
    if (previous === 'pending') state.status = observation.ok ? 'up' : 'down';
    else if (previous === 'up' && state.consecutiveFailures >= check.failureThreshold) state.status = 'down';
    else if (previous === 'down' && state.consecutiveSuccesses >= check.successThreshold) state.status = 'up';
    if (state.status !== previous) this.hooks.onStatusChange(this.report(state, observation.at), previous);
    if (previous === 'pending' && this.states.every((s) => s.status !== 'pending')) this.firstRoundDone();
  }

  private report(state: CheckState, now: number): HealthCheckReport {
    const { check, last } = state;
    const base = {
      name: check.name,
      dependency: check.dependency,
      critical: check.critical,
      consecutiveFailures: state.consecutiveFailures,
      consecutiveSuccesses: state.consecutiveSuccesses,
    };
    if (last === undefined) {
      return { ...base, status: 'down', observed: 'pending', kind: HealthFailureKind.PENDING, message: 'first run not finished yet' };
    }
    const timing = { checkedAt: last.at, durationMs: last.durationMs };
    const ageMs = now - last.at;
    if (ageMs > check.maxAgeMs) {
      return {
        ...base,
        ...timing,
        status: 'down',
        observed: last.ok ? 'up' : 'down',
        kind: HealthFailureKind.STALE,
        message: `latest result is ${ageMs} ms old, older than maxAgeMs ${check.maxAgeMs}`,
      };
    }
    const status = state.status === 'up' ? 'up' : 'down';
    const failure = last.ok ? (status === 'down' ? state.lastFailure : undefined) : last;
    return {
      ...base,
      ...timing,
      status,
      observed: last.ok ? 'up' : 'down',
      ...(failure ? { kind: failure.kind, message: failure.message } : {}),
      ...(last.ok && last.details ? { details: last.details } : {}),
    };
  }
}

/** Keeps the scalar details of a passing run; strings are redacted like failure messages. */
function toDetails(value: unknown, secrets: readonly string[]): HealthCheckDetails | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const details: Record<string, string | number | boolean | null> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'string') details[key] = redactSecrets(item, secrets);
    else if (item === null || typeof item === 'number' || typeof item === 'boolean') details[key] = item;
  }
  return details;
}
