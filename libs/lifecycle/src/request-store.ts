import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * What nest-rollout's modules keep for one unit of work (an HTTP request, a `TraceContext.run`
 * block, a gRPC call). LoggingModule's trace ids are such a store; `@Canary()` keeps its decision in
 * the `canary` slot of the request's store, or in a store of its own when there is none.
 */
export interface RequestStore {
  /**
   * True for a store made for one HTTP request as it arrived (LoggingModule's), which no other unit
   * of work shares: a module may set its slot in it for the rest of the request.
   */
  readonly request?: boolean;
  /** The `@Canary()` decision of the unit of work (@nest-rollout/canary). */
  canary?: unknown;
}

/**
 * The one AsyncLocalStorage of nest-rollout's modules, shared rather than one per module: on
 * Node 20 every storage in use is copied into every promise and other async resource the process
 * creates, so a second storage costs every request of every route, not only the routes that use
 * it. The stores are per unit of work; the storage holds no state of its own, which is why one
 * storage for the process is safe for two applications in it.
 */
export const requestStorage = new AsyncLocalStorage<RequestStore>();
