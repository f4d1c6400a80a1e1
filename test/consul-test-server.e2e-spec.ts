import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, Server as TcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ConsulTestServer, parseGoDuration, selfSignedCertificate } from './support/consul-test-server';
import { delay } from './support/process';
import { waitUntil } from './support/wait';

/**
 * The Consul test server against what Consul does, behaviour by behaviour, over plain HTTP: the
 * registry driver and the Consul KV source are only as right as this server is. Each test names
 * the Consul behaviour it holds; the server's comments name the doc or source line it follows.
 */

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: <T = unknown>() => T;
}

async function api(
  server: ConsulTestServer,
  method: string,
  path: string,
  options: { token?: string; body?: unknown } = {},
): Promise<Answer> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: options.token ? { 'X-Consul-Token': options.token } : {},
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: <T>() => JSON.parse(text) as T };
}

const ttlService = (id: string, extra: Record<string, unknown> = {}) => ({
  Name: 'orders',
  ID: id,
  Address: '10.0.0.7',
  Port: 8080,
  Check: { CheckID: `service:${id}`, TTL: '30s' },
  ...extra,
});

const servers: ConsulTestServer[] = [];
async function start(options: ConstructorParameters<typeof ConsulTestServer>[0] = {}): Promise<ConsulTestServer> {
  const server = await ConsulTestServer.start(options);
  servers.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
});

describe('Consul test server: ACLs', () => {
  const acl = {
    defaultPolicy: 'deny' as const,
    tokens: {
      writer: { service_prefix: { '': 'write' as const }, node_prefix: { '': 'read' as const } },
      'service-reader': { service: { orders: 'read' as const } },
      reader: { service: { orders: 'read' as const }, node_prefix: { '': 'read' as const } },
    },
  };

  it('filters list reads for the anonymous token instead of refusing them, and hides that it did', async () => {
    const server = await start({ acl });
    expect((await api(server, 'PUT', '/v1/agent/service/register', { token: 'writer', body: ttlService('orders-1') })).status).toBe(200);

    const health = await api(server, 'GET', '/v1/health/service/orders');
    expect(health.status).toBe(200);
    expect(health.json()).toEqual([]);
    expect(health.headers.get('x-consul-results-filtered-by-acls')).toBeNull();
    const services = await api(server, 'GET', '/v1/agent/services');
    expect(services.status).toBe(200);
    expect(services.json()).toEqual({});
  });

  it('tells a token that it was filtered, and asks node:read as well as service:read for health entries', async () => {
    const server = await start({ acl });
    await api(server, 'PUT', '/v1/agent/service/register', { token: 'writer', body: ttlService('orders-1') });

    const withoutNodeRead = await api(server, 'GET', '/v1/health/service/orders', { token: 'service-reader' });
    expect(withoutNodeRead.status).toBe(200);
    expect(withoutNodeRead.json()).toEqual([]);
    expect(withoutNodeRead.headers.get('x-consul-results-filtered-by-acls')).toBe('true');

    const reader = await api(server, 'GET', '/v1/health/service/orders', { token: 'reader' });
    expect(reader.json<unknown[]>()).toHaveLength(1);
    expect(reader.headers.get('x-consul-results-filtered-by-acls')).toBeNull();
    expect(Object.keys((await api(server, 'GET', '/v1/agent/services', { token: 'reader' })).json<object>())).toEqual(['orders-1']);
  });

  it('refuses a direct read or a write without the permission (403), and a token it does not know everywhere', async () => {
    const server = await start({ acl });
    await api(server, 'PUT', '/v1/agent/service/register', { token: 'writer', body: ttlService('orders-1') });

    const anonymousRead = await api(server, 'GET', '/v1/agent/service/orders-1');
    expect(anonymousRead.status).toBe(403);
    expect(anonymousRead.text).toMatch(/^Permission denied: anonymous token lacks permission 'service:read' on "orders"/);
    const readerWrite = await api(server, 'PUT', '/v1/agent/service/register', { token: 'reader', body: ttlService('orders-2') });
    expect(readerWrite.status).toBe(403);
    expect(readerWrite.text).toMatch(/lacks permission 'service:write' on "orders"/);
    expect(readerWrite.text).not.toContain('reader');
    expect((await api(server, 'PUT', '/v1/agent/check/pass/service:orders-1', { token: 'reader' })).status).toBe(403);
    expect((await api(server, 'PUT', '/v1/agent/service/deregister/orders-1', { token: 'reader' })).status).toBe(403);
    expect((await api(server, 'GET', '/v1/agent/service/orders-1', { token: 'reader' })).status).toBe(200);

    const unknown = await api(server, 'GET', '/v1/health/service/orders', { token: 'no-such-token' });
    expect(unknown.status).toBe(403);
    expect(unknown.text).toBe('ACL not found');
  });

  it('applies a policy changed while it runs', async () => {
    const server = await start({ acl });
    await api(server, 'PUT', '/v1/agent/service/register', { token: 'writer', body: ttlService('orders-1') });
    expect((await api(server, 'GET', '/v1/agent/service/orders-1', { token: 'reader' })).status).toBe(200);
    server.setAclRules('reader', { service: { orders: 'deny' } });
    expect((await api(server, 'GET', '/v1/agent/service/orders-1', { token: 'reader' })).status).toBe(403);
    server.setAclRules('reader', undefined);
    expect((await api(server, 'GET', '/v1/agent/service/orders-1', { token: 'reader' })).text).toBe('ACL not found');
  });

  it('lets an exact rule win over a longer prefix rule, and a prefix over the default policy', async () => {
    const server = await start({
      acl: { defaultPolicy: 'allow', tokens: { t: { service: { orders: 'deny' }, service_prefix: { ord: 'read', 'orders-x': 'write' } } } },
    });
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('ordinal-1', { Name: 'ordinal' }) });
    expect((await api(server, 'GET', '/v1/agent/service/orders-1', { token: 't' })).status).toBe(403);
    expect((await api(server, 'GET', '/v1/agent/service/ordinal-1', { token: 't' })).status).toBe(200);
    expect(
      (await api(server, 'PUT', '/v1/agent/service/register', { token: 't', body: ttlService('x', { Name: 'ordinal' }) })).status,
    ).toBe(403);
    expect(
      (await api(server, 'PUT', '/v1/agent/service/register', { token: 't', body: ttlService('y', { Name: 'orders-x1' }) })).status,
    ).toBe(200);
    expect(
      (await api(server, 'PUT', '/v1/agent/service/register', { token: 't', body: ttlService('z', { Name: 'payments' }) })).status,
    ).toBe(200);
  });
});

describe('Consul test server: registration', () => {
  it('answers 404 to the deregistration of an id it does not know', async () => {
    const server = await start();
    const unknown = await api(server, 'PUT', '/v1/agent/service/deregister/orders-1');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toBe('Unknown service ID "orders-1". Ensure that the service ID is passed, not the service name.');
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    expect((await api(server, 'PUT', '/v1/agent/service/deregister/orders-1')).status).toBe(200);
    expect(server.agentServices()).toEqual({});
  });

  it('removes checks missing from a re-registration only with ?replace-existing-checks', async () => {
    const server = await start();
    const two = {
      Name: 'orders',
      ID: 'o1',
      Checks: [
        { CheckID: 'a', TTL: '30s' },
        { CheckID: 'b', TTL: '30s' },
      ],
    };
    const one = { Name: 'orders', ID: 'o1', Checks: [{ CheckID: 'a', TTL: '30s' }] };
    await api(server, 'PUT', '/v1/agent/service/register', { body: two });
    await api(server, 'PUT', '/v1/agent/service/register', { body: one });
    expect(Object.keys(server.serviceChecks('o1')).sort()).toEqual(['a', 'b']);
    await api(server, 'PUT', '/v1/agent/service/register?replace-existing-checks=false', { body: one });
    expect(Object.keys(server.serviceChecks('o1')).sort()).toEqual(['a', 'b']);
    await api(server, 'PUT', '/v1/agent/service/register?replace-existing-checks', { body: one });
    expect(Object.keys(server.serviceChecks('o1'))).toEqual(['a']);
    await api(server, 'PUT', '/v1/agent/service/register', { body: two });
    await api(server, 'PUT', '/v1/agent/service/register?replace-existing-checks=true', { body: one });
    expect(Object.keys(server.serviceChecks('o1'))).toEqual(['a']);
  });

  it('numbers generated check ids only when a registration has more than one check, Check and Checks together', async () => {
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', { body: { Name: 'orders', ID: 'single', Checks: [{ TTL: '30s' }] } });
    expect(Object.keys(server.serviceChecks('single'))).toEqual(['service:single']);
    await api(server, 'PUT', '/v1/agent/service/register', {
      body: { Name: 'orders', ID: 'both', Check: { TTL: '30s' }, Checks: [{ TTL: '30s' }] },
    });
    expect(Object.keys(server.serviceChecks('both')).sort()).toEqual(['service:both:1', 'service:both:2']);
  });

  it('keeps the index when a registration changes nothing, so blocking queries stay asleep', async () => {
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    const index = (await api(server, 'GET', '/v1/health/service/orders')).headers.get('x-consul-index')!;

    const blocked = api(server, 'GET', `/v1/health/service/orders?index=${index}&wait=1s`);
    const started = Date.now();
    expect((await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') })).status).toBe(200);
    const answer = await blocked;
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(answer.headers.get('x-consul-index')).toBe(index);

    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1', { Tags: ['green'] }) });
    expect(Number((await api(server, 'GET', '/v1/health/service/orders')).headers.get('x-consul-index'))).toBeGreaterThan(Number(index));
  });

  it('keeps a re-registered check at its status', async () => {
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    await api(server, 'PUT', '/v1/agent/check/pass/service:orders-1');
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1', { Tags: ['green'] }) });
    expect(server.checkStatus('service:orders-1')).toBe('passing');
  });

  it('answers check/update with the JSON status, and tells unknown, non-TTL and invalid updates apart', async () => {
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    const update = await api(server, 'PUT', '/v1/agent/check/update/service:orders-1', {
      body: { Status: 'warning', Output: 'slow disk' },
    });
    expect(update.status).toBe(200);
    const [entry] = (await api(server, 'GET', '/v1/health/service/orders')).json<
      { Checks: { CheckID: string; Status: string; Output: string }[] }[]
    >();
    expect(entry.Checks.find((c) => c.CheckID === 'service:orders-1')).toMatchObject({ Status: 'warning', Output: 'slow disk' });

    const invalid = await api(server, 'PUT', '/v1/agent/check/update/service:orders-1', { body: { Status: 'ok' } });
    expect([invalid.status, invalid.text]).toEqual([400, "Invalid check status: 'ok'"]);
    expect((await api(server, 'PUT', '/v1/agent/check/update/nope', { body: { Status: 'passing' } })).status).toBe(404);
    await api(server, 'PUT', '/v1/agent/service/register', {
      body: { Name: 'web', ID: 'web-1', Check: { CheckID: 'web-http', HTTP: 'http://127.0.0.1:1/', Interval: '10s' } },
    });
    const notTtl = await api(server, 'PUT', '/v1/agent/check/update/web-http', { body: { Status: 'passing' } });
    expect([notTtl.status, notTtl.text]).toEqual([500, 'CheckID "web-http" does not have associated TTL']);
  });
});

describe('Consul test server: queries', () => {
  it('filters tags case-insensitively in health and catalog queries', async () => {
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1', { Tags: ['Green', 'v2'] }) });
    for (const path of ['/v1/health/service/orders', '/v1/catalog/service/orders']) {
      expect((await api(server, 'GET', `${path}?tag=green`)).json<unknown[]>()).toHaveLength(1);
      expect((await api(server, 'GET', `${path}?tag=GREEN&tag=V2`)).json<unknown[]>()).toHaveLength(1);
      expect((await api(server, 'GET', `${path}?tag=blue`)).json<unknown[]>()).toHaveLength(0);
    }
  });

  it('serves its own datacenter and has no path to another', async () => {
    const server = await start({ datacenter: 'eu-1' });
    await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService('orders-1') });
    expect((await api(server, 'GET', '/v1/health/service/orders?dc=eu-1')).json<unknown[]>()).toHaveLength(1);
    for (const path of ['/v1/health/service/orders?dc=dc1', '/v1/catalog/service/orders?dc=dc1', '/v1/kv/config?dc=dc1']) {
      const answer = await api(server, 'GET', path);
      expect([answer.status, answer.text]).toEqual([500, 'No path to datacenter']);
    }
  });

  it('refuses a malformed wait or index with 400, as Go parses them', async () => {
    const server = await start();
    for (const wait of ['10', '0x10', '-1', '5 s', 'abc']) {
      const answer = await api(server, 'GET', `/v1/health/service/orders?index=1&wait=${encodeURIComponent(wait)}`);
      expect([wait, answer.status, answer.text]).toEqual([wait, 400, 'Invalid wait time']);
    }
    for (const index of ['-1', '0x10', '1.5', 'abc', '18446744073709551616']) {
      const answer = await api(server, 'GET', `/v1/health/service/orders?index=${encodeURIComponent(index)}`);
      expect([index, answer.status, answer.text]).toEqual([index, 400, 'Invalid index']);
    }
    expect((await api(server, 'GET', '/v1/kv/a?index=x')).status).toBe(400);
    expect((await api(server, 'GET', '/v1/health/service/orders?passing=yes')).status).toBe(400);
    expect(['1h30m', '1500ms', '-2s', '.5s', '0'].map(parseGoDuration)).toEqual([5_400_000, 1500, -2000, 500, 0]);
  });

  it('waits the default time for wait=0 or a negative wait, not none', async () => {
    const server = await start();
    for (const wait of ['0', '0s', '-5s']) {
      const index = (await api(server, 'GET', '/v1/health/service/orders')).headers.get('x-consul-index')!;
      let answered = false;
      const blocked = api(server, 'GET', `/v1/health/service/orders?index=${index}&wait=${wait}`).then((a) => ((answered = true), a));
      await delay(300);
      expect([wait, answered]).toEqual([wait, false]);
      await api(server, 'PUT', '/v1/agent/service/register', { body: ttlService(`orders-${wait}`) });
      expect((await blocked).json<unknown[]>().length).toBeGreaterThan(0);
    }
  }, 15_000);
});

describe('Consul test server: checks', () => {
  let https: HttpsServer | undefined;
  let tcp: TcpServer | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (https ? https.close(resolve) : resolve(undefined)));
    await new Promise((resolve) => (tcp ? tcp.close(resolve) : resolve(undefined)));
    https = tcp = undefined;
  });

  it('runs HTTPS checks: verified against its CA, or not at all with TLSSkipVerify, and never crashes on one', async () => {
    const { key, cert } = selfSignedCertificate();
    https = createHttpsServer({ key, cert }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => https!.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(https.address() as AddressInfo).port}/health/ready`;
    const check = (id: string, extra: Record<string, unknown> = {}) => ({
      Name: 'orders',
      ID: id,
      Check: { CheckID: id, HTTP: url, Interval: '1s', Timeout: '500ms', ...extra },
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const server = await start();
      await api(server, 'PUT', '/v1/agent/service/register', { body: check('skip', { TLSSkipVerify: true }) });
      await api(server, 'PUT', '/v1/agent/service/register', { body: check('verify') });
      await api(server, 'PUT', '/v1/agent/service/register', {
        body: { Name: 'orders', ID: 'ftp', Check: { CheckID: 'ftp', HTTP: 'ftp://127.0.0.1/', Interval: '1s' } },
      });
      await waitUntil(() => server.checkStatus('skip') === 'passing', 'the check that skips verification to pass', 5000);
      // Failed runs do not stop the loop: both failing checks run again.
      await waitUntil(() => server.checkRuns('verify') >= 2 && server.checkRuns('ftp') >= 2, 'the failing checks to run twice', 5000);
      expect(server.serviceChecks('verify').verify).toMatchObject({ Status: 'critical', Output: expect.stringMatching(/certificate/i) });
      expect(server.serviceChecks('ftp').ftp.Output).toMatch(/unsupported protocol scheme "ftp"/);

      const trusting = await start({ checkCa: cert });
      await api(trusting, 'PUT', '/v1/agent/service/register', { body: check('verify') });
      await waitUntil(() => trusting.checkStatus('verify') === 'passing', 'the check verified against the CA to pass', 5000);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  }, 20_000);

  it('runs TCP checks', async () => {
    tcp = createTcpServer((socket) => socket.end());
    await new Promise<void>((resolve) => tcp!.listen(0, '127.0.0.1', resolve));
    const server = await start();
    await api(server, 'PUT', '/v1/agent/service/register', {
      body: {
        Name: 'db',
        ID: 'db-1',
        Check: { CheckID: 'db-tcp', TCP: `127.0.0.1:${(tcp.address() as AddressInfo).port}`, Interval: '1s' },
      },
    });
    await waitUntil(() => server.checkStatus('db-tcp') === 'passing', 'the TCP check to pass', 5000);
  });
});

describe('Consul test server: reaping', () => {
  /** A TTL check that is never fed, with DeregisterCriticalServiceAfter "1m". */
  const neverFed = (id: string, ttl: string) => ({
    Name: 'orders',
    ID: id,
    Check: { CheckID: `service:${id}`, TTL: ttl, DeregisterCriticalServiceAfter: '1m' },
  });

  it('starts the critical clock when the check first turns critical, not at registration', async () => {
    // Reaping scaled by 0.02: the 30 s reaper runs every 600 ms, one minute lasts 1.2 s. The TTL is real.
    const server = await start({ reapTimeScale: 0.02 });
    const registeredAt = Date.now();
    await api(server, 'PUT', '/v1/agent/service/register', { body: neverFed('o1', '2s') });
    await waitUntil(() => server.history.some((e) => e.event === 'reaped'), 'the reaper', 10_000, 50);
    const reaped = server.history.find((e) => e.event === 'reaped')!;
    expect(reaped).toMatchObject({ serviceId: 'o1', checkId: 'service:o1' });
    // Registered critical, the check's clock starts only when its TTL runs out (2 s), then one scaled minute.
    expect(reaped.at - registeredAt).toBeGreaterThanOrEqual(2000 + 1200);
    expect(reaped.event === 'reaped' && reaped.criticalForMs).toBeGreaterThan(1200);
    expect(server.agentServices()).toEqual({});
  }, 15_000);

  it('raises a DeregisterCriticalServiceAfter below the one-minute floor', async () => {
    const server = await start({ reapTimeScale: 0.02 });
    await api(server, 'PUT', '/v1/agent/service/register', {
      body: { Name: 'orders', ID: 'o1', Check: { CheckID: 'c', TTL: '100ms', DeregisterCriticalServiceAfter: '1s' } },
    });
    await waitUntil(() => server.history.some((e) => e.event === 'reaped'), 'the reaper', 10_000, 50);
    const reaped = server.history.find((e) => e.event === 'reaped')!;
    expect(reaped.event === 'reaped' && reaped.criticalForMs).toBeGreaterThan(server.effectiveDeregisterAfterMs(1000));
    expect(server.effectiveDeregisterAfterMs(1000)).toBe(1200);
  }, 15_000);

  it('restarts the clock when the service registers again, and keeps a service without the setting', async () => {
    // Scaled by 0.05: reaper every 1.5 s, one minute lasts 3 s; TTL 1 s.
    const server = await start({ reapTimeScale: 0.05 });
    await api(server, 'PUT', '/v1/agent/service/register', { body: neverFed('o1', '1s') });
    await api(server, 'PUT', '/v1/agent/service/register', { body: { Name: 'orders', ID: 'kept', Check: { CheckID: 'k', TTL: '100ms' } } });
    await waitUntil(() => server.checkRuns('service:o1') === 1 && server.checkRuns('k') === 1, 'the TTL checks to expire', 5000, 10);
    // Critical for 1 s of the 3 it may be: register again, well before the reaper may take it.
    await delay(1000);
    const againAt = Date.now();
    await api(server, 'PUT', '/v1/agent/service/register', { body: neverFed('o1', '1s') });
    expect(server.history.filter((e) => e.event === 'reaped')).toEqual([]);
    await waitUntil(() => server.history.some((e) => e.event === 'reaped'), 'the reaper', 15_000, 50);
    const reaped = server.history.find((e) => e.event === 'reaped')!;
    expect(reaped).toMatchObject({ serviceId: 'o1' });
    // A fresh check state: its TTL runs again (1 s) before its clock starts (3 s).
    expect(reaped.at - againAt).toBeGreaterThanOrEqual(1000 + 3000);
    expect(Object.keys(server.agentServices())).toEqual(['kept']);
  }, 20_000);
});
