import type { LifecycleClock } from './lifecycle.runtime';

interface PendingTimer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Lets promise chains and pending I/O callbacks run (`turns` turns of the event loop); no wall-clock waiting. */
export async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * A `LifecycleClock` for tests, of this project and of applications using it (provide it as
 * LIFECYCLE_CLOCK, HEALTH_CLOCK, METRICS_CLOCK or REGISTRY_CLOCK): time moves only when the test
 * advances it, timers fire in order as it does, and pending promise callbacks run between them,
 * so a drain delay or a check interval is exact and no test sleeps. Its methods are bound: they
 * may be passed around like `systemClock`'s.
 */
export class ManualClock implements LifecycleClock {
  private current: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.current = start;
  }

  readonly now = (): number => this.current;

  readonly setTimer = (ms: number, fn: () => void): (() => void) => {
    const timer: PendingTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  };

  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
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

  /** Delays (from now) of the timers still pending, soonest first. */
  pendingTimers(): number[] {
    return this.sorted().map((t) => t.at - this.current);
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order, settling after each. */
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

  /** Moves time forward without firing timers: an event loop that stalled. */
  jump(ms: number): void {
    this.current += ms;
  }

  private sorted(): PendingTimer[] {
    return [...this.timers].sort((a, b) => a.at - b.at || a.seq - b.seq);
  }
}
