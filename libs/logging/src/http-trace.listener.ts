import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Logger } from 'pino';
import { LOGGING_OPTIONS, LOGGING_PINO_LOGGER, LoggingEvent, REQUEST_ID_HEADER, TRACEPARENT_HEADER } from './logging.constants';
import type { ResolvedLoggingOptions } from './logging.options';
import { formatTraceparent, parseRequestId, parseTraceparent } from './traceparent';
import { TraceStorage, type TraceIds } from './trace.storage';

/**
 * Gives every HTTP request its trace ids, on the Node server underneath the Nest adapter. Express
 * and Fastify both hand their requests to `http.Server`'s 'request' event, so one listener,
 * prepended before the framework's, covers both adapters with no adapter-specific code, runs
 * before any Nest middleware, guard or body parser, and costs one small object per request.
 */
@Injectable()
export class HttpTraceListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private server: Server | undefined;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(LOGGING_OPTIONS) private readonly options: ResolvedLoggingOptions,
    private readonly traces: TraceStorage,
    @Inject(LOGGING_PINO_LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    // An application context or a pure microservice has no HTTP server: nothing to listen to.
    if (server === undefined || typeof server.prependListener !== 'function') return;
    this.server = server;
    server.prependListener('request', this.onRequest);
  }

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
    // Set on the raw response: Express and Fastify both merge these into the headers they write.
    res.setHeader(TRACEPARENT_HEADER, formatTraceparent(trace.traceId, trace.spanId, trace.traceFlags));
    res.setHeader(REQUEST_ID_HEADER, trace.requestId);
    if (this.options.autoLogging) this.logWhenDone(req, res, trace);
  };

  private logWhenDone(req: IncomingMessage, res: ServerResponse, trace: TraceIds): void {
    const startedAt = performance.now();
    // 'close' comes after 'finish', and alone when the client went away first.
    res.once('close', () => {
      const fields = {
        event: res.writableFinished ? LoggingEvent.REQUEST_COMPLETED : LoggingEvent.REQUEST_ABORTED,
        method: req.method,
        // Without the query string, which is where tokens and personal data end up.
        path: pathOf(req.url),
        status_code: res.statusCode,
        duration_ms: Math.round((performance.now() - startedAt) * 10) / 10,
      };
      // 'close' may fire in another request's context (the socket's); log in this one's.
      this.traces.run(trace, () => {
        if (!res.writableFinished) this.logger.warn(fields);
        else if (res.statusCode >= 500) this.logger.error(fields);
        else this.logger.info(fields);
      });
    });
  }
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}
