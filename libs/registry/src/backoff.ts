/** Exponential backoff with jitter; `random` is injected so that specs can pin it. */
export interface BackoffPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  /** Share of the delay that is random, 0 to 1. */
  readonly jitter: number;
}

/**
 * Delay before retry number `attempt` (1 for the first retry): `initial * multiplier^(attempt-1)`,
 * capped at `maxDelayMs`, then reduced by up to `jitter` of itself. Jitter spreads a fleet that
 * lost the registry at the same moment, so that it does not come back in lockstep.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.multiplier, exponent));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(base - base * policy.jitter * r));
}
