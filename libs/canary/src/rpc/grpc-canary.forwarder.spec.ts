import * as protoLoader from '@grpc/proto-loader';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { Logger } from '@nestjs/common';
import * as grpc from '@grpc/grpc-js';
import { CanaryOptionsError } from '../canary.errors';
import { registryCanaryTargets } from '../forwarding/canary-targets';
import type { CanaryTargets } from '../forwarding/canary-targets';
import {
  clientStream,
  decisions,
  freePort,
  GrpcInstance,
  LOADER_OPTIONS,
  QUOTES_PROTO,
  quotesClient,
  serverStream,
  startGrpcInstance,
  unary,
  until,
} from './canary-grpc.spec-helper';
import { GrpcCanaryForwarder } from './grpc-canary.forwarder';
import type { GrpcCanaryForwardingOptions } from './grpc-canary-forwarder.options';
import { DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS, resolveGrpcCanaryForwardingOptions } from './grpc-canary-forwarder.options';

const QUOTES = protoLoader.loadSync(QUOTES_PROTO, LOADER_OPTIONS);

const RULES = { header: { 'x-env': 'staging' } };
const STAGING = { 'x-env': 'staging' };

describe('GrpcCanaryForwarder: a stable instance forwards unary calls to a canary', () => {
  const started: { close(): unknown }[] = [];
  const live = <T extends { close(): unknown }>(thing: T): T => {
    started.push(thing);
    return thing;
  };
  afterEach(async () => {
    // Clients first, then the stable instance (its forwarder's channels), then the canary.
    for (const thing of started.reverse()) await thing.close();
    started.length = 0;
    jest.restoreAllMocks();
  });

  async function pair(forwarding: Partial<GrpcCanaryForwardingOptions> = {}, targets?: (canary: GrpcInstance) => CanaryTargets | string) {
    // The canary trusts its stable peers (loopback here) to force the side, as a cluster's CIDR would.
    const canary = live(
      await startGrpcInstance({
        pricing: 'v2',
        options: { rules: RULES, track: 'canary', trust: { force: { proxies: ['127.0.0.0/8'] } } },
      }),
    );
    const stable = live(
      await startGrpcInstance({
        pricing: 'v1',
        options: { rules: RULES },
        grpcForwarder: () =>
          new GrpcCanaryForwarder(targets ? targets(canary) : canary.address, { packageDefinition: QUOTES, ...forwarding }),
      }),
    );
    const client = live(quotesClient(stable.address, QUOTES));
    return { canary, stable, client };
  }

  async function stableTowards(targets: CanaryTargets | string, forwarding: Partial<GrpcCanaryForwardingOptions> = {}) {
    const stable = live(
      await startGrpcInstance({
        pricing: 'v1',
        options: { rules: RULES },
        grpcForwarder: () => new GrpcCanaryForwarder(targets, { packageDefinition: QUOTES, ...forwarding }),
      }),
    );
    return { stable, client: live(quotesClient(stable.address, QUOTES)) };
  }

  it('forwards a unary call: the canary serves it, with the hop header, the decision, the caller’s metadata and deadline', async () => {
    const { canary, stable, client } = await pair();
    const deadline = Date.now() + 5_000;
    const forwarded = await unary(client, 'Get', '1', { ...STAGING, baggage: 'userId=7' }, { deadline });
    expect(forwarded.error).toBeUndefined();
    // The canary honours the decision the stable instance sent (x-canary: always).
    expect(forwarded.reply).toMatchObject({
      id: '1',
      pricing: 'v2',
      variant: 'canary',
      reason: 'forced_always',
      servedLocally: 'on_canary',
      contextVariant: 'canary',
    });
    expect(forwarded.reply?.metadata).toEqual({
      'x-env': 'staging',
      'x-canary-hop': '1',
      'x-canary': 'always',
      baggage: 'feature_flag.result.variant=canary,userId=7',
      'x-forwarded-for': '127.0.0.1',
    });
    // The canary's handler ran under the caller's deadline. gRPC sends it as a timeout that each hop
    // re-anchors on receipt, so it lands a little later than sent, more so on a busy machine.
    expect(forwarded.reply?.deadlineMs).toBeLessThanOrEqual(deadline + 1_000);
    expect(forwarded.reply?.deadlineMs).toBeGreaterThan(deadline - 1_000);
    // The canary's response metadata came back too.
    expect(forwarded.headers?.get('x-served-by')).toEqual(['v2']);
    expect(stable.runs.counts).toEqual({});
    expect(canary.runs.counts).toEqual({ Get: 1 });

    const kept = await unary(client, 'Get', '2');
    expect(kept.reply).toMatchObject({ pricing: 'v1', variant: 'stable', reason: 'no_match' });
    expect(kept.headers?.get('x-served-by')).toEqual(['v1']);
    expect(decisions(stable.counted)).toEqual(['Quotes/Get canary header', 'Quotes/Get stable no_match']);
  });

  it('returns the canary’s error status to the caller as is, and sends the call once', async () => {
    const { canary, stable, client } = await pair();
    const answer = await unary(client, 'Fail', '9', STAGING);
    expect(answer.error).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'no quote 9 on v2' });
    expect(canary.runs.counts).toEqual({ Fail: 1 });
    expect(stable.runs.counts).toEqual({});
  });

  it('cancels the forwarded call when the caller cancels, and passes the deadline on', async () => {
    const { canary, stable, client } = await pair();
    let held: grpc.ClientUnaryCall | undefined;
    const cancelled = unary(client, 'Hold', '1', STAGING, {}, (call) => (held = call));
    await until(() => canary.runs.counts.Hold === 1);
    held?.cancel();
    expect((await cancelled).error?.code).toBe(grpc.status.CANCELLED);
    await until(() => canary.runs.counts['Hold cancelled'] === 1);

    const late = await unary(client, 'Hold', '2', STAGING, { deadline: Date.now() + 300 });
    expect(late.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await until(() => canary.runs.counts['Hold cancelled'] === 2);
    expect(canary.runs.counts.Hold).toBe(2);
    expect(stable.runs.counts).toEqual({});
  });

  it('answers a call the canary dropped after it was sent with the error, and never serves it again', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const { canary, stable, client } = await pair();
    const dropped = unary(client, 'Hold', '1', STAGING);
    await until(() => canary.runs.counts.Hold === 1);
    await canary.close();
    const answer = await dropped;
    // What grpc-js reports for a server shut down mid-call (the stream reset, or the connection gone), as is.
    expect([grpc.status.CANCELLED, grpc.status.UNAVAILABLE]).toContain(answer.error?.code);
    expect(answer.reply).toBeUndefined();
    expect(stable.runs.counts).toEqual({});
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ event: 'canary.forward_failed', route: 'Quotes/Hold', code: grpc.status[answer.error?.code ?? 0] }),
    );
  });

  it('serves streaming calls locally with reason streaming_call', async () => {
    const { canary, stable, client } = await pair();
    const watched = await serverStream(client, '7', STAGING);
    expect(watched.map((q) => [q.pricing, q.variant, q.servedLocally])).toEqual([
      ['v1', 'canary', 'streaming_call'],
      ['v1', 'canary', 'streaming_call'],
    ]);
    const collected = await clientStream(client, ['1', '2'], STAGING);
    expect(collected).toMatchObject({ id: '1,2', pricing: 'v1', variant: 'canary', servedLocally: 'streaming_call' });
    expect(canary.runs.counts).toEqual({});
    expect(stable.runs.counts).toEqual({ Watch: 1, Collect: 1 });
  });

  it('serves a handler with @Canary({ forward: false }) locally (not_forwarded)', async () => {
    const { canary, client } = await pair();
    const answer = await unary(client, 'Decide', '1', STAGING);
    expect(answer.reply).toMatchObject({ pricing: 'v1', variant: 'canary', servedLocally: 'not_forwarded' });
    expect(canary.runs.counts).toEqual({});
  });

  it('serves a call that carries the hop header locally (loop)', async () => {
    const { canary, client } = await pair();
    const answer = await unary(client, 'Get', '1', { ...STAGING, 'x-canary-hop': '1' });
    expect(answer.reply).toMatchObject({ pricing: 'v1', variant: 'canary', servedLocally: 'loop' });
    expect(canary.runs.counts).toEqual({});
  });

  it('dials the canary instances a registry knows (their http:// URL read as host:port)', async () => {
    const { client } = await pair({}, (canary) =>
      registryCanaryTargets(
        { pick: (_service, query) => (query.meta?.track === 'canary' ? { address: '127.0.0.1', port: canary.port } : undefined) },
        'quotes',
      ),
    );
    expect((await unary(client, 'Get', '1', STAGING)).reply).toMatchObject({ pricing: 'v2', servedLocally: 'on_canary' });
  });

  it('serves locally when no canary is healthy (no_canary_target)', async () => {
    const { client } = await stableTowards({ pick: () => undefined });
    expect((await unary(client, 'Get', '1', STAGING)).reply).toMatchObject({
      pricing: 'v1',
      variant: 'canary',
      servedLocally: 'no_canary_target',
    });
  });

  it('serves locally at once when the canary refuses connections (connect_failed), and says so in the log', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const { client } = await stableTowards(`127.0.0.1:${await freePort()}`, { connectTimeoutMs: 5_000 });
    for (const id of ['1', '2']) {
      const startedAt = Date.now();
      const answer = await unary(client, 'Get', id, STAGING);
      expect(answer.reply).toMatchObject({ id, pricing: 'v1', variant: 'canary', servedLocally: 'connect_failed' });
      // A refused connection fails the channel; the call does not wait out the connect timeout.
      expect(Date.now() - startedAt).toBeLessThan(2_500);
    }
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ event: 'canary.forward_skipped', reason: 'connect_failed', route: 'Quotes/Get' }),
    );
  });

  it('serves locally when the canary channel is not ready within the connect timeout (connect_failed)', async () => {
    // Accepts TCP and never speaks HTTP/2: the channel stays CONNECTING.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    live({ close: () => new Promise<void>((resolve) => (sockets.forEach((s) => s.destroy()), silent.close(() => resolve()))) });
    const { client } = await stableTowards(`127.0.0.1:${(silent.address() as AddressInfo).port}`, { connectTimeoutMs: 300 });
    const startedAt = Date.now();
    const answer = await unary(client, 'Get', '1', STAGING);
    expect(answer.reply).toMatchObject({ pricing: 'v1', servedLocally: 'connect_failed' });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(250);
    expect(Date.now() - startedAt).toBeLessThan(3_000);
  });

  it('uses a canary again once it is back', async () => {
    const port = await freePort();
    const { client } = await stableTowards(`127.0.0.1:${port}`, { maxReconnectBackoffMs: 200 });
    expect((await unary(client, 'Get', '1', STAGING)).reply).toMatchObject({ servedLocally: 'connect_failed' });
    live(await startGrpcInstance({ pricing: 'v2', options: { rules: RULES, track: 'canary' } }, port));
    let answer = await unary(client, 'Get', '2', STAGING);
    for (let attempt = 0; answer.reply?.pricing !== 'v2' && attempt < 50; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await unary(client, 'Get', '2', STAGING);
    }
    expect(answer.reply).toMatchObject({ pricing: 'v2', servedLocally: 'on_canary' });
  });
});

describe('GrpcCanaryForwarder options', () => {
  it('applies the defaults', () => {
    const packageDefinition = QUOTES;
    expect(resolveGrpcCanaryForwardingOptions({ packageDefinition })).toEqual({
      packageDefinition,
      ...DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS,
      credentials: undefined,
      channelOptions: undefined,
    });
    expect(DEFAULT_GRPC_CANARY_FORWARDING_OPTIONS).toEqual({
      connectTimeoutMs: 1000,
      maxReconnectBackoffMs: 5000,
      hopHeader: 'x-canary-hop',
    });
  });

  it('reports every problem at once', () => {
    const attempt = () =>
      resolveGrpcCanaryForwardingOptions({
        packageDefinition: { 'quotes.Quote': {} },
        connectTimeoutMs: 0,
        hopHeader: 'X-Hop',
        connectTimout: 5,
      } as unknown as GrpcCanaryForwardingOptions);
    expect(attempt).toThrow(CanaryOptionsError);
    expect(() => attempt()).toThrow(
      expect.objectContaining({
        problems: [
          expect.stringMatching(/^grpcForwarding\.packageDefinition: must be the package definition the server loads/),
          'grpcForwarding.connectTimeoutMs: must be a whole number of milliseconds > 0',
          'grpcForwarding.hopHeader: must be a lower-case metadata key such as "x-canary-hop"',
          'grpcForwarding.connectTimout: unknown option; known options: packageDefinition, connectTimeoutMs, maxReconnectBackoffMs, hopHeader, credentials, channelOptions',
        ],
      }),
    );
  });

  it('refuses a missing canary address at construction', () => {
    const unset = process.env.NEST_ROLLOUT_UNSET_CANARY_URL as string;
    expect(() => new GrpcCanaryForwarder(unset, { packageDefinition: QUOTES })).toThrow(
      expect.objectContaining({ problems: [expect.stringMatching(/^grpcForwarding targets: must be a canary address/)] }),
    );
    expect(() => new GrpcCanaryForwarder(' ', { packageDefinition: QUOTES })).toThrow(CanaryOptionsError);
  });

  it("finds a method by its full path or by the handler's /Service/Method, and knows a server-streaming one", async () => {
    const forwarder = new GrpcCanaryForwarder({ pick: () => undefined }, { packageDefinition: QUOTES });
    const call = { metadata: new grpc.Metadata(), getPeer: () => '127.0.0.1:1' };
    const decision = { variant: 'canary', reason: 'header', route: 'Quotes/Get' } as const;
    const forward = (path: string) => forwarder.forward({ path, request: { id: '1' }, call }, decision);
    expect(await forward('/quotes.Quotes/Get')).toEqual({ servedLocally: 'no_canary_target' });
    expect(await forward('/Quotes/Get')).toEqual({ servedLocally: 'no_canary_target' });
    expect(await forward('/quotes.Quotes/Watch')).toEqual({ servedLocally: 'streaming_call' });
    expect(await forward('/Quotes/Collect')).toEqual({ servedLocally: 'streaming_call' });
    expect(await forward('/quotes.Prices/Get')).toEqual({ servedLocally: 'unknown_method' });
    forwarder.onModuleDestroy();
  });

  it('names the package to install when @grpc/grpc-js is missing', () => {
    jest.isolateModules(() => {
      jest.doMock('@grpc/grpc-js', () => {
        const error = new Error("Cannot find module '@grpc/grpc-js' from 'grpc-canary.forwarder.ts'") as NodeJS.ErrnoException;
        error.code = 'MODULE_NOT_FOUND';
        throw error;
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a fresh copy that sees the mock
      const { GrpcCanaryForwarder: Isolated } = require('./grpc-canary.forwarder') as typeof import('./grpc-canary.forwarder');
      expect(() => new Isolated('127.0.0.1:1', { packageDefinition: QUOTES })).toThrow(
        expect.objectContaining({
          code: 'CANARY_PACKAGE_MISSING',
          message: expect.stringContaining('GrpcCanaryForwarder needs the npm package "@grpc/grpc-js"') as unknown,
        }),
      );
    });
    jest.dontMock('@grpc/grpc-js');
  });
});
