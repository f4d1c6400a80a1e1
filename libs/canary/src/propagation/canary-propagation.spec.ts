import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metadata } from '@grpc/grpc-js';
import { Controller, Get, Headers, Module } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import { CanaryContext } from '../canary.context';
import type { CanaryDecision } from '../canary.types';
import { mergeBaggage, readBaggageValue } from './baggage';
import { applyCanaryMetadata, canaryHeaders, canaryPropagationInterceptor, withCanaryHeaders } from './canary-propagation';
import { BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS, CANARY_BAGGAGE_KEY } from './propagation.constants';

const CANARY: CanaryDecision = { variant: 'canary', reason: 'header', route: '/orders/:id/quote' };

describe('mergeBaggage', () => {
  it('puts the variant first and keeps the other members in order', () => {
    expect(mergeBaggage('userId=alice, tenant=acme;ttl=60', CANARY_BAGGAGE_KEY, 'canary')).toBe(
      'feature_flag.result.variant=canary,userId=alice,tenant=acme;ttl=60',
    );
  });

  it('replaces an existing variant and merges several header lines', () => {
    expect(mergeBaggage(['feature_flag.result.variant=stable', 'a=1'], CANARY_BAGGAGE_KEY, 'canary')).toBe(
      'feature_flag.result.variant=canary,a=1',
    );
  });

  it('drops members without a key and stays within 64 members and 8192 bytes', () => {
    const many = Array.from({ length: 100 }, (_, i) => `k${i}=v`).join(',');
    expect(mergeBaggage(`=x,novalue,${many}`, CANARY_BAGGAGE_KEY, 'canary').split(',')).toHaveLength(BAGGAGE_MAX_MEMBERS);
    const big = `big=${'x'.repeat(BAGGAGE_MAX_BYTES)}`;
    expect(mergeBaggage(`${big},small=1`, CANARY_BAGGAGE_KEY, 'canary')).toBe('feature_flag.result.variant=canary,small=1');
  });

  it('reads a member back, properties dropped and percent-decoded', () => {
    expect(readBaggageValue('a=1, feature_flag.result.variant = canary ;p=1', CANARY_BAGGAGE_KEY)).toBe('canary');
    expect(readBaggageValue('a=%E2%82%AC', 'a')).toBe('€');
    expect(readBaggageValue('a=%E2', 'a')).toBeUndefined();
    expect(readBaggageValue(undefined, 'a')).toBeUndefined();
  });
});

describe('canary headers for downstream calls', () => {
  it('gives x-canary and baggage for a decision, and nothing without one', () => {
    expect(canaryHeaders(CANARY, 'userId=alice')).toEqual({
      'x-canary': 'always',
      baggage: 'feature_flag.result.variant=canary,userId=alice',
    });
    expect(canaryHeaders({ variant: 'stable' })).toEqual({ 'x-canary': 'never', baggage: 'feature_flag.result.variant=stable' });
    expect(canaryHeaders(undefined, 'userId=alice')).toEqual({});
  });

  it('sets the decision on headers in every form undici accepts, replacing a caller x-canary', () => {
    const expected = ['accept', 'json', 'x-canary', 'always', 'baggage', 'feature_flag.result.variant=canary,a=1'];
    expect(withCanaryHeaders({ accept: 'json', 'X-Canary': 'never', baggage: 'a=1' }, CANARY)).toEqual(expected);
    expect(withCanaryHeaders(['accept', 'json', 'baggage', 'a=1'], CANARY)).toEqual(expected);
    expect(
      withCanaryHeaders(
        [
          ['accept', 'json'],
          ['baggage', 'a=1'],
        ] as unknown as string[],
        CANARY,
      ),
    ).toEqual(expected);
    expect(withCanaryHeaders(null, CANARY)).toEqual(['x-canary', 'always', 'baggage', 'feature_flag.result.variant=canary']);
  });

  it('sets the decision on gRPC metadata, merged with its baggage', () => {
    const metadata = new Metadata();
    metadata.set('baggage', 'userId=alice');
    applyCanaryMetadata(metadata, CANARY);
    expect(metadata.get('x-canary')).toEqual(['always']);
    expect(metadata.get('baggage')).toEqual(['feature_flag.result.variant=canary,userId=alice']);
    expect(applyCanaryMetadata(new Metadata(), undefined).getMap()).toEqual({});
  });
});

/** A downstream service that records the headers of each call. */
async function startDownstream(): Promise<{ url: string; seen: IncomingMessage['headers'][]; server: Server }> {
  const seen: IncomingMessage['headers'][] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(req.headers);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe.each(['express', 'fastify'] as const)('propagation from a canary request (%s)', (adapter) => {
  let downstream: Awaited<ReturnType<typeof startDownstream>>;
  let app: INestApplication;
  let url: string;
  const context = new CanaryContext();
  const client = new Agent().compose(canaryPropagationInterceptor(context));

  @Controller('orders')
  class QuoteController {
    @Get(':id/quote')
    async quote(@Headers('baggage') baggage: string | undefined): Promise<string> {
      // The incoming baggage is passed on, as an OpenTelemetry propagator would.
      const answer = await request(`${downstream.url}/prices`, { dispatcher: client, headers: baggage ? { baggage } : {} });
      await answer.body.text();
      return 'done';
    }
  }

  @Module({ controllers: [QuoteController] })
  class QuoteModule {}

  beforeAll(async () => {
    downstream = await startDownstream();
    const moduleRef = await Test.createTestingModule({ imports: [QuoteModule] }).compile();
    app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
    // Stands in for the canary interceptor: canary requests run inside the context.
    const decide = (headers: IncomingMessage['headers']) => (headers['x-test-canary'] ? CANARY : undefined);
    if (adapter === 'express') {
      app.use((req: IncomingMessage, _res: ServerResponse, next: () => void) => {
        const decision = decide(req.headers);
        return decision ? context.run(decision, next) : next();
      });
    } else {
      (app.getHttpAdapter().getInstance() as FastifyInstance).addHook('preHandler', (req, _reply, done) => {
        const decision = decide(req.headers);
        return decision ? context.run(decision, done) : done();
      });
    }
    await app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await client.close();
    downstream.server.closeAllConnections();
    await new Promise<void>((resolve) => downstream.server.close(() => resolve()));
  });

  const get = (headers: Record<string, string>) =>
    new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${url}/orders/7/quote`, { headers, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });

  it('a downstream call made inside a canary request carries x-canary and the merged baggage', async () => {
    expect(await get({ 'x-test-canary': '1', baggage: 'userId=alice' })).toBe(200);
    expect(downstream.seen.at(-1)).toMatchObject({ 'x-canary': 'always', baggage: 'feature_flag.result.variant=canary,userId=alice' });
  });

  it('a downstream call outside a canary request is left untouched', async () => {
    expect(await get({ baggage: 'userId=bob' })).toBe(200);
    expect(downstream.seen.at(-1)?.['x-canary']).toBeUndefined();
    expect(downstream.seen.at(-1)?.baggage).toBe('userId=bob');
  });
});
