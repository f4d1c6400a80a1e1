import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Body, Controller, Get, Headers, Module, Post } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Test } from '@nestjs/testing';
import type { CanaryDecision } from '../canary.types';
import type { CanaryTargets } from './canary-targets';
import { registryCanaryTargets } from './canary-targets';
import { HttpCanaryForwarder } from './http-canary.forwarder';

type Adapter = 'express' | 'fastify';
const ADAPTERS: readonly Adapter[] = ['express', 'fastify'];
const DECISION: CanaryDecision = { variant: 'canary', reason: 'header', route: '/orders/:id/quote' };
/** The test's stand-in for the decision: requests carrying it are canary requests. */
const ROUTE_TO_CANARY = 'x-test-canary';

interface Answer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly bytes: number;
  readonly sha256: string;
}

/**
 * A plain node:http server standing in for the canary instance: it records what it received and
 * answers with its own headers (among them hop-by-hop ones that must not reach the client).
 */
class CanaryServer {
  readonly seen: SeenRequest[] = [];
  /** Resolved with the first chunk of each request body, as it arrives. */
  onFirstBytes: (() => void) | undefined;
  /** When set, the canary drops the connection once this many body bytes have arrived. */
  dieAfterBytes: number | undefined;
  /** When set, the canary drops the connection of each request once it has read it, answering nothing. */
  dieBeforeAnswering = false;
  requests = 0;
  private readonly server: Server = createServer((req, res) => this.handle(req, res));

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      if (bytes === 0) this.onFirstBytes?.();
      bytes += chunk.length;
      hash.update(chunk);
      if (this.dieAfterBytes !== undefined && bytes >= this.dieAfterBytes) req.socket.destroy();
    });
    req.on('end', () => {
      if (this.dieBeforeAnswering) return req.socket.destroy();
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bytes, sha256: hash.digest('hex') };
      this.seen.push(seen);
      const body = JSON.stringify({ servedBy: 'canary', ...seen });
      res.writeHead(207, 'Multi-Canary', [
        ['content-type', 'application/json'],
        ['x-served-by', 'canary'],
        ['set-cookie', 'a=1; Path=/'],
        ['set-cookie', 'b=2; Path=/'],
        ['connection', 'x-canary-secret'],
        ['x-canary-secret', 'hop-by-hop'],
        ['keep-alive', 'timeout=5'],
      ]);
      res.end(body);
    });
  }
}

@Controller('orders')
class OrdersController {
  @Get(':id/quote')
  quote(@Headers() headers: Record<string, string>): object {
    return { servedBy: 'stable', hop: headers['x-canary-hop'] ?? null };
  }

  @Post(':id/items')
  add(@Body() body: unknown): object {
    return { servedBy: 'stable', body };
  }
}

@Module({ controllers: [OrdersController] })
class OrdersModule {}

interface StableApp {
  readonly url: string;
  readonly app: INestApplication;
  close(): Promise<void>;
}

/**
 * The stable Nest app, with the forwarder installed where a body has not been read yet: an Express
 * middleware added before Nest registers its body parsers, or a Fastify `onRequest` hook. A request
 * served locally is marked with the forwarder's reason (`x-forward-result`).
 */
async function bootstrapStable(adapter: Adapter, forwarder: HttpCanaryForwarder): Promise<StableApp> {
  const moduleRef = await Test.createTestingModule({ imports: [OrdersModule] }).compile();
  const app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
  if (adapter === 'express') {
    app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
      if (req.headers[ROUTE_TO_CANARY] === undefined) return next();
      void forwarder.forward(req, res, DECISION).then((result) => {
        if (result === 'forwarded') return;
        res.setHeader('x-forward-result', result.servedLocally);
        next();
      });
    });
  } else {
    const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
    fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.headers[ROUTE_TO_CANARY] === undefined) return;
      const result = await forwarder.forward(request.raw, reply.raw, DECISION, { onCommit: () => reply.hijack() });
      if (result !== 'forwarded') void reply.header('x-forward-result', result.servedLocally);
    });
  }
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, app, close: () => app.close() };
}

/** One request on its own connection. `write` drives the body; without it the request ends at once. */
function send(
  url: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    write?: (req: import('node:http').ClientRequest) => void;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`${url}: no answer within 10 s`)));
    req.on('error', reject);
    if (options.write) options.write(req);
    else req.end(options.body);
  });
}

const json = (answer: Answer): Record<string, unknown> => JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe.each(ADAPTERS)('canary forwarding (%s)', (adapter) => {
  const canary = new CanaryServer();
  let canaryUrl: string;
  let target: string | undefined;
  const targets: CanaryTargets = { pick: () => (target === undefined ? undefined : { url: target }) };
  const forwarder = new HttpCanaryForwarder(targets, { connectTimeoutMs: 1000, headersTimeoutMs: 5000 });
  let stable: StableApp;

  beforeAll(async () => {
    canaryUrl = await canary.start();
    stable = await bootstrapStable(adapter, forwarder);
  });

  afterAll(async () => {
    await stable?.close();
    await forwarder.onModuleDestroy();
    await canary.stop();
  });

  beforeEach(() => {
    target = canaryUrl;
    canary.dieAfterBytes = undefined;
    canary.dieBeforeAnswering = false;
    canary.onFirstBytes = undefined;
  });

  it('forwards a GET with its path, query and end-to-end headers, and relays status, headers and body', async () => {
    const answer = await send(`${stable.url}/orders/42/quote?currency=EUR&qty=2`, {
      headers: {
        [ROUTE_TO_CANARY]: '1',
        'x-request-id': 'r-1',
        connection: 'x-client-secret',
        'x-client-secret': 'hop-by-hop',
        'proxy-authorization': 'Basic Zm9vOmJhcg==',
        te: 'trailers',
        baggage: 'userId=alice,feature_flag.result.variant=stable',
      },
    });
    expect(answer.status).toBe(207);
    expect(answer.headers['x-served-by']).toBe('canary');
    expect(answer.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(answer.headers['x-canary-secret']).toBeUndefined();
    const seen = json(answer) as unknown as SeenRequest & { servedBy: string };
    expect(seen).toMatchObject({ servedBy: 'canary', method: 'GET', url: '/orders/42/quote?currency=EUR&qty=2' });
    expect(seen.headers).toMatchObject({
      'x-request-id': 'r-1',
      'x-canary-hop': '1',
      'x-canary': 'always',
      'x-forwarded-for': '127.0.0.1',
      baggage: 'feature_flag.result.variant=canary,userId=alice',
    });
    expect(seen.headers['x-client-secret']).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers.te).toBeUndefined();
  });

  it('forwards a POST with its body intact', async () => {
    const body = JSON.stringify({ sku: 'A-1', qty: 3 });
    const answer = await send(`${stable.url}/orders/42/items`, {
      method: 'POST',
      headers: { [ROUTE_TO_CANARY]: '1', 'content-type': 'application/json' },
      body,
    });
    expect(answer.status).toBe(207);
    expect(json(answer)).toMatchObject({ method: 'POST', bytes: Buffer.byteLength(body), sha256: sha256(Buffer.from(body)) });
  });

  it('streams a body larger than 1 MiB: the canary sees its first bytes before the client sends the last', async () => {
    const first = Buffer.alloc(64 * 1024, 'a');
    const rest = Buffer.alloc(1536 * 1024);
    for (let i = 0; i < rest.length; i++) rest[i] = (i * 31) % 251;
    const firstBytesAtCanary = new Promise<void>((resolve) => (canary.onFirstBytes = resolve));
    let lastSentAfterFirstSeen = false;
    const answer = await send(`${stable.url}/orders/42/items`, {
      method: 'POST',
      headers: { [ROUTE_TO_CANARY]: '1', 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      write: (req) => {
        req.write(first);
        void firstBytesAtCanary.then(() => {
          lastSentAfterFirstSeen = true;
          req.end(rest);
        });
      },
    });
    expect(lastSentAfterFirstSeen).toBe(true);
    expect(answer.status).toBe(207);
    const whole = Buffer.concat([first, rest]);
    expect(json(answer)).toMatchObject({ bytes: whole.length, sha256: sha256(whole) });
  });

  it('serves a request carrying the hop header locally, without reaching the canary', async () => {
    const before = canary.requests;
    const answer = await send(`${stable.url}/orders/42/quote`, { headers: { [ROUTE_TO_CANARY]: '1', 'x-canary-hop': '1' } });
    expect(answer.status).toBe(200);
    expect(json(answer)).toEqual({ servedBy: 'stable', hop: '1' });
    expect(answer.headers['x-forward-result']).toBe('loop');
    expect(canary.requests).toBe(before);
  });

  it('serves locally when no canary is healthy (no_canary_target)', async () => {
    target = undefined;
    const answer = await send(`${stable.url}/orders/42/quote`, { headers: { [ROUTE_TO_CANARY]: '1' } });
    expect(json(answer)).toMatchObject({ servedBy: 'stable' });
    expect(answer.headers['x-forward-result']).toBe('no_canary_target');
  });

  it('serves locally, body intact, when the canary refuses the connection (connect_failed)', async () => {
    const down = createServer();
    down.listen(0, '127.0.0.1');
    await once(down, 'listening');
    target = `http://127.0.0.1:${(down.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => down.close(() => resolve()));
    const answer = await send(`${stable.url}/orders/42/items`, {
      method: 'POST',
      headers: { [ROUTE_TO_CANARY]: '1', 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'B-2' }),
    });
    expect(answer.status).toBe(201);
    expect(json(answer)).toEqual({ servedBy: 'stable', body: { sku: 'B-2' } });
    expect(answer.headers['x-forward-result']).toBe('connect_failed');
  });

  it('answers 502 and does not replay a request whose body was partly sent when the canary dies', async () => {
    canary.dieAfterBytes = 128 * 1024;
    const before = canary.requests;
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const answer = await send(`${stable.url}/orders/42/items`, {
      method: 'POST',
      headers: { [ROUTE_TO_CANARY]: '1', 'content-type': 'application/octet-stream', 'content-length': String(chunk.length * 32) },
      write: (req) => {
        // Sends until the answer comes (at most the declared length), then stops.
        let sent = 0;
        const more = () => {
          while (sent < 32 && !req.destroyed) {
            sent++;
            if (sent === 32) return req.end(chunk);
            if (!req.write(chunk)) return req.once('drain', more);
          }
        };
        more();
      },
    });
    expect(answer.status).toBe(502);
    expect(answer.headers.connection).toBe('close');
    expect(json(answer)).toMatchObject({ statusCode: 502, reason: 'canary_failed_during_request' });
    expect(canary.requests - before).toBe(1);
  });

  it('serves a GET here when the canary dies before answering it (canary_failed), and still answers 502 for a POST', async () => {
    canary.dieBeforeAnswering = true;
    const before = canary.requests;
    const read = await send(`${stable.url}/orders/42/quote`, { headers: { [ROUTE_TO_CANARY]: '1' } });
    expect(read.status).toBe(200);
    expect(json(read)).toEqual({ servedBy: 'stable', hop: null });
    expect(read.headers['x-forward-result']).toBe('canary_failed');
    // The canary received it: the local answer came after a forward that had started.
    expect(canary.requests - before).toBe(1);

    const write = await send(`${stable.url}/orders/42/items`, {
      method: 'POST',
      headers: { [ROUTE_TO_CANARY]: '1', 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'C-3' }),
    });
    expect(write.status).toBe(502);
    expect(json(write)).toMatchObject({ statusCode: 502, reason: 'canary_failed_during_request' });
    expect(canary.requests - before).toBe(2);
  });
});

describe('registryCanaryTargets', () => {
  it('picks canary instances from a registry client by meta track=canary', () => {
    const queries: unknown[] = [];
    const registry = {
      pick: (service: string, query: { meta?: Readonly<Record<string, string>> }) => {
        queries.push({ service, query });
        return { address: '10.0.0.7', port: 3001 };
      },
    };
    const targets = registryCanaryTargets(registry, 'orders');
    // Asked once at creation, so that the client starts watching before the first canary request.
    expect(queries).toEqual([{ service: 'orders', query: { meta: { track: 'canary' } } }]);
    expect(targets.pick()).toEqual({ url: 'http://10.0.0.7:3001' });
    expect(queries).toHaveLength(2);
    expect(queries[1]).toEqual(queries[0]);
  });

  it('answers undefined when the registry knows no canary, and brackets IPv6 addresses', () => {
    expect(registryCanaryTargets({ pick: () => undefined }, 'orders').pick()).toBeUndefined();
    expect(registryCanaryTargets({ pick: () => ({ address: '::1', port: 80 }) }, 'orders').pick()).toEqual({ url: 'http://[::1]:80' });
  });

  it('takes the port from a meta key when told to, and skips an instance without a valid one', () => {
    const instance = { address: '10.0.0.7', port: 3001, meta: { track: 'canary', grpc_port: '50051' } };
    expect(registryCanaryTargets({ pick: () => instance }, 'orders', { portMeta: 'grpc_port' }).pick()).toEqual({
      url: 'http://10.0.0.7:50051',
    });
    expect(registryCanaryTargets({ pick: () => instance }, 'orders', { portMeta: 'admin_port' }).pick()).toBeUndefined();
    const broken = { ...instance, meta: { grpc_port: '99999' } };
    expect(registryCanaryTargets({ pick: () => broken }, 'orders', { portMeta: 'grpc_port' }).pick()).toBeUndefined();
  });
});
