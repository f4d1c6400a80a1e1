import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Body,
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  Injectable,
  Logger,
  NestInterceptor,
  Post,
  Query,
  Req,
  Res,
  UseInterceptors,
} from '@nestjs/common';
import { tap, type Observable } from 'rxjs';
import { LoggingEvent, REDACTED } from './logging.constants';
import type { LoggingModuleOptions } from './logging.options';
import { ADAPTERS, bootstrapLoggingApp, type LoggingTestApp } from '../testing/logging-test-app';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_ID = 'b7ad6b7169203331';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

/** Yields to the event loop a few times, so that concurrent requests interleave without real sleeps. */
async function yieldTurns(turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

@Injectable()
class AroundHandlerInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Around');

  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    this.logger.log({ event: 'test.before_handler' });
    return next.handle().pipe(tap(() => this.logger.log({ event: 'test.after_handler' })));
  }
}

@Controller('t')
class TraceTestController {
  private readonly logger = new Logger('TraceTest');

  @Get('handler')
  @UseInterceptors(AroundHandlerInterceptor)
  async handler(@Query('n') n?: string): Promise<{ n: string | null }> {
    await yieldTurns(Number(n ?? 0) % 5);
    this.logger.log({ event: 'test.handler', n: n ?? null });
    return { n: n ?? null };
  }

  @Post('echo')
  async echo(@Body() body: Record<string, unknown>): Promise<Record<string, unknown>> {
    await yieldTurns(2);
    this.logger.log({ event: 'test.body', keys: Object.keys(body) });
    return body;
  }

  @Get('boom')
  boom(): never {
    throw new Error('boom');
  }

  @Get('secrets')
  secrets(
    @Req() req: IncomingMessage | { raw: IncomingMessage },
    @Res({ passthrough: true }) res: ServerResponse | { raw: ServerResponse },
  ): string {
    const rawReq = 'raw' in req ? req.raw : req;
    const rawRes = 'raw' in res ? res.raw : res;
    rawRes.setHeader('set-cookie', 'session=s3cr3t; HttpOnly');
    this.logger.log({ event: 'test.secrets', req: rawReq, res: rawRes, headers: rawReq.headers });
    return 'ok';
  }
}

describe.each(ADAPTERS)('trace ids on requests (%s)', (adapter) => {
  let t: LoggingTestApp;

  async function start(options: LoggingModuleOptions = {}): Promise<void> {
    t = await bootstrapLoggingApp(adapter, { options, controllers: [TraceTestController], providers: [AroundHandlerInterceptor] });
  }

  afterEach(async () => {
    await t?.close();
  });

  it('logs the trace id of a valid incoming traceparent with a new span id, and sends both back', async () => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { traceparent: TRACEPARENT } });

    expect(res.status).toBe(200);
    const line = t.logs.one('test.handler');
    expect(line).toMatchObject({ context: 'TraceTest', trace_id: TRACE_ID });
    expect(line.span_id).toMatch(HEX16);
    expect(line.span_id).not.toBe(PARENT_ID);
    expect(line).not.toHaveProperty('request_id');
    expect(res.headers.get('traceparent')).toBe(`00-${TRACE_ID}-${line.span_id}-01`);
    expect(res.headers.get('x-request-id')).toBe(TRACE_ID);
  });

  it('keeps the context from the first interceptor to the end of the response stream', async () => {
    await start();
    await fetch(`${t.url}/t/handler?n=3`, { headers: { traceparent: TRACEPARENT } });

    const lines = ['test.before_handler', 'test.handler', 'test.after_handler'].map((event) => t.logs.one(event));
    for (const line of lines) expect(line).toMatchObject({ trace_id: TRACE_ID, span_id: lines[0].span_id });
  });

  it('generates a trace id and a span id when the request has no traceparent', async () => {
    await start();
    const res = await fetch(`${t.url}/t/handler`);

    const line = t.logs.one('test.handler');
    expect(line.trace_id).toMatch(HEX32);
    expect(line.span_id).toMatch(HEX16);
    expect(res.headers.get('traceparent')).toBe(`00-${line.trace_id}-${line.span_id}-01`);
    expect(res.headers.get('x-request-id')).toBe(line.trace_id);
  });

  it.each([
    ['version 01', `01-${TRACE_ID}-${PARENT_ID}-01`],
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['trailing data', `${TRACEPARENT}-extra`],
    ['garbage', 'not-a-traceparent'],
  ])('ignores a traceparent with %s and serves the request with new ids', async (_case, traceparent) => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { traceparent } });

    expect(res.status).toBe(200);
    const line = t.logs.one('test.handler');
    expect(line.trace_id).toMatch(HEX32);
    expect(line.trace_id).not.toBe(TRACE_ID);
    expect(res.headers.get('traceparent')).toBe(`00-${line.trace_id}-${line.span_id}-01`);
  });

  it('keeps the caller’s trace flags in the traceparent it sends back', async () => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` } });

    expect(res.headers.get('traceparent')).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`));
  });

  it('ignores the traceparent when trustTraceparent is false', async () => {
    await start({ trustTraceparent: false });
    await fetch(`${t.url}/t/handler`, { headers: { traceparent: TRACEPARENT } });

    const line = t.logs.one('test.handler');
    expect(line.trace_id).toMatch(HEX32);
    expect(line.trace_id).not.toBe(TRACE_ID);
  });

  it('logs an incoming x-request-id as request_id and echoes it, under a generated trace id', async () => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { 'x-request-id': 'gw-42/abc' } });

    const line = t.logs.one('test.handler');
    expect(line).toMatchObject({ request_id: 'gw-42/abc' });
    expect(line.trace_id).toMatch(HEX32);
    expect(res.headers.get('x-request-id')).toBe('gw-42/abc');
  });

  it('uses a 32-hex x-request-id as the trace id when there is no valid traceparent', async () => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { 'x-request-id': TRACE_ID.toUpperCase() } });

    const line = t.logs.one('test.handler');
    expect(line.trace_id).toBe(TRACE_ID);
    expect(line.request_id).toBe(TRACE_ID.toUpperCase());
    expect(res.headers.get('traceparent')).toBe(`00-${TRACE_ID}-${line.span_id}-01`);
  });

  it('prefers the traceparent over a hex x-request-id for the trace id, and still logs the request id', async () => {
    await start();
    const requestId = 'f'.repeat(32);
    await fetch(`${t.url}/t/handler`, { headers: { traceparent: TRACEPARENT, 'x-request-id': requestId } });

    expect(t.logs.one('test.handler')).toMatchObject({ trace_id: TRACE_ID, request_id: requestId });
  });

  it.each([
    ['longer than 128 characters', 'x'.repeat(129)],
    ['containing a space', 'has space'],
  ])('ignores an x-request-id %s', async (_case, requestId) => {
    await start();
    const res = await fetch(`${t.url}/t/handler`, { headers: { 'x-request-id': requestId } });

    const line = t.logs.one('test.handler');
    expect(line).not.toHaveProperty('request_id');
    expect(res.headers.get('x-request-id')).toBe(line.trace_id);
  });

  it('ignores x-request-id when trustRequestId is false', async () => {
    await start({ trustRequestId: false });
    const res = await fetch(`${t.url}/t/handler`, { headers: { 'x-request-id': TRACE_ID } });

    const line = t.logs.one('test.handler');
    expect(line.trace_id).not.toBe(TRACE_ID);
    expect(line).not.toHaveProperty('request_id');
    expect(res.headers.get('x-request-id')).toBe(line.trace_id);
  });

  it('keeps each of many concurrent requests on its own trace', async () => {
    await start();
    const traceIds = Array.from({ length: 40 }, (_, n) => n.toString(16).padStart(32, 'a'));
    const responses = await Promise.all(
      traceIds.map((traceId, n) => fetch(`${t.url}/t/handler?n=${n}`, { headers: { traceparent: `00-${traceId}-${PARENT_ID}-01` } })),
    );

    const handlerLines = t.logs.withEvent('test.handler');
    expect(handlerLines).toHaveLength(traceIds.length);
    for (const line of handlerLines) expect(line.trace_id).toBe(traceIds[Number(line.n)]);
    for (const [n, res] of responses.entries()) expect(res.headers.get('x-request-id')).toBe(traceIds[n]);
  });

  it('keeps the context through body parsing of a POST', async () => {
    await start();
    const res = await fetch(`${t.url}/t/echo`, {
      method: 'POST',
      headers: { traceparent: TRACEPARENT, 'content-type': 'application/json' },
      body: JSON.stringify({ a: 1, b: 'x'.repeat(100_000) }),
    });

    expect(res.status).toBe(201);
    expect(t.logs.one('test.body')).toMatchObject({ trace_id: TRACE_ID, keys: ['a', 'b'] });
  });

  it('logs the error of a failed handler with the request’s trace id', async () => {
    await start();
    const res = await fetch(`${t.url}/t/boom`, { headers: { traceparent: TRACEPARENT } });

    expect(res.status).toBe(500);
    const errorLine = t.logs.lines.find((line) => line.context === 'ExceptionsHandler');
    expect(errorLine).toMatchObject({ level: 50, trace_id: TRACE_ID });
    expect(res.headers.get('traceparent')).toMatch(new RegExp(`^00-${TRACE_ID}-`));
  });

  it('redacts the authorization and cookie request headers and the set-cookie response header', async () => {
    await start();
    await fetch(`${t.url}/t/secrets`, { headers: { authorization: 'Bearer token-123', cookie: 'session=abc', 'x-other': 'visible' } });

    const line = t.logs.one('test.secrets');
    expect(line.req).toMatchObject({ method: 'GET', headers: { authorization: REDACTED, cookie: REDACTED, 'x-other': 'visible' } });
    expect(line.headers).toMatchObject({ authorization: REDACTED, cookie: REDACTED, 'x-other': 'visible' });
    expect(line.res).toMatchObject({ headers: { 'set-cookie': REDACTED } });
    expect(JSON.stringify(t.logs.lines)).not.toMatch(/token-123|session=abc|s3cr3t/);
  });

  it('writes no line per request by default', async () => {
    await start();
    await fetch(`${t.url}/t/handler`);

    expect(t.logs.withEvent(LoggingEvent.REQUEST_COMPLETED)).toEqual([]);
  });

  it('writes one request line with the trace ids when autoLogging is on', async () => {
    await start({ autoLogging: true });
    const res = await fetch(`${t.url}/t/handler?n=1&token=secret`, { headers: { traceparent: TRACEPARENT } });
    await res.text();
    await new Promise((resolve) => setImmediate(resolve));

    const handler = t.logs.one('test.handler');
    const line = t.logs.one(LoggingEvent.REQUEST_COMPLETED);
    expect(line).toMatchObject({
      level: 30,
      trace_id: TRACE_ID,
      span_id: handler.span_id,
      method: 'GET',
      path: '/t/handler',
      status_code: 200,
    });
    expect(typeof line.duration_ms).toBe('number');
  });

  it('writes the request line of a failed request at error level', async () => {
    await start({ autoLogging: true });
    const res = await fetch(`${t.url}/t/boom`);
    await res.text();
    await new Promise((resolve) => setImmediate(resolve));

    expect(t.logs.one(LoggingEvent.REQUEST_COMPLETED)).toMatchObject({ level: 50, status_code: 500, path: '/t/boom' });
  });
});
