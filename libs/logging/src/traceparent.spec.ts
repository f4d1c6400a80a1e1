import { TraceIdGenerator } from './trace-id.generator';
import { formatTraceparent, parseRequestId, parseTraceparent, traceIdFromRequestId } from './traceparent';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads the trace id, parent id and flags of a valid version-00 header', () => {
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-01`)).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, traceFlags: '01' });
  });

  it('keeps flags it does not know', () => {
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-ff`)?.traceFlags).toBe('ff');
  });

  it.each([
    ['undefined', undefined],
    ['an empty string', ''],
    ['an array (a header Node did not join)', [`00-${TRACE_ID}-${PARENT_ID}-01`]],
    ['two headers joined by Node', `00-${TRACE_ID}-${PARENT_ID}-01, 00-${TRACE_ID}-${PARENT_ID}-01`],
    ['version 01', `01-${TRACE_ID}-${PARENT_ID}-01`],
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['a non-hex character', `00-${TRACE_ID.slice(0, -1)}g-${PARENT_ID}-01`],
    ['a 31-digit trace id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['a 17-digit parent id', `00-${TRACE_ID}-${PARENT_ID}0-01`],
    ['a 1-digit flags field', `00-${TRACE_ID}-${PARENT_ID}-1`],
    ['a missing flags field', `00-${TRACE_ID}-${PARENT_ID}`],
    ['underscores for dashes', `00_${TRACE_ID}_${PARENT_ID}_01`],
    ['trailing data', `00-${TRACE_ID}-${PARENT_ID}-01-extra`],
    ['leading whitespace', ` 00-${TRACE_ID}-${PARENT_ID}-01`],
  ])('ignores %s', (_case, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe('formatTraceparent', () => {
  it('writes a version-00 header that parses back to the same ids', () => {
    const header = formatTraceparent(TRACE_ID, PARENT_ID, '01');
    expect(header).toBe(`00-${TRACE_ID}-${PARENT_ID}-01`);
    expect(parseTraceparent(header)).toEqual({ traceId: TRACE_ID, parentId: PARENT_ID, traceFlags: '01' });
  });
});

describe('parseRequestId', () => {
  it.each(['a', 'req-42', 'gw/2024:abc', '~'.repeat(128)])('accepts %j', (value) => {
    expect(parseRequestId(value)).toBe(value);
  });

  it.each([
    ['undefined', undefined],
    ['an empty string', ''],
    ['129 characters', 'x'.repeat(129)],
    ['a space', 'a b'],
    ['a line break', 'a\r\nset-cookie: x=1'],
    ['a non-ASCII character', 'café'],
    ['an array', ['a', 'b']],
  ])('ignores %s', (_case, value) => {
    expect(parseRequestId(value)).toBeUndefined();
  });
});

describe('traceIdFromRequestId', () => {
  it('uses 32 hex digits as the trace id, lower-cased', () => {
    expect(traceIdFromRequestId(TRACE_ID.toUpperCase())).toBe(TRACE_ID);
  });

  it.each([
    ['all zeros', '0'.repeat(32)],
    ['31 digits', TRACE_ID.slice(1)],
    ['a UUID with dashes', '4bf92f35-77b3-4da6-a3ce-929d0e0e4736'],
  ])('does not use a request id of %s', (_case, value) => {
    expect(traceIdFromRequestId(value)).toBeUndefined();
  });
});

describe('TraceIdGenerator', () => {
  it('makes 32-hex trace ids and 16-hex span ids, unique across pool refills', () => {
    const ids = new TraceIdGenerator();
    const traceIds = new Set<string>();
    const spanIds = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      traceIds.add(ids.traceId());
      spanIds.add(ids.spanId());
    }
    expect(traceIds.size).toBe(1000);
    expect(spanIds.size).toBe(1000);
    for (const id of traceIds) expect(id).toMatch(/^[0-9a-f]{32}$/);
    for (const id of spanIds) expect(id).toMatch(/^[0-9a-f]{16}$/);
  });
});
