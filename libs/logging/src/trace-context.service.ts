import { Injectable } from '@nestjs/common';
import { formatTraceparent, parseTraceparent } from './traceparent';
import { TraceStorage, type LogFieldValue, type TraceIds } from './trace.storage';

/**
 * Access to the current trace, for handlers and other modules: put the trace id in an error
 * body, or send `traceparent()` on an outgoing call so the next service continues the trace.
 */
@Injectable()
export class TraceContext {
  constructor(private readonly storage: TraceStorage) {}

  /** Ids of the request (or `run` block) being handled; `undefined` outside one. */
  current(): TraceIds | undefined {
    return this.storage.current();
  }

  /**
   * The trace id a line logged now carries: the request's, or outside requests the lifecycle's
   * boot or shutdown trace.
   */
  traceId(): string {
    return this.storage.current()?.traceId ?? this.storage.sequenceTraceId();
  }

  /** `traceparent` for an outgoing call made while handling this request; `undefined` outside one. */
  traceparent(): string | undefined {
    const trace = this.storage.current();
    return trace && formatTraceparent(trace.traceId, trace.spanId, trace.traceFlags);
  }

  /**
   * Adds fields to every further line of the request (or `run` block) being handled, its access
   * line included: e.g. `{ 'feature_flag.result.variant': 'canary' }` once the canary decided.
   * Outside one, nothing happens (lines outside requests belong to no request). The trace ids
   * cannot be overwritten; a later annotation of the same field wins.
   */
  annotate(fields: Readonly<Record<string, LogFieldValue>>): void {
    const trace = this.storage.current();
    if (trace !== undefined) trace.fields = trace.fields === undefined ? { ...fields } : { ...trace.fields, ...fields };
  }

  /**
   * Runs `fn` as a unit of work with its own ids, for work that does not begin with an HTTP
   * request (a queue message, a scheduled job); lines logged inside, across awaits, carry them.
   * A valid `traceparent` (e.g. from a message header) is continued, anything else ignored.
   */
  run<T>(fn: () => T, traceparent?: string): T {
    return this.storage.run(this.storage.begin(parseTraceparent(traceparent), undefined, true), fn);
  }
}
