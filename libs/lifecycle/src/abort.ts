/**
 * Settles with `promise`, or rejects as soon as `signal` aborts, for calls that cannot be
 * cancelled (a client without AbortSignal support). The promise is left to settle on its own;
 * `onLateValue` receives what it resolves with after the abort (a pooled client to release).
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal, onLateValue?: (value: T) => void): Promise<T> {
  if (signal.aborted) {
    promise.then(onLateValue, () => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (aborted) onLateValue?.(value);
        else resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!aborted) reject(error);
      },
    );
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

/** An error as log fields: name, message and a string `code` when it has one (`ECONNREFUSED`, gRPC's numeric codes). */
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
