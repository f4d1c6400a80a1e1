import { Injectable } from '@nestjs/common';
import { formatTraceparent, parseTraceparent } from './traceparent';
import { TraceStorage, type TraceIds } from './trace.storage';

/**
 * Read access to the current trace, for handlers and other modules: put the trace id in an error
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
   * Runs `fn` as a unit of work with its own ids, for work that does not begin with an HTTP
   * request (a queue message, a scheduled job); lines logged inside, across awaits, carry them.
   * A valid `traceparent` (e.g. from a message header) is continued, anything else ignored.
   */
  run<T>(fn: () => T, traceparent?: string): T {
    return this.storage.run(this.storage.begin(parseTraceparent(traceparent), undefined), fn);
  }
}
