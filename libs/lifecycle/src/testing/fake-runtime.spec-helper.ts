export { ManualClock, settle } from '../manual-clock';
export { ManualProcess } from '../manual-process';

/**
 * Helpers of the lifecycle's own specs; the clock and the process are the exported ManualClock and
 * ManualProcess. Kept out of the lib build (tsconfig.lib.json excludes *.spec-helper.ts).
 */

/**
 * Waits until `condition` holds, letting the event loop run (real sockets need it). Fails after
 * `timeoutMs` of wall-clock time with `what` in the message; this bounds a broken test, it is not
 * a timing assertion.
 */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

/** A promise the test settles by hand, remembering whether anyone started waiting on it. */
export class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}
