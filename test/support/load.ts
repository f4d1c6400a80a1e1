import { Agent, request } from 'node:http';

export interface LoadOptions {
  /** Base URL, e.g. the load balancer's `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Requests in flight at any time, each on its own keep-alive connection. @default 32 */
  readonly connections?: number;
  /** The load stops starting requests after this long. */
  readonly durationMs: number;
  /** ... or after this many requests, whichever comes first. @default 1_000_000 */
  readonly maxRequests?: number;
  /** A request with no complete answer after this long counts as a `timeout`. @default 5000 */
  readonly requestTimeoutMs?: number;
  /** Share of requests sent to `/demo/slow?ms=<slowMs range>` instead of `GET /orders`. @default 0.1 */
  readonly slowShare?: number;
  /** Share of requests sent as `POST /orders` with a small JSON order (never retried by a balancer). @default 0 */
  readonly postShare?: number;
  /** Keep each worker's connection open between its requests; `false` opens a new one per request. @default true */
  readonly keepAlive?: boolean;
  /** @default [50, 200] */
  readonly slowMs?: readonly [number, number];
  /** Response header naming the server that answered, counted in `byServer`. @default 'x-served-by' */
  readonly serverHeader?: string;
  /** Stops the load early (e.g. the test gave up). */
  readonly signal?: AbortSignal;
  /** Every request goes to this path (with its query) instead of the `GET /orders` and slow mix. */
  readonly path?: string;
  /** Sent with every request. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Names the server that answered from the response body (read in full then), instead of `serverHeader`. */
  readonly serverFromBody?: (body: string) => string | undefined;
  /** Called with each request's record as soon as its outcome is known (e.g. to act mid-load). */
  readonly onRecord?: (record: RequestRecord) => void;
  /**
   * One more route in the mix, taking `share` of the requests from `GET /orders`; when `label` is
   * given, its answers' bodies are read and what it returns is the record's `label` (e.g. which
   * variant answered a canary route).
   */
  readonly extraRoute?: { readonly path: string; readonly share: number; readonly label?: (body: string) => string | undefined };
  /** Sends `header` on every request with a user drawn at random from `users`, recorded as the request's `user`. */
  readonly userKey?: { readonly header: string; readonly users: readonly string[] };
}

/** What happened to one request. */
export interface RequestRecord {
  /** Epoch ms when the request was sent, and when its outcome was known. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly path: string;
  /** Set for a request other than GET. */
  readonly method?: string;
  /** Set when a complete response arrived. */
  readonly status?: number;
  /** Set when no complete response arrived: `ECONNRESET`, `socket hang up`, `ECONNREFUSED`, `timeout`, ... */
  readonly error?: string;
  /** Value of the server header, when the answer carried one. */
  readonly server?: string;
  /** What `extraRoute.label` read from the answer's body. */
  readonly label?: string;
  /** The user sent in `userKey.header`. */
  readonly user?: string;
}

export interface LoadResult {
  readonly sent: number;
  /** 2xx with a complete body. */
  readonly ok: number;
  /** Everything else: other statuses and errors. */
  readonly failed: number;
  readonly byStatus: Readonly<Record<string, number>>;
  readonly byError: Readonly<Record<string, number>>;
  readonly byServer: Readonly<Record<string, number>>;
  readonly durationMs: number;
  readonly records: readonly RequestRecord[];
}

/**
 * Steady HTTP load from this process: `connections` workers, each sending one request after the
 * other on a keep-alive connection (as a service calling another through a load balancer does),
 * until `durationMs` or `maxRequests`. Every request's outcome is recorded; nothing is retried.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const connections = options.connections ?? 32;
  const maxRequests = options.maxRequests ?? 1_000_000;
  const timeoutMs = options.requestTimeoutMs ?? 5000;
  const slowShare = options.slowShare ?? 0.1;
  const [slowMin, slowMax] = options.slowMs ?? [50, 200];
  const serverHeader = (options.serverHeader ?? 'x-served-by').toLowerCase();
  const postShare = options.postShare ?? 0;
  const keepAlive = options.keepAlive ?? true;
  const agent = new Agent({ keepAlive, maxSockets: connections, maxFreeSockets: connections, scheduling: 'fifo' });
  const records: RequestRecord[] = [];
  const started = Date.now();
  const endAt = started + options.durationMs;
  let sent = 0;

  const extra = options.extraRoute;
  const nextRequest = (): { path: string; method?: string; labelled?: boolean } => {
    if (options.path !== undefined) return { path: options.path };
    const draw = Math.random();
    if (draw < postShare) return { path: '/orders', method: 'POST' };
    if (draw < postShare + slowShare) return { path: `/demo/slow?ms=${slowMin + Math.floor(Math.random() * (slowMax - slowMin + 1))}` };
    if (extra && draw < postShare + slowShare + extra.share) return { path: extra.path, labelled: extra.label !== undefined };
    return { path: '/orders' };
  };
  const orderBody = JSON.stringify({ item: 'book', quantity: 1 });

  const one = ({ path, method, labelled }: { path: string; method?: string; labelled?: boolean }) =>
    new Promise<RequestRecord>((resolve) => {
      const startedAt = Date.now();
      let settled = false;
      let status: number | undefined;
      let server: string | undefined;
      let label: string | undefined;
      let body = '';
      const user = options.userKey ? options.userKey.users[Math.floor(Math.random() * options.userKey.users.length)] : undefined;
      const readBody = options.serverFromBody !== undefined || labelled === true;
      const finish = (outcome: { status?: number; error?: string }) => {
        if (settled) return;
        settled = true;
        const record = {
          startedAt,
          endedAt: Date.now(),
          path,
          ...(method ? { method } : {}),
          server,
          ...(label !== undefined ? { label } : {}),
          ...(user !== undefined ? { user } : {}),
          ...outcome,
        };
        options.onRecord?.(record);
        resolve(record);
      };
      const headers = {
        ...options.headers,
        ...(user !== undefined ? { [options.userKey!.header]: user } : {}),
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
      };
      const req = request(`${options.url}${path}`, { agent, headers, method }, (res) => {
        status = res.statusCode;
        const header = res.headers[serverHeader];
        server = Array.isArray(header) ? header[0] : header;
        if (readBody) res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (readBody) body += chunk;
        });
        res.on('end', () => {
          if (options.serverFromBody) server = options.serverFromBody(body) ?? server;
          if (labelled) label = extra?.label?.(body);
          finish({ status });
        });
        res.on('error', (error) => finish({ error: errorKind(error) }));
        // The status line arrived but the body was cut: a lost request all the same.
        res.on('close', () => finish(res.complete ? { status } : { error: 'body cut' }));
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
      req.on('error', (error) => finish({ error: errorKind(error) }));
      req.end(method === 'POST' ? orderBody : undefined);
    });

  const worker = async () => {
    while (Date.now() < endAt && sent < maxRequests && !options.signal?.aborted) {
      sent += 1;
      records.push(await one(nextRequest()));
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, worker));
  } finally {
    agent.destroy();
  }
  return summarize(records, Date.now() - started);
}

export function summarize(records: readonly RequestRecord[], durationMs: number): LoadResult {
  const byStatus: Record<string, number> = {};
  const byError: Record<string, number> = {};
  const byServer: Record<string, number> = {};
  let ok = 0;
  for (const r of records) {
    if (r.status !== undefined) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    if (r.error !== undefined) byError[r.error] = (byError[r.error] ?? 0) + 1;
    if (r.server !== undefined) byServer[r.server] = (byServer[r.server] ?? 0) + 1;
    if (isOk(r)) ok += 1;
  }
  return { sent: records.length, ok, failed: records.length - ok, byStatus, byError, byServer, durationMs, records };
}

export function isOk(record: RequestRecord): boolean {
  return record.error === undefined && record.status !== undefined && record.status >= 200 && record.status < 300;
}

/** `socket hang up` (the server closed without answering) apart from other resets; codes otherwise. */
function errorKind(error: Error & { code?: string }): string {
  if (error.message === 'socket hang up') return 'socket hang up';
  return error.code ?? error.message;
}

/** "502 x3, ECONNRESET x1", or "-" when nothing failed. */
export function describeFailures(result: Pick<LoadResult, 'byStatus' | 'byError'>): string {
  const parts = [
    ...Object.entries(result.byStatus)
      .filter(([status]) => !status.startsWith('2'))
      .map(([status, n]) => `${status} x${n}`),
    ...Object.entries(result.byError).map(([kind, n]) => `${kind} x${n}`),
  ];
  return parts.length > 0 ? parts.join(', ') : '-';
}
