import type { LifecycleClock, LifecycleProcess } from '../lifecycle.runtime';

/**
 * Test doubles for LIFECYCLE_CLOCK and LIFECYCLE_PROCESS: time moves only when a test advances it,
 * signals are emitted by the test, and exit codes are recorded instead of ending the test runner.
 * Kept out of the lib build (tsconfig.lib.json excludes *.spec-helper.ts).
 */

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Lets promise chains and pending I/O callbacks run; no wall-clock waiting. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

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

export class ManualClock implements LifecycleClock {
  private current: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const onAbort = () => {
        cancel();
        resolve();
      };
      const cancel = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: PendingTimer = { at: this.current + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Delays (from now) of the timers still pending, soonest first. */
  pendingTimers(): number[] {
    return this.sorted().map((t) => t.at - this.current);
  }

  /** Moves time forward by `ms`, firing every timer that falls due in order, settling after each. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (;;) {
      const next = this.sorted()[0];
      if (!next || next.at > target) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = next.at;
      next.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  private sorted(): PendingTimer[] {
    return [...this.timers].sort((a, b) => a.at - b.at || a.seq - b.seq);
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
