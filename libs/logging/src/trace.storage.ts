import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { LifecycleService } from '@nest-rollout/lifecycle';
import { TraceIdGenerator } from './trace-id.generator';
import { traceIdFromRequestId, type Traceparent } from './traceparent';

/** The ids of the request (or `TraceContext.run` block) being handled. */
export interface TraceIds {
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
 * Owns the per-request trace context: one AsyncLocalStorage and one small `TraceIds` object per
 * request, read by the pino mixin on every line. Internal; `TraceContext` is the public face.
 * State lives here, in a provider, rather than in module globals, so that two applications in one
 * process (tests) never share ids.
 */
@Injectable()
export class TraceStorage {
  private readonly storage = new AsyncLocalStorage<TraceIds>();
  private readonly ids = new TraceIdGenerator();
  /** The trace of lines logged outside requests when no LifecycleModule owns one. */
  private readonly bootTraceId = this.ids.traceId();
  private lifecycle: LifecycleService | undefined;

  constructor(@Optional() @Inject(LifecycleService) lifecycle?: LifecycleService) {
    this.lifecycle = lifecycle;
  }

  current(): TraceIds | undefined {
    return this.storage.getStore();
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

  /** New ids for a unit of work, continuing `parent` (or a hex `requestId`) when given. */
  begin(parent: Traceparent | undefined, requestId: string | undefined): TraceIds {
    const traceId = parent?.traceId ?? (requestId === undefined ? undefined : traceIdFromRequestId(requestId)) ?? this.ids.traceId();
    return {
      traceId,
      spanId: this.ids.spanId(),
      parentSpanId: parent?.parentId,
      traceFlags: parent?.traceFlags ?? NEW_TRACE_FLAGS,
      requestId: requestId ?? traceId,
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
    const trace = this.storage.getStore();
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
