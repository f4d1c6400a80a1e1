import { Inject, Injectable, Optional } from '@nestjs/common';
import { LifecycleService, requestStorage, type RequestStore } from '@nest-rollout/lifecycle';
import { TraceIdGenerator } from './trace-id.generator';
import { traceIdFromRequestId, type Traceparent } from './traceparent';

/**
 * The ids of the request (or `TraceContext.run` block) being handled: the unit of work's store in
 * nest-rollout's one AsyncLocalStorage, where `@Canary()` keeps its decision beside them.
 */
export interface TraceIds extends RequestStore {
  /** 32 hex digits: the caller's (from its traceparent or a hex x-request-id), else new. */
  readonly traceId: string;
  /** 16 hex digits: new for this request; sent back in the response's traceparent. */
  readonly spanId: string;
  /** The caller's span id, from its traceparent; `undefined` when the trace began here. */
  readonly parentSpanId: string | undefined;
  /** 2 hex digits, the caller's when it sent a traceparent. */
  readonly traceFlags: string;
  /** The caller's x-request-id when it was honoured, else the trace id; echoed as x-request-id. */
  readonly requestId: string;
  /** Fields every further line of this unit of work carries (`TraceContext.annotate`). */
  fields?: Readonly<Record<string, LogFieldValue>>;
}

/** What an annotation may hold: a value a log line renders as is. */
export type LogFieldValue = string | number | boolean;

/** The fields the pino mixin adds to a line. */
export interface TraceLogFields {
  trace_id: string;
  span_id?: string;
  request_id?: string;
}

/** A trace that begins here is marked sampled: every line of it is logged. */
const NEW_TRACE_FLAGS = '01';

/**
 * Owns the per-request trace context: one small `TraceIds` object per request, the request's store
 * in nest-rollout's AsyncLocalStorage (`requestStorage`, shared with `@Canary()`), read by the
 * pino mixin on every line. Internal; `TraceContext` is the public face. The ids come from this
 * provider rather than from module globals, so that two applications in one process (tests) never
 * share ids.
 */
@Injectable()
export class TraceStorage {
  private readonly storage = requestStorage;
  private readonly ids = new TraceIdGenerator();
  /** The trace of lines logged outside requests when no LifecycleModule owns one. */
  private readonly bootTraceId = this.ids.traceId();
  private lifecycle: LifecycleService | undefined;

  constructor(@Optional() @Inject(LifecycleService) lifecycle?: LifecycleService) {
    this.lifecycle = lifecycle;
  }

  /** The current unit of work's ids; not a store `@Canary()` made for itself alone, which has none. */
  current(): TraceIds | undefined {
    const store = this.storage.getStore() as TraceIds | undefined;
    return store?.traceId === undefined ? undefined : store;
  }

  /**
   * Trace id of lines logged outside any request: the lifecycle's current sequence (the boot trace
   * during start-up, a new one from the first shutdown signal on), else this module's boot trace.
   */
  sequenceTraceId(): string {
    return this.lifecycle?.traceId ?? this.bootTraceId;
  }

  /**
   * From now on, lines outside requests carry `lifecycle`'s trace ids. For an `AppLogger`, whose
   * storage exists before the application and so before its lifecycle.
   */
  follow(lifecycle: LifecycleService | undefined): void {
    this.lifecycle = lifecycle;
  }

  /**
   * New ids for a unit of work, continuing `parent` (or a hex `requestId`) when given: an HTTP
   * request as it arrives, or with `nested` a unit of work inside the current one, which keeps its
   * `@Canary()` decision. A request never does: the store current when it arrives is the previous
   * request's on the connection.
   */
  begin(parent: Traceparent | undefined, requestId: string | undefined, nested = false): TraceIds {
    const traceId = parent?.traceId ?? (requestId === undefined ? undefined : traceIdFromRequestId(requestId)) ?? this.ids.traceId();
    return {
      traceId,
      spanId: this.ids.spanId(),
      parentSpanId: parent?.parentId,
      traceFlags: parent?.traceFlags ?? NEW_TRACE_FLAGS,
      requestId: requestId ?? traceId,
      request: !nested,
      canary: nested ? this.storage.getStore()?.canary : undefined,
    };
  }

  /**
   * Makes `trace` current for the rest of the synchronous execution and everything it schedules.
   * See `HttpTraceListener` for why requests use this rather than `run`.
   */
  enter(trace: TraceIds): void {
    this.storage.enterWith(trace);
  }

  run<T>(trace: TraceIds, fn: () => T): T {
    return this.storage.run(trace, fn);
  }

  /** Called by pino for every line; a new object each time because pino merges into it. */
  logFields(): TraceLogFields {
    const trace = this.current();
    return trace === undefined ? { trace_id: this.sequenceTraceId() } : fieldsOf(trace);
  }
}

export function fieldsOf(trace: TraceIds): TraceLogFields {
  const ids: TraceLogFields =
    trace.requestId === trace.traceId
      ? { trace_id: trace.traceId, span_id: trace.spanId }
      : { trace_id: trace.traceId, span_id: trace.spanId, request_id: trace.requestId };
  // The ids last: an annotation cannot overwrite them.
  return trace.fields === undefined ? ids : { ...trace.fields, ...ids };
}
