import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { RegistryTimeoutError } from './registry.errors';

/**
 * Runs `fn` with a signal that aborts after `timeoutMs` on the injected clock (or when `outer`
 * aborts), and rejects at that moment whatever `fn` does: a registry that never answers cannot
 * hold the caller longer than the bound.
 */
export function bounded<T>(
  clock: LifecycleClock,
  operation: string,
  timeoutMs: number,
  fn: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
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
      finish(() => reject(new RegistryTimeoutError(operation, timeoutMs)));
    });
    const onOuterAbort = () => {
      abort.abort();
      finish(() => reject(new RegistryTimeoutError(`${operation} (aborted)`, timeoutMs)));
    };
    if (outer?.aborted) return onOuterAbort();
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    Promise.resolve()
      .then(() => fn(abort.signal))
      .then(
        (value) => finish(() => resolve(value)),
        (error: unknown) => finish(() => reject(error)),
      );
  });
}

/** Resolves or rejects with `promise`, or rejects as soon as `signal` aborts (for calls that cannot be cancelled). */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

export function describeError(error: unknown): { message: string; code?: string; name?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: error.message,
      ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
    };
  }
  return { message: String(error) };
}
