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
