import type { LifecycleProcess } from './lifecycle.runtime';

/**
 * A `LifecycleProcess` for tests, of this project and of applications using it (provide it as
 * LIFECYCLE_PROCESS): signals arrive only when the test emits them, and `exit()` records its code
 * instead of ending the test runner. Its methods are bound: they may be passed around like
 * `systemProcess`'s.
 */
export class ManualProcess implements LifecycleProcess {
  /** The codes `exit()` was called with, in order. */
  readonly exitCodes: number[] = [];
  private readonly handlers = new Map<NodeJS.Signals, Set<() => void>>();

  /** @param resources What `activeResources()` reports as still holding the event loop open. */
  constructor(private readonly resources: readonly string[] = []) {}

  readonly onSignal = (signal: NodeJS.Signals, handler: () => void): void => {
    const set = this.handlers.get(signal) ?? new Set();
    set.add(handler);
    this.handlers.set(signal, set);
  };

  readonly offSignal = (signal: NodeJS.Signals, handler: () => void): void => {
    this.handlers.get(signal)?.delete(handler);
  };

  readonly exit = (code: number): void => {
    this.exitCodes.push(code);
  };

  readonly activeResources = (): string[] => [...this.resources];

  /** Delivers `signal` to the handlers registered for it, as the OS would. */
  emit(signal: NodeJS.Signals): void {
    for (const handler of [...(this.handlers.get(signal) ?? [])]) handler();
  }

  /** How many handlers are registered for `signal`, or for every signal. */
  listenerCount(signal?: NodeJS.Signals): number {
    if (signal) return this.handlers.get(signal)?.size ?? 0;
    return [...this.handlers.values()].reduce((sum, set) => sum + set.size, 0);
  }
}
