import type { LifecycleClock } from '@nest-rollout/lifecycle';

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/** Lets promise chains run; no wall-clock waiting. */
export async function flush(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * A clock for unit specs: time moves only when the spec says so, timers fire in order as it does,
 * with pending promise callbacks run between them. Specs never sleep. Kept out of the build.
 */
export class FakeClock implements LifecycleClock {
  private current: number;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.current = start;
  }

  readonly now = (): number => this.current;

  readonly setTimer = (ms: number, fn: () => void): (() => void) => {
    const timer: Timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  };

  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const cancel = this.setTimer(ms, resolve);
      signal?.addEventListener(
        'abort',
        () => {
          cancel();
          resolve();
        },
        { once: true },
      );
    });

  get pendingTimers(): number {
    return this.timers.length;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.current + ms;
    await flush();
    for (;;) {
      const next = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.current = next.at;
      next.fn();
      await flush();
    }
    this.current = target;
    await flush();
  }
}
