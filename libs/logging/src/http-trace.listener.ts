import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Logger } from 'pino';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER, LoggingEvent, REQUEST_ID_HEADER, TRACEPARENT_HEADER } from './logging.constants';
import type { ResolvedLoggingOptions } from './logging.options';
import { formatTraceparent, parseRequestId, parseTraceparent } from './traceparent';
import { TraceStorage, type TraceIds } from './trace.storage';

/** What the access line needs at the end of a response, kept on the response itself (see `logWhenDone`). */
const ACCESS_TRACE = Symbol('@nest-rollout/logging:access-trace');
const ACCESS_STARTED_AT = Symbol('@nest-rollout/logging:access-started-at');
type LoggedResponse = ServerResponse & { [ACCESS_TRACE]?: TraceIds; [ACCESS_STARTED_AT]?: number };

/** The parts of Fastify the listener uses; Fastify is not a dependency. */
interface FastifyReplyLike {
  header(name: string, value: string): unknown;
}
interface FastifyLike {
  addHook(name: 'onRequest', hook: (request: unknown, reply: FastifyReplyLike, done: () => void) => void): unknown;
}

/**
 * Gives every HTTP request its trace ids, on the Node server underneath the Nest adapter. Express
 * and Fastify both hand their requests to `http.Server`'s 'request' event, so one listener,
 * prepended before the framework's, covers both adapters with no adapter-specific code, runs
 * before any Nest middleware, guard or body parser, and costs one small object per request.
 */
@Injectable()
export class HttpTraceListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: Server | undefined;
  /** Fastify: the response headers go through the reply (see `onFastifyRequest`), not the raw response. */
  private headersThroughReply = false;

  /** The access line's one 'close' listener for every response (Node calls it with the response as `this`). */
  private readonly onResponseClose: (this: LoggedResponse) => void;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(LOGGING_OPTIONS) private readonly options: ResolvedLoggingOptions,
    private readonly traces: TraceStorage,
    @Inject(LOGGING_PINO_LOGGER) private readonly logger: Logger,
  ) {
    const log = (res: LoggedResponse) => this.logAccessLine(res);
    this.onResponseClose = function (this: LoggedResponse) {
      log(this);
    };
  }

  onApplicationBootstrap(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    // An application context or a pure microservice has no HTTP server: nothing to listen to.
    if (server === undefined || typeof server.prependListener !== 'function') return;
    this.server = server;
    server.prependListener('request', this.onRequest);
    this.headersThroughReply = this.addFastifyHook();
  }

  /**
   * On Fastify, a header set on the raw response turns Node's `writeHead(status, headers)`, which
   * Fastify calls with all of its headers, into its slow path: every header of every response is
   * then validated and stored one by one (about 4 µs a request). Fastify's own `reply.header()`
   * keeps them in the object Fastify hands to `writeHead`. A root `onRequest` hook runs before any
   * route's, for every route, the 404 handler included; Fastify builds each route's hook list when
   * it starts, so a hook added now still reaches the routes Nest registered before.
   */
  private addFastifyHook(): boolean {
    const adapter = this.adapterHost.httpAdapter;
    if (adapter?.getType?.() !== 'fastify') return false;
    const fastify = adapter.getInstance<FastifyLike>();
    if (typeof fastify?.addHook !== 'function') return false;
    try {
      fastify.addHook('onRequest', this.onFastifyRequest);
      return true;
    } catch {
      // Fastify refuses hooks once it is listening (an application bootstrapped twice): the raw response then.
      return false;
    }
  }

  private readonly onFastifyRequest = (_request: unknown, reply: FastifyReplyLike, done: () => void): void => {
    const trace = this.traces.current();
    if (trace !== undefined) {
      reply.header(TRACEPARENT_HEADER, formatTraceparent(trace.traceId, trace.spanId, trace.traceFlags));
      reply.header(REQUEST_ID_HEADER, trace.requestId);
    }
    done();
  };

  onApplicationShutdown(): void {
    this.server?.off('request', this.onRequest);
    this.server = undefined;
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const headers = req.headers;
    const trace = this.traces.begin(
      this.options.trustTraceparent ? parseTraceparent(headers[TRACEPARENT_HEADER]) : undefined,
      this.options.trustRequestId ? parseRequestId(headers[REQUEST_ID_HEADER]) : undefined,
    );
    // enterWith, not run: the framework's handler is the next listener of this same emit, which no
    // callback of ours can wrap. Entering here covers the rest of the emit and everything it
    // schedules (Node documents exactly this EventEmitter case), including the body's 'data' and
    // 'end' events, which Fastify only reads after its hooks. The store then stays on the
    // connection until its next request replaces it; what a request scheduled keeps its own store,
    // so concurrent requests never see each other's ids (the spec runs 40 at once to check).
    this.traces.enter(trace);
    if (!this.headersThroughReply) {
      // On the raw response: Express (and any adapter) merges these into the headers it writes.
      res.setHeader(TRACEPARENT_HEADER, formatTraceparent(trace.traceId, trace.spanId, trace.traceFlags));
      res.setHeader(REQUEST_ID_HEADER, trace.requestId);
    }
    if (this.options.autoLogging) this.logWhenDone(res, trace);
  };

  /**
   * The access line is written when the response closes. What it needs travels on the response,
   * and one listener serves every response: a closure per request added with `once` (which wraps
   * it in a bound function of its own) cost about a fifth of the machine instructions the line
   * added to a Fastify request (`npm run bench:instructions`); pino writing the line is the rest.
   */
  private logWhenDone(res: LoggedResponse, trace: TraceIds): void {
    res[ACCESS_TRACE] = trace;
    res[ACCESS_STARTED_AT] = performance.now();
    // 'close' comes after 'finish', and alone when the client went away first.
    res.on('close', this.onResponseClose);
  }

  private logAccessLine(res: LoggedResponse): void {
    const trace = res[ACCESS_TRACE];
    if (trace === undefined) return;
    // A response emits 'close' once; this makes sure a second one could not log twice.
    res[ACCESS_TRACE] = undefined;
    const req = res.req;
    const fields = {
      event: res.writableFinished ? LoggingEvent.REQUEST_COMPLETED : LoggingEvent.REQUEST_ABORTED,
      method: req.method,
      // Without the query string, which is where tokens and personal data end up.
      path: pathOf(req.url),
      status_code: res.statusCode,
      duration_ms: Math.round((performance.now() - (res[ACCESS_STARTED_AT] ?? 0)) * 10) / 10,
    };
    // 'close' may fire in another request's context (the socket's); log in this one's. (Cheaper,
    // too, than handing pino the ids in an object built by spreading: such an object leaves V8's
    // fast properties, and pino's serialisation of it costs twice the line.)
    this.traces.run(trace, () => {
      if (!res.writableFinished) this.logger.warn(fields);
      else if (res.statusCode >= 500) this.logger.error(fields);
      else this.logger.info(fields);
    });
  }
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
