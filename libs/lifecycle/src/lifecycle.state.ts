/**
 * The lifecycle of one instance. Only `LifecycleService.transition` changes it,
 * and only along the edges of `LIFECYCLE_TRANSITIONS`.
 */
export enum LifecycleState {
  STARTING = 'STARTING',
  WARMING_UP = 'WARMING_UP',
  READY = 'READY',
  DRAINING = 'DRAINING',
  STOPPING = 'STOPPING',
  STOPPED = 'STOPPED',
}

/**
 * Legal transitions. A signal can arrive before READY, so every boot state may
 * go to DRAINING; a programmatic `app.close()` skips the drain and goes straight to
 * STOPPING.
 */
export const LIFECYCLE_TRANSITIONS: Readonly<Record<LifecycleState, readonly LifecycleState[]>> = {
  [LifecycleState.STARTING]: [LifecycleState.WARMING_UP, LifecycleState.DRAINING, LifecycleState.STOPPING],
  [LifecycleState.WARMING_UP]: [LifecycleState.READY, LifecycleState.DRAINING, LifecycleState.STOPPING],
  [LifecycleState.READY]: [LifecycleState.DRAINING, LifecycleState.STOPPING],
  [LifecycleState.DRAINING]: [LifecycleState.STOPPING],
  [LifecycleState.STOPPING]: [LifecycleState.STOPPED],
  [LifecycleState.STOPPED]: [],
};

/** Numeric order of the states, for "at or after" comparisons. */
export const LIFECYCLE_STATE_ORDER: Readonly<Record<LifecycleState, number>> = {
  [LifecycleState.STARTING]: 0,
  [LifecycleState.WARMING_UP]: 1,
  [LifecycleState.READY]: 2,
  [LifecycleState.DRAINING]: 3,
  [LifecycleState.STOPPING]: 4,
  [LifecycleState.STOPPED]: 5,
};

/** True when `state` is `target` or a later state ("has the instance reached READY?"). */
export function hasReached(state: LifecycleState, target: LifecycleState): boolean {
  return LIFECYCLE_STATE_ORDER[state] >= LIFECYCLE_STATE_ORDER[target];
}

export function isLegalTransition(from: LifecycleState, to: LifecycleState): boolean {
  return LIFECYCLE_TRANSITIONS[from].includes(to);
}

/** One change of state, as emitted on `LifecycleService.changes$`. */
export interface LifecycleStateChange {
  readonly from: LifecycleState;
  readonly to: LifecycleState;
  /** Epoch milliseconds of the change. */
  readonly at: number;
  /** Time spent in `from`, in milliseconds. */
  readonly durationMs: number;
  /** Trace id of the boot or shutdown sequence the change belongs to. */
  readonly traceId: string;
  /** Why the change happened (a signal name, `warm-up complete`, ...). */
  readonly reason: string;
}
