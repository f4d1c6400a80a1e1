import { z } from 'zod';
import type { LifecycleClock } from './lifecycle.runtime';
import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, rejected } from './module-options';

/*
 * Retrying a backend that is down (a registry, a configuration store) the same way in every lib:
 * one backoff policy with its options, and calls bounded in time.
 */

/** Exponential backoff with jitter, as resolved from {@link backoffOptions}. */
export interface BackoffPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  /** Share of the delay that is random, 0 to 1. */
  readonly jitter: number;
}

/** Backoff of retries while a backend is unreachable; every field is optional. */
export interface BackoffOptions {
  /**
   * Delay before the first retry.
   * @default 500
   */
  readonly initialDelayMs?: number;
  /**
   * Longest delay between two retries; at least `initialDelayMs`.
   * @default 30000
   */
  readonly maxDelayMs?: number;
  /**
   * Factor from one delay to the next.
   * @default 2
   */
  readonly multiplier?: number;
  /**
   * Share of each delay that is random (0: none, 1: anywhere between 0 and the delay), so that a
   * fleet that lost the backend together does not retry in lockstep.
   * @default 0.5
   */
  readonly jitter?: number;
}

export const DEFAULT_BACKOFF_POLICY = Object.freeze({ initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 } as const);

const MAX_TIMER_MS = 2 ** 31 - 1;

function delayMs(defaultMs: number) {
  const message = `must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`;
  return z.number({ error: message }).int(message).min(1, message).max(MAX_TIMER_MS, message).default(defaultMs);
}

/**
 * The `retry` option group of a module or a source (`retry: backoffOptions.prefault({})`): strict,
 * frozen once parsed, every problem reported, `maxDelayMs` checked against `initialDelayMs`.
 */
// Typed by its interfaces, so that declarations built from it name BackoffOptions and keep its JSDoc.
export const backoffOptions: z.ZodType<BackoffPolicy, BackoffOptions> = optionGroup({
  initialDelayMs: delayMs(DEFAULT_BACKOFF_POLICY.initialDelayMs),
  maxDelayMs: delayMs(DEFAULT_BACKOFF_POLICY.maxDelayMs),
  multiplier: z.number({ error: 'must be a number >= 1' }).min(1, 'must be a number >= 1').default(DEFAULT_BACKOFF_POLICY.multiplier),
  jitter: z
    .number({ error: 'must be a number from 0 to 1' })
    .min(0, 'must be a number from 0 to 1')
    .max(1, 'must be a number from 0 to 1')
    .default(DEFAULT_BACKOFF_POLICY.jitter),
}).superRefine((retry, ctx) => {
  if (rejected(ctx, 'initialDelayMs', 'maxDelayMs') || retry.maxDelayMs >= retry.initialDelayMs) return;
  ctx.addIssue({ code: 'custom', path: ['maxDelayMs'], message: 'must be at least retry.initialDelayMs' });
}, EVEN_WITH_OTHER_PROBLEMS);

/**
 * Delay before retry number `attempt` (1 for the first retry): `initial * multiplier^(attempt-1)`,
 * capped at `maxDelayMs`, then reduced by up to `jitter` of itself. Jitter spreads a fleet that
 * lost its backend at the same moment, so that it does not come back in lockstep. `random` is
 * injected so that specs can pin it.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.multiplier, exponent));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(base - base * policy.jitter * r));
}

/** How a {@link bounded} call ends when it does not settle in time. */
export interface BoundedCallOptions {
  /** The caller giving up (a shutdown, a stopped source): the call is aborted at once. */
  readonly signal?: AbortSignal;
  /** The error the call rejects with when its time is up. */
  readonly timedOut: () => Error;
  /** The error it rejects with when `signal` aborts first. */
  readonly aborted: () => Error;
}

/**
 * Runs `call` with a signal that aborts after `timeoutMs` on `clock` or when `options.signal`
 * aborts, and rejects at that moment whatever `call` does: a backend that never answers (or a
 * client that ignores the signal) cannot hold the caller longer than the bound.
 */
export function bounded<T>(
  clock: LifecycleClock,
  timeoutMs: number,
  call: (signal: AbortSignal) => Promise<T>,
  options: BoundedCallOptions,
): Promise<T> {
  const { signal: outer, timedOut, aborted } = options;
  const abort = new AbortController();
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (action: () => void) => {
      if (settled) return;
      settled = true;
      cancelTimer();
      outer?.removeEventListener('abort', onOuterAbort);
      action();
    };
    const cancelTimer = clock.setTimer(timeoutMs, () => {
      abort.abort();
      finish(() => reject(timedOut()));
    });
    const onOuterAbort = () => {
      abort.abort();
      finish(() => reject(aborted()));
    };
    if (outer?.aborted) return onOuterAbort();
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    Promise.resolve()
      .then(() => call(abort.signal))
      .then(
        (value) => finish(() => resolve(value)),
        (error: unknown) => finish(() => reject(error)),
      );
  });
}
