import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Logger } from '@nestjs/common';
import type { OnModuleDestroy } from '@nestjs/common';
import type { Dispatcher } from 'undici';
import { describeError } from '@nest-rollout/lifecycle';
import { CANARY_FORCE_HEADER } from '../canary.constants';
import type { CanaryDecision, CanaryForwarder, CanaryForwardHooks, CanaryForwardResult } from '../canary.types';
import { mergeBaggage } from '../propagation/baggage';
import { forceHeaderValue } from '../propagation/canary-propagation';
import { BAGGAGE_HEADER, CANARY_BAGGAGE_KEY } from '../propagation/propagation.constants';
import { resolveCanaryForwardingOptions } from './canary-forwarder.options';
import type { CanaryForwardingOptions, ResolvedCanaryForwardingOptions } from './canary-forwarder.options';
import { staticCanaryTargets } from './canary-targets';
import type { CanaryTargets } from './canary-targets';
import { ForwardFailure, ForwardingEvent, ForwardLocalReason } from './forwarding.constants';
import { connectionTokens, endToEndHeaders, isHopByHop } from './hop-by-hop';

const SERVED_LOCALLY: Readonly<Record<ForwardLocalReason, CanaryForwardResult>> = Object.freeze({
  loop: Object.freeze({ servedLocally: ForwardLocalReason.LOOP }),
  no_canary_target: Object.freeze({ servedLocally: ForwardLocalReason.NO_CANARY_TARGET }),
  connect_failed: Object.freeze({ servedLocally: ForwardLocalReason.CONNECT_FAILED }),
  body_consumed: Object.freeze({ servedLocally: ForwardLocalReason.BODY_CONSUMED }),
  canary_failed: Object.freeze({ servedLocally: ForwardLocalReason.CANARY_FAILED }),
});

/**
 * RFC 9110 §9.2.1: methods that ask for nothing but a representation. Serving one of them here
 * after the canary may have received it repeats nothing the client could notice (§9.2.2 lets a
 * proxy retry such requests by itself, as nginx's `proxy_next_upstream` does).
 */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Streams canary requests from a stable instance to a canary instance with undici, and the
 * response back, on the raw Node request and response of either adapter.
 *
 * The one rule that shapes it: a request is served locally only if serving it here cannot repeat
 * anything the canary did. undici calls `onRequestStart` just before it writes the request line on
 * a connected socket, so an error before that point (refused, unreachable, connect timeout) leaves
 * the request, body included, untouched for the local handler; the body is not even read until
 * then. After that point the canary may have acted on the request, so a failure is answered 502
 * and never replayed, with one exception: a safe request without a body (a GET) whose canary failed
 * before the first byte of its response is served locally (`canary_failed`), so that a canary that
 * dies under load costs its in-flight reads nothing.
 */
export class HttpCanaryForwarder implements CanaryForwarder, OnModuleDestroy {
  private readonly logger = new Logger('Canary');
  private readonly options: ResolvedCanaryForwardingOptions;
  private readonly targets: CanaryTargets;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  /**
   * @param targets a canary URL, or where canary instances are found (`registryCanaryTargets`)
   * @param dispatcher an undici dispatcher to use instead of the forwarder's own pool (its timeouts then apply)
   */
  constructor(targets: CanaryTargets | string, options?: CanaryForwardingOptions, dispatcher?: Dispatcher) {
    this.options = resolveCanaryForwardingOptions(options);
    this.targets = typeof targets === 'string' ? staticCanaryTargets(targets) : targets;
    this.ownsDispatcher = dispatcher === undefined;
    this.dispatcher =
      dispatcher ??
      new (loadUndici().Agent)({
        connect: { timeout: this.options.connectTimeoutMs },
        headersTimeout: this.options.headersTimeoutMs,
        bodyTimeout: this.options.bodyTimeoutMs,
        keepAliveTimeout: this.options.keepAliveTimeoutMs,
        connections: this.options.connectionsPerOrigin,
      });
  }

  forward(req: IncomingMessage, res: ServerResponse, decision: CanaryDecision, hooks?: CanaryForwardHooks): Promise<CanaryForwardResult> {
    if (req.headers[this.options.hopHeader] !== undefined) return Promise.resolve(SERVED_LOCALLY.loop);
    const target = this.targets.pick();
    if (!target) return Promise.resolve(SERVED_LOCALLY.no_canary_target);
    const hasBody = requestHasBody(req);
    if (hasBody && (req.readableDidRead || req.readableEnded)) {
      this.logger.warn({ event: ForwardingEvent.SKIPPED, reason: ForwardLocalReason.BODY_CONSUMED, route: decision.route });
      return Promise.resolve(SERVED_LOCALLY.body_consumed);
    }
    return new Promise((resolve) => {
      const servableHere = !hasBody && SAFE_METHODS.has(req.method ?? 'GET');
      const forward = new ForwardExchange(req, res, decision, hooks, target.url, servableHere, this.logger, resolve);
      this.dispatcher.dispatch(
        {
          origin: target.url,
          path: req.url ?? '/',
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers: forwardedRequestHeaders(req, decision, this.options.hopHeader),
          body: hasBody ? forward.body : null,
          // A replay is the one thing a forwarder must not do.
          idempotent: false,
        },
        forward,
      );
    });
  }

  async onModuleDestroy(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}

/** RFC 9112 §6.3: a request has a body if and only if it has Content-Length or Transfer-Encoding. */
function requestHasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The request's end-to-end headers in their original case and order, duplicates kept, plus what a
 * forwarder adds: `X-Forwarded-For/Host/Proto` (Host itself becomes the canary's, so that a canary
 * behind a name-based router is reached), the hop header, and the decision (`x-canary`, baggage) so
 * that the canary's own downstream calls stay on canary versions. `Expect` is dropped: Node has
 * already answered `100 Continue` to the client.
 */
function forwardedRequestHeaders(req: IncomingMessage, decision: CanaryDecision, hopHeader: string): string[] {
  const raw = req.rawHeaders;
  const named = connectionTokens(req.headers.connection);
  const headers: string[] = [];
  let forwardedFor: string | undefined;
  let host: string | undefined;
  let hasForwardedHost = false;
  let hasForwardedProto = false;
  const baggage: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || named?.has(lower)) continue;
    switch (lower) {
      case 'host':
        host = value;
        continue;
      case 'expect':
      case CANARY_FORCE_HEADER:
        continue;
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case BAGGAGE_HEADER:
        baggage.push(value);
        continue;
      case 'x-forwarded-host':
        hasForwardedHost = true;
        break;
      case 'x-forwarded-proto':
        hasForwardedProto = true;
        break;
    }
    headers.push(name, value);
  }
  const client = req.socket.remoteAddress;
  if (client !== undefined) headers.push('x-forwarded-for', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`);
  else if (forwardedFor !== undefined) headers.push('x-forwarded-for', forwardedFor);
  if (host !== undefined && !hasForwardedHost) headers.push('x-forwarded-host', host);
  if (!hasForwardedProto) headers.push('x-forwarded-proto', 'encrypted' in req.socket ? 'https' : 'http');
  headers.push(hopHeader, '1');
  headers.push(CANARY_FORCE_HEADER, forceHeaderValue(decision.variant));
  headers.push(BAGGAGE_HEADER, mergeBaggage(baggage, CANARY_BAGGAGE_KEY, decision.variant));
  return headers;
}

/** One forwarded request: undici's handler for it, and the owner of its response. */
class ForwardExchange implements Dispatcher.DispatchHandler {
  readonly body: RequestBody;
  private controller: Dispatcher.DispatchController | undefined;
  /** The request line went out: the canary may have seen the request. */
  private committed = false;
  /** `hooks.onCommit` ran: the response is ours to write. */
  private tookOver = false;
  private responseStarted = false;
  private clientGone = false;
  private settled = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly decision: CanaryDecision,
    private readonly hooks: CanaryForwardHooks | undefined,
    private readonly target: string,
    /** Safe and without a body: may still be served locally after the canary failed to answer it. */
    private readonly servableHere: boolean,
    private readonly logger: Logger,
    private readonly resolve: (result: CanaryForwardResult) => void,
  ) {
    this.body = new RequestBody(req);
    res.once('close', this.onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.committed) return;
    this.committed = true;
    if (this.clientGone) controller.abort(new Error('the client closed the connection'));
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return;
    this.takeOver();
    this.responseStarted = true;
    const res = this.res;
    res.statusCode = statusCode;
    if (statusMessage) res.statusMessage = statusMessage;
    for (const [name, value] of endToEndHeaders(headers)) res.setHeader(name, value);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.settle('forwarded');
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.body.detach();
    if (!this.clientGone && !this.responseStarted && (!this.committed || this.servableHere)) {
      // Nothing was written to the canary and the body was never read, or the request is a read the
      // canary never answered: serve it here. The response is still untouched (no onCommit yet).
      const reason = this.committed ? ForwardLocalReason.CANARY_FAILED : ForwardLocalReason.CONNECT_FAILED;
      this.res.off('close', this.onClientClose);
      this.logger.warn({
        event: ForwardingEvent.SKIPPED,
        reason,
        route: this.decision.route,
        target: this.target,
        error: describeError(error),
      });
      this.settle(SERVED_LOCALLY[reason]);
      return;
    }
    this.takeOver();
    const reason = this.clientGone
      ? ForwardFailure.CLIENT_ABORTED
      : this.responseStarted
        ? ForwardFailure.DURING_RESPONSE
        : (error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT'
          ? ForwardFailure.NO_RESPONSE
          : ForwardFailure.DURING_REQUEST;
    this.logger.warn({
      event: ForwardingEvent.FAILED,
      reason,
      route: this.decision.route,
      target: this.target,
      method: this.req.method,
      error: describeError(error),
    });
    if (reason === ForwardFailure.DURING_REQUEST || reason === ForwardFailure.NO_RESPONSE) this.answerBadGateway(reason);
    else this.res.destroy();
    this.settle('forwarded');
  }

  private answerBadGateway(reason: ForwardFailure): void {
    const res = this.res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // The rest of the request body is read and dropped, so that the client, still sending, gets to
    // read the answer; the connection closes after it.
    this.req.resume();
    const body = JSON.stringify({
      statusCode: 502,
      error: 'Bad Gateway',
      message:
        reason === ForwardFailure.NO_RESPONSE
          ? 'The canary instance did not answer in time. The request was not replayed: it may have been processed.'
          : 'The connection to the canary instance failed while the request was being sent. The request was not replayed: it may have been processed.',
      reason,
    });
    res.writeHead(502, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  }

  private readonly onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.clientGone = true;
    this.controller?.abort(new Error('the client closed the connection'));
  };

  /**
   * The forwarder writes the response from here on, whatever happens (on Fastify the hook hijacks
   * the reply). Not earlier: until the first byte of the answer, a read may still be served locally.
   */
  private takeOver(): void {
    if (this.tookOver) return;
    this.tookOver = true;
    this.hooks?.onCommit?.();
  }

  private settle(result: CanaryForwardResult): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(result);
  }
}

/**
 * The request body as undici reads it. It starts reading the request only when undici first asks
 * for data (after the request line went out), so a forward that fails to connect leaves the body
 * unread for the local handler; and destroying it (undici does, on error) detaches from the request
 * instead of destroying it, so the client's connection survives to receive the 502.
 */
class RequestBody extends Readable {
  private attached = false;
  private detached = false;

  constructor(private readonly req: IncomingMessage) {
    super();
  }

  override _read(): void {
    if (this.attached) {
      if (!this.detached) this.req.resume();
      return;
    }
    this.attached = true;
    this.req.on('data', this.onData);
    this.req.on('end', this.onEnd);
    this.req.on('error', this.onError);
    this.req.on('close', this.onClose);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.detach();
    callback(error);
  }

  /** Stops reading the request; the rest of its body stays with it. */
  detach(): void {
    if (!this.attached || this.detached) return;
    this.detached = true;
    this.req.off('data', this.onData);
    this.req.off('end', this.onEnd);
    this.req.off('error', this.onError);
    this.req.off('close', this.onClose);
    this.req.pause();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.req.pause();
  };

  private readonly onEnd = (): void => {
    this.push(null);
  };

  private readonly onError = (error: Error): void => {
    this.destroy(error);
  };

  private readonly onClose = (): void => {
    if (!this.req.complete) this.destroy(new Error('the client closed the connection before the end of the request body'));
  };
}

/**
 * undici, loaded when the first forwarder is built rather than when the package is imported: an
 * application that never forwards (a canary instance, a service without a forwarder) does not carry
 * its ~7 MB.
 */
function loadUndici(): typeof import('undici') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('undici') as typeof import('undici');
}
