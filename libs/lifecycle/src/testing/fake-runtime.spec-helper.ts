import type { LifecycleProcess } from '../lifecycle.runtime';

export { ManualClock, settle } from '../manual-clock';

/**
 * Test doubles for LIFECYCLE_PROCESS (the clock is the exported ManualClock): signals are emitted
 * by the test, and exit codes are recorded instead of ending the test runner.
 * Kept out of the lib build (tsconfig.lib.json excludes *.spec-helper.ts).
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

export class FakeProcess implements LifecycleProcess {
  readonly exitCodes: number[] = [];
  private readonly handlers = new Map<NodeJS.Signals, Set<() => void>>();

  onSignal(signal: NodeJS.Signals, handler: () => void): void {
    const set = this.handlers.get(signal) ?? new Set();
    set.add(handler);
    this.handlers.set(signal, set);
  }

  offSignal(signal: NodeJS.Signals, handler: () => void): void {
    this.handlers.get(signal)?.delete(handler);
  }

  exit(code: number): void {
    this.exitCodes.push(code);
  }

  activeResources(): string[] {
    return ['TCPSocketWrap', 'FakeHangingHook'];
  }

  /** Delivers `signal` to the handlers registered for it, as the OS would. */
  emit(signal: NodeJS.Signals): void {
    for (const handler of [...(this.handlers.get(signal) ?? [])]) handler();
  }

  listenerCount(signal?: NodeJS.Signals): number {
    if (signal) return this.handlers.get(signal)?.size ?? 0;
    return [...this.handlers.values()].reduce((sum, set) => sum + set.size, 0);
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
