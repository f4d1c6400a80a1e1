import * as protoLoader from '@grpc/proto-loader';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { Counted, Quote, QuotesClient } from './canary-grpc.spec-helper';
import {
  decisions,
  freePort,
  grpcServerOptions,
  HandlerRuns,
  instanceModule,
  LOADER_OPTIONS,
  QUOTES_PROTO,
  quotesClient,
  unary,
} from './canary-grpc.spec-helper';

const QUOTES = protoLoader.loadSync(QUOTES_PROTO, LOADER_OPTIONS);

const ADAPTERS = ['express', 'fastify'] as const;
/** When the microservice joins: the usual order, or after the HTTP application is initialised. */
const ORDERS = ['connected before init', 'connected after init'] as const;

describe.each(ADAPTERS)('a controller-wide @Canary() in a hybrid application (HTTP + gRPC) on %s', (adapter) => {
  let app: INestApplication | undefined;
  let client: QuotesClient | undefined;
  afterEach(async () => {
    client?.close();
    await app?.close();
    app = client = undefined;
  });

  it.each(ORDERS)('decides HTTP routes on the adapter and gRPC methods in the interceptor, once each (%s)', async (order) => {
    const counted: Counted[] = [];
    const moduleRef = await Test.createTestingModule({
      imports: [instanceModule({ pricing: 'v1', options: { rules: { header: { 'x-env': 'staging' } } } }, counted)],
    }).compile();
    app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: false });
    const port = await freePort();
    if (order === 'connected after init') await app.init();
    app.connectMicroservice(grpcServerOptions(port));
    await app.startAllMicroservices();
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    client = quotesClient(`127.0.0.1:${port}`, QUOTES);

    const http = async (headers: Record<string, string>) => (await (await fetch(`${url}/quotes/1`, { headers })).json()) as Quote;
    expect(await http({ 'x-env': 'staging' })).toMatchObject({
      variant: 'canary',
      reason: 'header',
      servedLocally: 'no_forwarder',
      contextVariant: 'canary',
    });
    expect((await unary(client, 'Get', '1', { 'x-env': 'staging' })).reply).toMatchObject({
      variant: 'canary',
      reason: 'header',
      servedLocally: 'no_forwarder',
      contextVariant: 'canary',
    });
    expect(await http({})).toMatchObject({ variant: 'stable', reason: 'no_match', contextVariant: 'stable' });
    expect((await unary(client, 'Get', '2')).reply).toMatchObject({ variant: 'stable', reason: 'no_match', contextVariant: 'stable' });
    // The method's own @Canary({ forward: false }) beside the controller's: one decision, with the method's options.
    expect((await unary(client, 'Decide', '3', { 'x-env': 'staging' })).reply).toMatchObject({
      variant: 'canary',
      servedLocally: 'not_forwarded',
    });

    expect(decisions(counted)).toEqual([
      '/quotes/:id canary header',
      'Quotes/Get canary header',
      '/quotes/:id stable no_match',
      'Quotes/Get stable no_match',
      'Quotes/Decide canary header',
    ]);
    expect(app.get(HandlerRuns).counts).toEqual({ http: 2, Get: 2, Decide: 1 });
  });
});
