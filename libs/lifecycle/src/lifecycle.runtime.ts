/**
 * Time, signals and exit, behind small interfaces so that unit tests never sleep
 * and never kill the test runner. The defaults are the real clock and process.
 */
export interface LifecycleClock {
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. Never rejects. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Runs `fn` after `ms` unless cancelled; the timer must not keep the process alive. */
  setTimer(ms: number, fn: () => void): () => void;
}

export interface LifecycleProcess {
  onSignal(signal: NodeJS.Signals, handler: () => void): void;
  offSignal(signal: NodeJS.Signals, handler: () => void): void;
  exit(code: number): void;
  /** What still holds the event loop open (`process.getActiveResourcesInfo()`). */
  activeResources(): string[];
}

export const systemClock: LifecycleClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    }),
  setTimer: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return () => clearTimeout(timer);
  },
};

export const systemProcess: LifecycleProcess = {
  onSignal: (signal, handler) => void process.on(signal, handler),
  offSignal: (signal, handler) => void process.off(signal, handler),
  exit: (code) => process.exit(code),
  activeResources: () => process.getActiveResourcesInfo(),
};
