import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** A request that was still running when its connection was force-closed. */
export interface CutRequest {
  readonly method: string;
  readonly url: string;
  readonly runningMs: number;
}

/**
 * Tracks in-flight requests on the Node HTTP server underneath the Nest adapter. Both the Express
 * and the Fastify adapter hand their requests to `http.Server`'s 'request' event, so one listener,
 * prepended before the framework's, sees every request on either adapter at the lowest cost.
 */
export class HttpServerTracker {
  private readonly active = new Map<ServerResponse, number>();
  private draining = false;
  private stopping = false;
  private idle: (() => void) | undefined;
  /**
   * One 'close' listener for every response, which Node calls with the response as `this`. A
   * closure per request added with `once` (which wraps it in a bound function of its own) cost
   * about 10,000 machine instructions a Fastify request (`npm run bench:instructions`).
   */
  private readonly onResponseClose: (this: ServerResponse) => void;

  constructor(
    private readonly server: Server,
    private readonly now: () => number,
  ) {
    const closed = (res: ServerResponse) => this.onResponseClosed(res);
    this.onResponseClose = function (this: ServerResponse) {
      closed(this);
    };
  }

  /** True when this tracker watches `server`. */
  serves(server: Server): boolean {
    return this.server === server;
  }

  get inFlight(): number {
    return this.active.size;
  }

  attach(keepAliveTimeoutMs: number, headersTimeoutMs: number): void {
    this.server.keepAliveTimeout = keepAliveTimeoutMs;
    this.server.headersTimeout = headersTimeoutMs;
    this.server.prependListener('request', this.onRequest);
  }

  detach(): void {
    this.server.off('request', this.onRequest);
  }

  /**
   * From now on every response carries `Connection: close`, so keep-alive clients reconnect (to
   * another instance) after their current request instead of reusing a socket that will close.
   */
  startDraining(): void {
    this.draining = true;
    for (const res of this.active.keys()) {
      if (!res.headersSent) res.setHeader('Connection', 'close');
    }
  }

  /**
   * Stops accepting connections, closes idle keep-alive sockets, waits for in-flight requests up
   * to `timeoutMs`, then force-closes what remains and returns the requests that were cut.
   */
  async stop(timeoutMs: number, sleep: (ms: number, signal: AbortSignal) => Promise<void>): Promise<CutRequest[]> {
    this.draining = true;
    this.stopping = true;
    if (this.server.listening) this.server.close();
    this.server.closeIdleConnections();
    if (this.active.size > 0) {
      const allDone = new AbortController();
      this.idle = () => allDone.abort();
      await sleep(timeoutMs, allDone.signal);
      this.idle = undefined;
    }
    const now = this.now();
    const cut = [...this.active].map(([res, startedAt]) => ({
      method: res.req?.method ?? 'UNKNOWN',
      url: res.req?.url ?? '',
      runningMs: now - startedAt,
    }));
    this.server.closeAllConnections();
    return cut;
  }

  private readonly onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
    this.active.set(res, this.now());
    if (this.draining) res.setHeader('Connection', 'close');
    // A response emits 'close' once (after 'finish', or alone when the client went away first).
    res.on('close', this.onResponseClose);
  };

  private onResponseClosed(res: ServerResponse): void {
    this.active.delete(res);
    if (!this.stopping) return;
    // A response whose headers went out before the drain began kept its socket alive; close it
    // as soon as it turns idle rather than waiting for the keep-alive timeout.
    this.server.closeIdleConnections();
    if (this.active.size === 0) this.idle?.();
  }
}
