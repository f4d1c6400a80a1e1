/** The fields of a W3C `traceparent` header (https://www.w3.org/TR/trace-context/#traceparent-header). */
export interface Traceparent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** Span id of the caller: 16 lower-case hex digits, not all zero. */
  readonly parentId: string;
  /** 2 hex digits; bit 0 is "sampled". */
  readonly traceFlags: string;
}

// Version 00 only, and exactly its 55 characters: the spec requires lower-case hex, and a header
// sent twice reaches Node joined with ", ", so it fails the length check and is ignored, as the
// spec asks for duplicates. Anything malformed is ignored, never an error: a bad header from one
// client must not cost that client its request.
const TRACEPARENT_V00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const TRACEPARENT_V00_LENGTH = 55;
const HEX_TRACE_ID = /^[0-9a-fA-F]{32}$/;
/** Visible ASCII, so that echoing the id in a response header can never inject a header or control characters. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
export const ZERO_TRACE_ID = '0'.repeat(32);
export const ZERO_SPAN_ID = '0'.repeat(16);

/** Parses a `traceparent` header; `undefined` for anything but a valid version-00 value. */
export function parseTraceparent(value: unknown): Traceparent | undefined {
  if (typeof value !== 'string' || value.length !== TRACEPARENT_V00_LENGTH) return undefined;
  const match = TRACEPARENT_V00.exec(value);
  if (match === null || match[1] === ZERO_TRACE_ID || match[2] === ZERO_SPAN_ID) return undefined;
  return { traceId: match[1], parentId: match[2], traceFlags: match[3] };
}

/** The `traceparent` value that hands `spanId` to the next hop as its parent. */
export function formatTraceparent(traceId: string, spanId: string, traceFlags: string): string {
  return `00-${traceId}-${spanId}-${traceFlags}`;
}

/** Validates an incoming `x-request-id`: 1 to 128 visible ASCII characters, else `undefined`. */
export function parseRequestId(value: unknown): string | undefined {
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : undefined;
}

/** The trace id a request id can stand for: 32 hex digits, not all zero (lower-cased), else `undefined`. */
export function traceIdFromRequestId(requestId: string): string | undefined {
  if (!HEX_TRACE_ID.test(requestId)) return undefined;
  const traceId = requestId.toLowerCase();
  return traceId === ZERO_TRACE_ID ? undefined : traceId;
}
