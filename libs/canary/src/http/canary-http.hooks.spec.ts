import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Body, Controller, Get, INestApplication, Module, Param, Post } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter, RouteConfig } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { SignJWT } from 'jose';
import { CANARY_FORWARDER } from '../canary.constants';
import { CanaryContext } from '../canary.context';
import { Canary, CanaryDecision } from '../canary.decorator';
import { CanaryModule } from '../canary.module';
import type { CanaryModuleOptions } from '../canary.options';
import { HttpCanaryForwarder } from '../forwarding/http-canary.forwarder';

const SECRET = 'a-test-secret-that-is-long-enough-123456';
const RULES: CanaryModuleOptions = { rules: { header: { 'x-env': 'canary' } } };

type Decision = CanaryDecision | undefined;

/** A token with `claims`, signed with SECRET (HS256), valid for 5 minutes. */
function signed(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));
}

@Controller('orders')
class OrdersController {
  constructor(private readonly context: CanaryContext) {}

  @Post(':id/notes')
  @Canary()
  note(@Param('id') id: string, @Body() body: unknown, @CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', id, body, decision, fromContext: this.context.current() ?? null };
  }

  @Get('special/quote')
  special(@CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', route: 'special', decision: decision ?? null };
  }

  @Get(':id/quote')
  @RouteConfig({ owner: 'orders' })
  @Canary()
  quote(@CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', decision, fromContext: this.context.current() ?? null };
  }

  @Get(':id/later')
  @Canary({ forward: false })
  async later(@CanaryDecision() decision: Decision) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { servedBy: 'stable', decision, fromContext: this.context.current() ?? null };
  }

  @Get(':id')
  plain(@CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', decision: decision ?? null, fromContext: this.context.current() ?? null };
  }
}

@Controller('carts')
@Canary({ forward: false })
class CartsController {
  constructor(private readonly context: CanaryContext) {}

  @Get(':id')
  cart(@CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', decision, fromContext: this.context.current() ?? null };
  }

  @Post(':id')
  update(@Body() body: unknown, @CanaryDecision() decision: Decision) {
    return { servedBy: 'stable', body, decision, fromContext: this.context.current() ?? null };
  }
}

/** The canary instance: a plain server that answers with what it received, hashed. */
async function startCanary(): Promise<{ url: string; server: Server; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ servedBy: 'canary', bytes, sha256: hash.digest('hex'), hop: req.headers['x-canary-hop'] ?? null }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, seen };
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function send(agent: Agent, url: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.each(['express', 'fastify'] as const)('@Canary() on the adapter hooks (%s)', (adapter) => {
  let app: INestApplication | undefined;
  let canary: Awaited<ReturnType<typeof startCanary>> | undefined;
  // One connection for the whole test: a decision must not outlive its request on it.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  afterEach(async () => {
    await app?.close();
    app = undefined;
    canary?.server.closeAllConnections();
    canary?.server.close();
    canary = undefined;
  });
  afterAll(() => agent.destroy());

  async function boot(options: CanaryModuleOptions = RULES, appOptions: { bodyParser?: boolean } = {}): Promise<string> {
    canary = await startCanary();
    const forwarder = new HttpCanaryForwarder(canary.url);
    // In the application's own module, neither global nor exported: the canary module finds it there.
    @Module({
      imports: [CanaryModule.forRoot(options)],
      controllers: [OrdersController, CartsController],
      providers: [{ provide: CANARY_FORWARDER, useValue: forwarder }],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
      logger: false,
      ...appOptions,
    });
    await app.listen(0, '127.0.0.1');
    return (await app.getUrl()).replace('[::1]', '127.0.0.1');
  }

  it("decides and forwards with Nest's body parsers turned off", async () => {
    const url = await boot(RULES, { bodyParser: false });
    const body = Buffer.from('raw bytes, parsed by nobody');
    const forwarded = await send(agent, url, 'POST', '/orders/7/notes', { 'content-type': 'text/plain', 'x-env': 'canary' }, body);
    expect(forwarded.body).toMatchObject({ servedBy: 'canary', bytes: body.length });
    const stable = await send(agent, url, 'POST', '/orders/7/notes', { 'content-type': 'text/plain' }, body);
    expect(stable.body).toMatchObject({ servedBy: 'stable', decision: { variant: 'stable', reason: 'no_match' } });
  });

  if (adapter === 'express') {
    it('adds no router layer of its own: the check runs in the first middleware every request passes', async () => {
      type RouterStack = { router: { stack: Array<{ name: string; route?: unknown }> } };
      const middlewareOf = (nest: INestApplication) =>
        (nest.getHttpAdapter().getInstance() as RouterStack).router.stack.filter((layer) => !layer.route).map((layer) => layer.name);
      @Module({})
      class PlainModule {}
      const plain = (await Test.createTestingModule({ imports: [PlainModule] }).compile()).createNestApplication(new ExpressAdapter(), {
        logger: false,
      });
      await plain.init();
      const without = middlewareOf(plain);
      await plain.close();
      const url = await boot();
      expect(middlewareOf(app as INestApplication)).toEqual(without);
      // And the check is there: a decorated route is still decided.
      const reply = await send(agent, url, 'POST', '/orders/7/notes', { 'content-type': 'application/json' }, Buffer.from('{}'));
      expect(reply.body).toMatchObject({ decision: { variant: 'stable', reason: 'no_match' } });
    });
  }

  it('forwards a JSON POST to the canary before the body parser reads it, intact', async () => {
    const url = await boot();
    const body = Buffer.from(JSON.stringify({ note: 'x'.repeat(200_000) }));
    const reply = await send(agent, url, 'POST', '/orders/7/notes', { 'content-type': 'application/json', 'x-env': 'canary' }, body);
    expect(reply).toEqual({
      status: 200,
      body: { servedBy: 'canary', bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), hop: '1' },
    });
    expect(canary?.seen).toEqual(['POST /orders/7/notes']);
  });

  it('parses the body as usual for a stable decision, with the decision in the handler and in CanaryContext', async () => {
    const url = await boot();
    const reply = await send(agent, url, 'POST', '/orders/7/notes', { 'content-type': 'application/json' }, Buffer.from('{"note":"hi"}'));
    expect(reply.status).toBe(201);
    expect(reply.body).toMatchObject({ servedBy: 'stable', id: '7', body: { note: 'hi' } });
    expect(reply.body.decision).toEqual({ variant: 'stable', reason: 'no_match', route: '/orders/:id/notes' });
    expect(reply.body.fromContext).toEqual(reply.body.decision);
    expect(canary?.seen).toEqual([]);
  });

  it('keeps the context of a decision that waited for a token, across the body parser', async () => {
    const url = await boot({ rules: { claim: { plan: 'beta' } }, jwt: { secret: SECRET, algorithms: ['HS256'] } });
    const token = await signed({ plan: 'free' });
    const reply = await send(
      agent,
      url,
      'POST',
      '/orders/7/notes',
      { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      Buffer.from('{"note":"hi"}'),
    );
    expect(reply.body).toMatchObject({ servedBy: 'stable', body: { note: 'hi' }, decision: { variant: 'stable', reason: 'no_match' } });
    expect(reply.body.fromContext).toEqual(reply.body.decision);
  });

  it("keeps a GET handler in its decision's context across awaits, a decision that waited for a token included", async () => {
    const url = await boot({ rules: { claim: { plan: 'beta' } }, jwt: { secret: SECRET, algorithms: ['HS256'] } });
    const token = await signed({ plan: 'beta' });
    const [beta, none] = await Promise.all([
      send(agent, url, 'GET', '/orders/7/later', { authorization: `Bearer ${token}` }),
      send(new Agent({ keepAlive: false }), url, 'GET', '/orders/7/later', {}),
    ]);
    expect(beta.body.decision).toMatchObject({ variant: 'canary', reason: 'claim', servedLocally: 'not_forwarded' });
    expect(beta.body.fromContext).toEqual(beta.body.decision);
    expect(none.body.decision).toMatchObject({ variant: 'stable', reason: 'no_match' });
    expect(none.body.fromContext).toEqual(none.body.decision);
  });

  it('leaves no decision behind on the connection for the next, undecorated request', async () => {
    const url = await boot();
    const decided = await send(agent, url, 'GET', '/orders/7/quote', {});
    expect(decided.body.fromContext).toMatchObject({ variant: 'stable' });
    const plain = await send(agent, url, 'GET', '/orders/7', {});
    expect(plain.body).toEqual({ servedBy: 'stable', decision: null, fromContext: null });
  });

  it('decides a route whose @RouteConfig() sits above @Canary(), and forwards it', async () => {
    const url = await boot();
    expect((await send(agent, url, 'GET', '/orders/7/quote?a=1', { 'x-env': 'canary' })).body).toMatchObject({ servedBy: 'canary' });
    expect(canary?.seen).toEqual(['GET /orders/7/quote?a=1']);
  });

  it('serves an earlier undecorated route that matches the same path, undecided', async () => {
    const url = await boot();
    expect((await send(agent, url, 'GET', '/orders/special/quote', { 'x-env': 'canary' })).body).toEqual({
      servedBy: 'stable',
      route: 'special',
      decision: null,
    });
    expect(canary?.seen).toEqual([]);
  });

  it('applies a controller-wide @Canary({ forward: false }) to each of its routes', async () => {
    const url = await boot();
    const get = await send(agent, url, 'GET', '/carts/3', { 'x-env': 'canary' });
    expect(get.body.decision).toEqual({ variant: 'canary', reason: 'header', route: '/carts/:id', servedLocally: 'not_forwarded' });
    expect(get.body.fromContext).toEqual(get.body.decision);
    const post = await send(
      agent,
      url,
      'POST',
      '/carts/3',
      { 'content-type': 'application/json', 'x-env': 'canary' },
      Buffer.from('{"n":1}'),
    );
    expect(post.body).toMatchObject({ body: { n: 1 }, decision: { variant: 'canary', servedLocally: 'not_forwarded' } });
    expect(canary?.seen).toEqual([]);
  });

  it('serves a canary decision here when the canary is down, before any byte was sent', async () => {
    const url = await boot();
    canary?.server.closeAllConnections();
    await new Promise<void>((resolve) => canary?.server.close(() => resolve()));
    const reply = await send(
      agent,
      url,
      'POST',
      '/orders/7/notes',
      { 'content-type': 'application/json', 'x-env': 'canary' },
      Buffer.from('{"a":1}'),
    );
    expect(reply.body).toMatchObject({
      servedBy: 'stable',
      body: { a: 1 },
      decision: { variant: 'canary', servedLocally: 'connect_failed' },
    });
  });
});
