import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable } from '@nestjs/common';
import type { CanaryDecision } from './canary.types';

/**
 * The decision of the current request, for code that has no handle on the request (a downstream
 * client, a log mixin): held in an AsyncLocalStorage that the canary interceptor enters for the
 * handler of each `@Canary()` route. Outside one, `current()` is undefined.
 */
@Injectable()
export class CanaryContext {
  private readonly storage = new AsyncLocalStorage<CanaryDecision>();

  current(): CanaryDecision | undefined {
    return this.storage.getStore();
  }

  /** Runs `fn` with `decision` as the current one. */
  run<T>(decision: CanaryDecision, fn: () => T): T {
    return this.storage.run(decision, fn);
  }
}
