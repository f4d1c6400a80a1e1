import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ADAPTERS, type AppInstance, ROOT, startSample } from './support/apps';
import { freePort } from './support/ports';
import { delay, logEvents } from './support/process';

/**
 * The sample's gRPC endpoint (PORT_GRPC), as a client sees it from outside the process: the orders
 * and their canary-decided quotes over gRPC beside HTTP, grpc.health.v1 following the lifecycle,
 * rpc_server_duration_seconds, and the drain on SIGTERM, on both adapters of the hybrid application.
 */

const PROTOS = [
  join(ROOT, 'apps/sample/proto/orders.proto'),
  join(ROOT, 'apps/sample/proto/demo.proto'),
  join(ROOT, 'libs/health/proto/health.proto'),
];
const definition = protoLoader.loadSync(PROTOS, { keepCase: false, longs: Number, enums: String, defaults: true });
type ClientConstructor = grpc.ServiceClientConstructor;
const packages = grpc.loadPackageDefinition(definition) as unknown as {
  orders: { v1: { Orders: ClientConstructor } };
  demo: { v1: { Demo: ClientConstructor } };
  grpc: { health: { v1: { Health: ClientConstructor } } };
};

const SERVING = 'SERVING';
const NOT_SERVING = 'NOT_SERVING';

interface Order {
  id: string;
  item: string;
  quantity: number;
  createdAt: string;
}

/** One gRPC channel to an instance, and its unary calls as promises that resolve with the reply or the error. */
class SampleClient {
  readonly orders: grpc.Client;
  readonly demo: grpc.Client;
  readonly health: grpc.Client;

  constructor(address: string) {
    this.orders = new packages.orders.v1.Orders(address, grpc.credentials.createInsecure());
    // The same channel for every service, as a client with one connection to the instance has.
    const channelOverride = this.orders.getChannel();
    this.demo = new packages.demo.v1.Demo(address, grpc.credentials.createInsecure(), { channelOverride });
    this.health = new packages.grpc.health.v1.Health(address, grpc.credentials.createInsecure(), { channelOverride });
  }

  call<T>(
    client: grpc.Client,
    method: string,
    request: object,
    metadata: Record<string, string> = {},
  ): Promise<{ reply?: T; error?: grpc.ServiceError }> {
    const md = new grpc.Metadata();
    for (const [key, value] of Object.entries(metadata)) md.set(key, value);
    return new Promise((resolve) => {
      (client as unknown as Record<string, (...args: unknown[]) => void>)[method].call(
        client,
        request,
        md,
        { deadline: Date.now() + 10_000 },
        (error: grpc.ServiceError | null, reply: T) => resolve(error ? { error } : { reply }),
      );
    });
  }

  async check(service: string): Promise<string> {
    const { reply, error } = await this.call<{ status: string }>(this.health, 'Check', { service });
    if (error) throw error;
    return reply!.status;
  }

  close(): void {
    this.orders.close();
  }
}

async function createOrder(sample: AppInstance, item: string, quantity: number): Promise<Order> {
  const res = await fetch(`${sample.url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item, quantity }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Order;
}

describe.each(ADAPTERS)('the sample over gRPC on %s', (adapter) => {
  let sample: AppInstance | undefined;
  let client: SampleClient | undefined;

  afterEach(async () => {
    client?.close();
    await sample?.stop(2000);
    sample = client = undefined;
  }, 10_000);

  async function start(env: Record<string, string> = {}): Promise<{ sample: AppInstance; client: SampleClient }> {
    const grpcPort = await freePort();
    sample = await startSample({ name: `sample-grpc-${adapter}`, adapter, env: { PORT_GRPC: String(grpcPort), ...env } });
    client = new SampleClient(`127.0.0.1:${grpcPort}`);
    return { sample, client };
  }

  it('serves the orders over gRPC beside HTTP, quotes decided by the canary rules, grpc.health.v1 and the RPC metrics', async () => {
    const { sample, client } = await start();
    expect(logEvents(sample.process.stdout, 'grpc.listening')).toEqual([expect.objectContaining({ host: '127.0.0.1' })]);

    // grpc.health.v1 follows readiness, for the whole server and for the sample's services by name.
    expect(await client.check('')).toBe(SERVING);
    expect(await client.check('orders.v1.Orders')).toBe(SERVING);
    expect(await client.check('liveness')).toBe(SERVING);
    const unknown = await client.call(client.health, 'Check', { service: 'no.such.Service' });
    expect(unknown.error?.code).toBe(grpc.status.NOT_FOUND);

    // An order written over HTTP reads the same over gRPC.
    const order = await createOrder(sample, 'widget', 12);
    expect(await client.call(client.orders, 'GetOrder', { id: order.id })).toEqual({ reply: order });
    const missing = await client.call(client.orders, 'GetOrder', { id: '999999' });
    expect(missing.error).toMatchObject({ code: grpc.status.NOT_FOUND, details: 'order 999999 not found' });

    // Quotes: stable without a matching rule; canary for `x-env: canary` (the shipped rules), served
    // here with v1 since this stable instance has no canary to forward to; the same as over HTTP.
    const stable = await client.call(client.orders, 'GetQuote', { id: order.id });
    expect(stable.reply).toEqual({
      id: order.id,
      pricing: 'v1',
      amountCents: 3000,
      track: 'stable',
      variant: 'stable',
      reason: 'no_match',
      servedLocally: '',
    });
    const canary = await client.call(client.orders, 'GetQuote', { id: order.id }, { 'x-env': 'canary' });
    const overHttp = (await (await fetch(`${sample.url}/orders/${order.id}/quote`, { headers: { 'x-env': 'canary' } })).json()) as object;
    expect(canary.reply).toEqual({ ...overHttp, servedLocally: 'no_forwarder' });
    expect(canary.reply).toMatchObject({ variant: 'canary', reason: 'header', pricing: 'v1' });

    // Every call in rpc_server_duration_seconds with the status the caller got; none in the HTTP histogram.
    const metrics = await (await fetch(`${sample.url}/metrics`)).text();
    for (const series of [
      'method="Orders/GetOrder",code="OK"',
      'method="Orders/GetOrder",code="NOT_FOUND"',
      'method="Orders/GetQuote",code="OK"',
      'method="Health/Check",code="OK"',
    ]) {
      expect(metrics).toMatch(new RegExp(`^rpc_server_duration_seconds_count\\{transport="grpc",${series}\\} [1-9]`, 'm'));
    }
    expect(metrics).not.toMatch(/^http_request_duration_seconds_count\{[^}]*route="[^"]*Orders/m);
  }, 30_000);

  it('prices with v2 on a canary instance, which serves its canary decisions itself', async () => {
    const { sample, client } = await start({ APP_TRACK: 'canary' });
    const order = await createOrder(sample, 'widget', 12);
    expect((await client.call(client.orders, 'GetQuote', { id: order.id }, { 'x-env': 'canary' })).reply).toMatchObject({
      pricing: 'v2',
      amountCents: 2736,
      track: 'canary',
      variant: 'canary',
      servedLocally: 'on_canary',
    });
  }, 30_000);

  it('drains on SIGTERM: health turns NOT_SERVING while calls are still served, a call in flight finishes, an endless Watch is cut at the deadline, exit 0', async () => {
    const drainDelayMs = 1500;
    const shutdownTimeoutMs = 1500;
    const { sample, client } = await start({ DRAIN_DELAY_MS: String(drainDelayMs), SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs) });
    const order = await createOrder(sample, 'widget', 1);

    // A Watch stream never ends by itself: only the drain's deadline ends it.
    const watched: string[] = [];
    const watch = (client.health as unknown as { Watch(request: object): grpc.ClientReadableStream<{ status: string }> }).Watch({
      service: '',
    });
    watch.on('data', (response) => watched.push(response.status));
    const watchEnded = new Promise<{ at: number; code?: number }>((resolve) => {
      watch.on('error', (error: grpc.ServiceError) => resolve({ at: Date.now(), code: error.code }));
      watch.on('end', () => resolve({ at: Date.now() }));
    });
    while (watched.length === 0) await delay(10);
    expect(watched).toEqual([SERVING]);

    // In flight from before the signal until after STOPPING began, within the shutdown timeout.
    const slowMs = drainDelayMs + 1000;
    const slow = client.call(client.demo, 'Slow', { ms: slowMs });
    await delay(100);
    const signalledAt = Date.now();
    sample.process.signal('SIGTERM');

    // DRAINING: readiness off, on the stream and on a new check, and calls still answered.
    await sample.process.waitForLine((line) => line.includes('"to":"DRAINING"'), 2000);
    expect(await client.check('')).toBe(NOT_SERVING);
    expect(await client.check('liveness')).toBe(SERVING);
    expect(await client.call(client.orders, 'GetOrder', { id: order.id })).toEqual({ reply: order });
    expect(Date.now() - signalledAt).toBeLessThan(drainDelayMs);

    expect(await slow).toEqual({ reply: { sleptMs: slowMs } });
    const ended = await watchEnded;
    expect(watched).toEqual([SERVING, NOT_SERVING]);
    expect(ended.code).toBeDefined();
    // Cut by the deadline (STOPPING after the drain delay, plus the shutdown timeout), not earlier.
    expect(ended.at - signalledAt).toBeGreaterThanOrEqual(drainDelayMs + shutdownTimeoutMs - 200);

    const exit = await sample.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
    expect(logEvents(sample.process.stdout, 'grpc.stopped')).toEqual([expect.objectContaining({ forced: true })]);
    expect(logEvents(sample.process.stdout, 'lifecycle.deadline_exceeded')).toEqual([]);
  }, 30_000);
});
