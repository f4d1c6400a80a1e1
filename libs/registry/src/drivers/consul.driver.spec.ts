import { EventEmitter } from 'node:events';
import { ManualClock, settle } from '@nest-rollout/lifecycle';
import { RegistryPermissionError } from '../registry.errors';
import { resolveRegistryOptions } from '../registry.options';
import type { ServiceInstance, ServiceRegistration } from '../registry.types';
import {
  ConsulClientConstructor,
  ConsulDriver,
  consulRegistrationBody,
  goDuration,
  instancesFromHealth,
  nextIndex,
  PinnedLookup,
} from './consul.driver';

const registration: ServiceRegistration = {
  id: 'orders-host-8080',
  name: 'orders',
  address: '10.0.0.7',
  port: 8080,
  tags: ['green'],
  meta: { version: '1.2.3', color: 'green', track: 'stable' },
};

/**
 * A node-consul stand-in for what the driver does with an answer (the calls against a Consul-API
 * server are in test/registry.e2e-spec.ts): each method answers what the spec queued, and records its call.
 */
function fakeConsul() {
  const calls: { method: string; options: Record<string, unknown> }[] = [];
  const answers: Record<string, (() => Promise<unknown>)[]> = {};
  const answer = (method: string) => async (options: Record<string, unknown>) => {
    calls.push({ method, options });
    const next = answers[method]?.shift();
    return next ? next() : undefined;
  };
  const client = {
    _get: answer('get'),
    _put: answer('put'),
    agent: {
      service: { deregister: answer('deregister') },
      check: { pass: answer('pass'), fail: answer('fail') },
    },
    health: { service: answer('health') },
    destroy: () => calls.push({ method: 'destroy', options: {} }),
  };
  let constructed: Record<string, unknown> | undefined;
  const Ctor = function (this: unknown, options: Record<string, unknown>) {
    constructed = options;
    return client;
  } as unknown as ConsulClientConstructor;
  return { Ctor, calls, answers, constructed: () => constructed };
}

/** What papi rejects with: the message (only a text body under 80 characters), the status and the response. */
function httpError(statusCode: number, body: string) {
  return Object.assign(new Error(body.length < 80 ? body : 'request failed'), { statusCode, response: { statusCode, body } });
}

describe('Consul driver', () => {
  it("writes Consul's duration syntax", () => {
    expect([10_000, 60_000, 1500, 500].map(goDuration)).toEqual(['10s', '60s', '1500ms', '500ms']);
  });

  it('registers an HTTP check on the readiness probe with interval, timeout and deregister_critical_service_after', () => {
    const options = resolveRegistryOptions({ driver: 'consul', service: 'orders' });
    expect(consulRegistrationBody(registration, options.consul)).toEqual({
      Name: 'orders',
      ID: 'orders-host-8080',
      Address: '10.0.0.7',
      Port: 8080,
      Tags: ['green'],
      Meta: { version: '1.2.3', color: 'green', track: 'stable' },
      Check: {
        CheckID: 'service:orders-host-8080',
        Name: 'orders readiness',
        HTTP: 'http://10.0.0.7:8080/health/ready',
        Interval: '10s',
        Timeout: '2s',
        DeregisterCriticalServiceAfter: '60s',
      },
    });
    const https = resolveRegistryOptions({
      driver: 'consul',
      service: 'orders',
      consul: { check: { scheme: 'https', tlsSkipVerify: true } },
    });
    expect(consulRegistrationBody(registration, https.consul).Check).toMatchObject({
      HTTP: 'https://10.0.0.7:8080/health/ready',
      TLSSkipVerify: true,
    });
  });

  it('registers a TTL check with its deregister_critical_service_after, and heartbeats three times per TTL', () => {
    const options = resolveRegistryOptions({ driver: 'consul', service: 'orders', consul: { check: { type: 'ttl', ttlMs: 15_000 } } });
    expect(consulRegistrationBody(registration, options.consul).Check).toEqual({
      CheckID: 'service:orders-host-8080',
      Name: 'orders heartbeat',
      TTL: '15s',
      DeregisterCriticalServiceAfter: '60s',
    });
    const { Ctor } = fakeConsul();
    expect(new ConsulDriver(options, new ManualClock(), Ctor).heartbeatIntervalMs).toBe(5000);
    const http = resolveRegistryOptions({ driver: 'consul', service: 'orders' });
    expect(new ConsulDriver(http, new ManualClock(), Ctor).heartbeatIntervalMs).toBeUndefined();
  });

  it('passes the ACL token and TLS material to the client', () => {
    const { Ctor, constructed } = fakeConsul();
    new ConsulDriver(
      resolveRegistryOptions({
        driver: 'consul',
        service: 'orders',
        consul: { url: 'https://consul:8501', token: 't0k', tls: { ca: 'CA', cert: 'C', key: 'K' } },
      }),
      new ManualClock(),
      Ctor,
    );
    expect(constructed()).toMatchObject({
      host: 'consul',
      port: 8501,
      secure: true,
      defaults: { token: 't0k' },
      ca: 'CA',
      cert: 'C',
      key: 'K',
    });
  });

  it('registers with ?replace-existing-checks and the token in its header', async () => {
    const { Ctor, calls } = fakeConsul();
    const options = resolveRegistryOptions({ driver: 'consul', service: 'orders', consul: { token: 't0k' } });
    await new ConsulDriver(options, new ManualClock(), Ctor).register(registration, new AbortController().signal);
    expect(calls[0]).toMatchObject({
      method: 'put',
      options: {
        path: '/agent/service/register',
        query: { 'replace-existing-checks': 'true' },
        headers: { 'x-consul-token': 't0k' },
        type: 'json',
        body: consulRegistrationBody(registration, options.consul),
      },
    });
  });

  it('decides a lost heartbeat on status codes: 404, or a failure while the agent answers 404 for the service', async () => {
    const { Ctor, answers, calls } = fakeConsul();
    const driver = new ConsulDriver(
      resolveRegistryOptions({ driver: 'consul', service: 'orders', consul: { check: { type: 'ttl' } } }),
      new ManualClock(),
      Ctor,
    );
    // A service id long enough that papi's message no longer carries the agent's words.
    const long = { ...registration, id: `orders-${'x'.repeat(120)}` };
    answers.pass = [
      async () => undefined,
      async () =>
        Promise.reject(httpError(404, `Unknown check ID "service:${long.id}". Ensure that the check ID is passed, not the check name.`)),
      async () => Promise.reject(httpError(500, `CheckID "service:${long.id}" does not have associated TTL`)),
      async () => Promise.reject(httpError(500, 'rpc error: No cluster leader')),
    ];
    answers.get = [
      async () => Promise.reject(httpError(404, `unknown service ID: ${long.id}`)),
      async () => ({ statusCode: 200, headers: {}, body: { ID: long.id, Service: 'orders', Address: '10.0.0.7', Port: 8080 } }),
    ];
    const signal = new AbortController().signal;
    expect(await driver.heartbeat(long, true, signal)).toBe('ok');
    expect(await driver.heartbeat(long, true, signal)).toBe('lost');
    expect(calls.filter((c) => c.method === 'get')).toHaveLength(0);
    expect(await driver.heartbeat(long, true, signal)).toBe('lost');
    expect(calls.at(-1)).toMatchObject({ method: 'get', options: { path: '/agent/service/{id}', params: { id: long.id } } });
    await expect(driver.heartbeat(long, true, signal)).rejects.toMatchObject({
      code: 'REGISTRY_REQUEST_FAILED',
      statusCode: 500,
      message: expect.stringContaining('No cluster leader'),
    });
  });

  it('reports a 403 as a permission problem that names the token and the permission to grant', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(
      resolveRegistryOptions({ driver: 'consul', service: 'orders', consul: { check: { type: 'ttl' } } }),
      new ManualClock(),
      Ctor,
    );
    const denied =
      'Permission denied: anonymous token lacks permission \'service:write\' on "orders". The anonymous token is used implicitly when a request does not specify a token.';
    answers.put = [async () => Promise.reject(httpError(403, denied))];
    answers.pass = [async () => Promise.reject(httpError(403, 'ACL not found'))];
    answers.deregister = [async () => Promise.reject(httpError(403, denied))];
    answers.get = [async () => Promise.reject(httpError(403, 'Permission denied'))];
    const signal = new AbortController().signal;
    const refused = {
      code: 'REGISTRY_PERMISSION_DENIED',
      statusCode: 403,
      message: expect.stringContaining('the anonymous token (consul.token is not set) needs service:write on "orders"'),
    };
    await expect(driver.register(registration, signal)).rejects.toBeInstanceOf(RegistryPermissionError);
    await expect(driver.heartbeat(registration, true, signal)).rejects.toMatchObject({
      ...refused,
      message: expect.stringContaining('ACL not found'),
    });
    await expect(driver.deregister(registration, signal)).rejects.toMatchObject({ ...refused, message: expect.stringContaining(denied) });
    await expect(driver.isRegistered(registration, signal)).rejects.toMatchObject({
      code: 'REGISTRY_PERMISSION_DENIED',
      message: expect.stringContaining('needs service:read on "orders"'),
    });
  });

  it('counts a deregistration of a service that is already gone as done', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(resolveRegistryOptions({ driver: 'consul', service: 'orders' }), new ManualClock(), Ctor);
    answers.deregister = [
      async () =>
        Promise.reject(
          httpError(404, 'Unknown service ID "orders-host-8080". Ensure that the service ID is passed, not the service name.'),
        ),
    ];
    await expect(driver.deregister(registration, new AbortController().signal)).resolves.toBeUndefined();
  });

  it('treats an error that a call resolves with (papi across realms) as a failure', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(resolveRegistryOptions({ driver: 'consul', service: 'orders' }), new ManualClock(), Ctor);
    answers.put = [async () => new Error('connect ECONNREFUSED 127.0.0.1:8500')];
    await expect(driver.register(registration, new AbortController().signal)).rejects.toThrow('ECONNREFUSED');
  });

  it('checks its registration by reading its own entry: 404 is lost, a changed entry is not ours', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(resolveRegistryOptions({ driver: 'consul', service: 'orders' }), new ManualClock(), Ctor);
    const mine = { ID: registration.id, Service: 'orders', Address: '10.0.0.7', Port: 8080 };
    answers.get = [
      async () => ({ statusCode: 200, headers: {}, body: mine }),
      async () => Promise.reject(httpError(404, `unknown service ID: ${registration.id}`)),
      async () => ({ statusCode: 200, headers: {}, body: { ...mine, Port: 9090 } }),
    ];
    const signal = new AbortController().signal;
    expect(await driver.isRegistered(registration, signal)).toBe(true);
    expect(await driver.isRegistered(registration, signal)).toBe(false);
    expect(await driver.isRegistered(registration, signal)).toBe(false);
  });

  it('ends a feed whose answer the ACLs cut short with a permission problem, instead of reporting it', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(
      resolveRegistryOptions({ driver: 'consul', register: false, consul: { token: 't0k' } }),
      new ManualClock(),
      Ctor,
    );
    answers.health = [async () => [{ headers: { 'x-consul-index': '7', 'x-consul-results-filtered-by-acls': 'true' } }, []]];
    const updates: unknown[] = [];
    await expect(
      driver.watch(
        { service: 'orders', passingOnly: true },
        { update: (i) => updates.push(i), live: () => undefined },
        new AbortController().signal,
      ),
    ).rejects.toMatchObject({
      code: 'REGISTRY_PERMISSION_DENIED',
      message: expect.stringContaining('the ACL token in consul.token needs service:read on "orders" and node:read'),
    });
    expect(updates).toEqual([]);
  });

  it('follows blocking queries with the last index, passing only, and rate-limits answers that come back at once', async () => {
    const { Ctor, answers, calls } = fakeConsul();
    const clock = new ManualClock();
    const options = resolveRegistryOptions({ driver: 'consul', register: false, discovery: { waitMs: 30_000, minQueryIntervalMs: 500 } });
    const driver = new ConsulDriver(options, clock, Ctor);
    const entry = {
      Node: { Node: 'n1', Address: '10.0.0.9' },
      Service: { ID: 'a', Service: 'orders', Address: '', Port: 80, Tags: null, Meta: null },
      Checks: [{ Status: 'passing' }],
    };
    const respond = (index: string, body: unknown) => async () => [{ headers: { 'x-consul-index': index } }, body];
    answers.health = [respond('10', [entry]), respond('10', [entry]), respond('12', [])];
    const updates: ServiceInstance[][] = [];
    const abort = new AbortController();
    const watching = driver.watch(
      { service: 'orders', passingOnly: true },
      { update: (i) => updates.push([...i]), live: () => undefined },
      abort.signal,
    );
    await settle();
    expect(calls[0].options).toMatchObject({ service: 'orders', passing: true });
    expect(calls[0].options.index).toBeUndefined();
    expect(calls[0].options.ctx).toBeInstanceOf(EventEmitter);
    expect(calls).toHaveLength(1);
    await clock.advance(499);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls[1].options).toMatchObject({ index: '10', wait: '30s' });
    await clock.advance(500);
    expect(calls[2].options).toMatchObject({ index: '10' });
    expect(updates).toEqual([
      [{ id: 'a', service: 'orders', address: '10.0.0.9', port: 80, tags: [], meta: {}, health: 'passing' }],
      [{ id: 'a', service: 'orders', address: '10.0.0.9', port: 80, tags: [], meta: {}, health: 'passing' }],
      [],
    ]);
    abort.abort();
    await clock.advance(500);
    await watching;
  });

  it('ends a feed whose answer carries no X-Consul-Index, so that the client restarts it with backoff', async () => {
    const { Ctor, answers } = fakeConsul();
    const driver = new ConsulDriver(resolveRegistryOptions({ driver: 'consul', register: false }), new ManualClock(), Ctor);
    answers.health = [async () => [{ headers: {} }, []]];
    await expect(
      driver.watch(
        { service: 'orders', passingOnly: true },
        { update: () => undefined, live: () => undefined },
        new AbortController().signal,
      ),
    ).rejects.toThrow(/X-Consul-Index/);
  });

  it("follows Consul's blocking-index rules: reset when the index goes backwards, never below 1", () => {
    expect(nextIndex(0n, '5')).toBe(5n);
    expect(nextIndex(5n, '9')).toBe(9n);
    expect(nextIndex(9n, '3')).toBe(0n);
    expect(nextIndex(0n, '0')).toBe(1n);
    expect(() => nextIndex(0n, undefined)).toThrow(/X-Consul-Index/);
  });

  it('aggregates check states per instance: critical beats warning beats passing', () => {
    const entry = (checks: string[]) => ({
      Service: { ID: checks.join('-') || 'none', Service: 'orders', Address: '10.0.0.1', Port: 1 },
      Checks: checks.map((Status) => ({ Status })),
    });
    expect(instancesFromHealth([entry(['passing', 'warning']), entry(['warning', 'critical']), entry([])]).map((i) => i.health)).toEqual([
      'warning',
      'critical',
      'passing',
    ]);
    expect(instancesFromHealth({ not: 'an array' })).toEqual([]);
  });

  it('pins the agent address once resolved, until the next registration', () => {
    const answers = ['10.0.0.1', '10.0.0.2'];
    const resolve = ((_host: string, _options: unknown, callback: (e: null, a: string, f: number) => void) =>
      callback(null, answers.shift()!, 4)) as never;
    const pinned = new PinnedLookup(resolve);
    const seen: unknown[] = [];
    pinned.lookup('consul.service', {}, (_e, address) => seen.push(address));
    pinned.lookup('consul.service', { all: true }, (_e, address) => seen.push(address));
    pinned.reset();
    pinned.lookup('consul.service', {}, (_e, address) => seen.push(address));
    expect(seen).toEqual(['10.0.0.1', [{ address: '10.0.0.1', family: 4 }], '10.0.0.2']);
  });
});
