import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ADAPTERS, AppInstance, ensureFixturesBuilt, ROOT, startApp } from './support/apps';

/**
 * The decision travels downstream: a stable and a canary instance of the canary fixture app
 * (test/fixtures/canary-app.ts, built on @nest-rollout/canary alone, rule `x-env: canary`), whose
 * `@Canary()` route calls a downstream service through `canaryPropagationInterceptor(CanaryContext)`.
 * The downstream service is a plain HTTP server in this process, on 127.0.0.1, that records the
 * headers of each call. Requests go to the stable instance, which forwards canary decisions to the
 * canary instance (CANARY_URL).
 */

const CANARY_APP_MAIN = join(ROOT, 'dist/test/fixtures/canary-app.js');

interface Downstream {
  readonly url: string;
  readonly server: Server;
  /** Headers of each call, by path (`/prices/<id>`). */
  readonly calls: Map<string, IncomingHttpHeaders>;
}

async function startDownstream(): Promise<Downstream> {
  const calls = new Map<string, IncomingHttpHeaders>();
  const server = createServer((req, res) => {
    calls.set(req.url ?? '', req.headers);
    res.setHeader('content-type', 'application/json');
    res.end('{"priceCents":720}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, calls };
}

describe.each(ADAPTERS)('the canary decision on downstream calls, on %s', (adapter) => {
  let downstream: Downstream | undefined;
  let canary: AppInstance | undefined;
  let stable: AppInstance | undefined;

  beforeAll(async () => {
    ensureFixturesBuilt();
    downstream = await startDownstream();
    const env = { ADAPTER: adapter, DOWNSTREAM_URL: downstream.url };
    canary = await startApp({
      name: `fixture-canary-${adapter}`,
      script: CANARY_APP_MAIN,
      readyPath: '/ping',
      env: { ...env, APP_TRACK: 'canary' },
    });
    stable = await startApp({
      name: `fixture-stable-${adapter}`,
      script: CANARY_APP_MAIN,
      readyPath: '/ping',
      env: { ...env, APP_TRACK: 'stable', CANARY_URL: canary.url },
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([stable?.stop(2000), canary?.stop(2000)]);
    downstream?.server.closeAllConnections();
    await new Promise<void>((resolve) => (downstream ? downstream.server.close(() => resolve()) : resolve()));
  });

  /** GETs `path` on the stable instance; the body and the headers the downstream service received for `/prices/<id>`. */
  async function call(path: string, id: string, headers: Record<string, string>) {
    const res = await fetch(`${stable!.url}${path}`, { headers });
    const body = (await res.json()) as Record<string, unknown>;
    return { status: res.status, body, downstream: downstream!.calls.get(`/prices/${id}`) };
  }

  it('a canary request, forwarded to the canary instance, calls downstream with x-canary: always and the caller baggage', async () => {
    const answer = await call('/quotes/101/downstream', '101', { 'x-env': 'canary', baggage: 'userId=alice,tenant=acme;ttl=60' });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ track: 'canary', variant: 'canary', servedLocally: 'on_canary', downstream: 200 });
    expect(answer.downstream).toMatchObject({
      'x-canary': 'always',
      baggage: 'feature_flag.result.variant=canary,userId=alice,tenant=acme;ttl=60',
    });
  });

  it('a stable request calls downstream with x-canary: never, so the next service stays stable too', async () => {
    const answer = await call('/quotes/102/downstream', '102', { baggage: 'userId=bob' });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ track: 'stable', variant: 'stable', downstream: 200 });
    expect(answer.downstream).toMatchObject({ 'x-canary': 'never', baggage: 'feature_flag.result.variant=stable,userId=bob' });
  });

  it('a call from an undecorated route carries no decision', async () => {
    const answer = await call('/plain/103/downstream', '103', { 'x-env': 'canary', baggage: 'userId=carol' });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ track: 'stable', downstream: 200 });
    expect(answer.downstream?.['x-canary']).toBeUndefined();
    expect(answer.downstream?.baggage).toBe('userId=carol');
  });
});
