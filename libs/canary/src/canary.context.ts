import { Injectable } from '@nestjs/common';
import { requestStorage } from '@nest-rollout/lifecycle';
import type { CanaryDecision } from './canary.types';

/**
 * The decision of the current request, for code that has no handle on the request (a downstream
 * client, a log mixin): held in the `canary` slot of the unit of work's store in nest-rollout's one
 * AsyncLocalStorage (`requestStorage`), beside LoggingModule's trace ids when that module is in use.
 * Outside a decided unit of work, `current()` is undefined.
 */
@Injectable()
export class CanaryContext {
  current(): CanaryDecision | undefined {
    return requestStorage.getStore()?.canary as CanaryDecision | undefined;
  }

  /** Runs `fn` with `decision` as the current one, in a store of its own (the current store's other slots kept). */
  run<T>(decision: CanaryDecision, fn: () => T): T {
    const store = requestStorage.getStore();
    return requestStorage.run(store === undefined ? { canary: decision } : { ...store, request: false, canary: decision }, fn);
  }

  /**
   * For an HTTP request's handler: makes `decision` the request's. In the request's own store when
   * it has one (LoggingModule's, made for this request as it arrived), which enters no new context;
   * otherwise as `run`.
   */
  runForRequest<T>(decision: CanaryDecision, fn: () => T): T {
    const store = requestStorage.getStore();
    if (store?.request !== true) return this.run(decision, fn);
    store.canary = decision;
    return fn();
  }
}
