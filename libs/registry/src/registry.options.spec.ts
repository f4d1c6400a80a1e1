import { RegistryOptionsError } from './registry.errors';
import { DEFAULT_REGISTRY_OPTIONS, RegistryModuleOptions, resolveRegistryOptions } from './registry.options';

function problems(input: unknown): readonly string[] {
  try {
    resolveRegistryOptions(input as RegistryModuleOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(RegistryOptionsError);
    expect((error as RegistryOptionsError).code).toBe('REGISTRY_INVALID_OPTIONS');
    return (error as RegistryOptionsError).problems;
  }
  return [];
}

describe('resolveRegistryOptions', () => {
  it('resolves the documented defaults: driver none, HTTP check on /health/ready, deregister_critical_service_after 1 m', () => {
    const resolved = resolveRegistryOptions();
    expect(resolved).toMatchObject({
      driver: 'none',
      register: true,
      tags: [],
      meta: {},
      track: 'stable',
      operationTimeoutMs: 3000,
      deregisterTimeoutMs: 3000,
      antiEntropyIntervalMs: 30_000,
      retry: { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 },
      consul: {
        url: 'http://127.0.0.1:8500',
        check: {
          type: 'http',
          path: '/health/ready',
          intervalMs: 10_000,
          timeoutMs: 2000,
          ttlMs: 15_000,
          deregisterCriticalServiceAfterMs: 60_000,
        },
      },
      etcd: { endpoints: ['http://127.0.0.1:2379'], keyPrefix: '/services/', leaseTtlSeconds: 10 },
      discovery: { passingOnly: true, onEmpty: 'keep-last-known', keepLastKnownMaxMs: 60_000, waitMs: 30_000, minQueryIntervalMs: 500 },
    });
    expect(resolved.consul.check.deregisterCriticalServiceAfterMs).toBe(
      DEFAULT_REGISTRY_OPTIONS.consul.check.deregisterCriticalServiceAfterMs,
    );
    expect(Object.isFrozen(resolved)).toBe(true);
  });

  it('resolves custom options', () => {
    const resolved = resolveRegistryOptions({
      driver: 'etcd',
      service: 'orders',
      instanceId: 'orders-1',
      address: 'orders.internal',
      port: 8080,
      tags: ['green', 'v2'],
      meta: { zone: 'eu-1a' },
      track: 'canary',
      etcd: {
        endpoints: ['https://etcd-0:2379', 'https://etcd-1:2379'],
        keyPrefix: '/prod/services/',
        leaseTtlSeconds: 15,
        auth: { username: 'u', password: 'p' },
      },
      retry: { initialDelayMs: 200, maxDelayMs: 5000, multiplier: 3, jitter: 0 },
    });
    expect(resolved).toMatchObject({
      driver: 'etcd',
      service: 'orders',
      instanceId: 'orders-1',
      address: 'orders.internal',
      port: 8080,
      tags: ['green', 'v2'],
      meta: { zone: 'eu-1a' },
      track: 'canary',
      retry: { initialDelayMs: 200, maxDelayMs: 5000, multiplier: 3, jitter: 0 },
      etcd: {
        endpoints: ['https://etcd-0:2379', 'https://etcd-1:2379'],
        keyPrefix: '/prod/services/',
        leaseTtlSeconds: 15,
        auth: { username: 'u', password: 'p' },
      },
    });
  });

  it('names every problem at once', () => {
    expect(
      problems({
        driver: 'zookeeper',
        tags: ['a', 'a', ''],
        port: 70000,
        address: '0.0.0.0',
        operationTimeoutMs: -1,
        retry: { initialDelayMs: 2000, maxDelayMs: 1000, jitter: 2 },
        meta: { version: '9', 'consul-x': 'y', ok: 5 },
      }),
    ).toEqual([
      'driver: must be "consul", "etcd" or "none"',
      expect.stringMatching(/^address: must be an IP address or host name/),
      'port: must be a whole number from 1 to 65535',
      expect.stringMatching(/^tags\[2\]: must be a non-empty string/),
      'tags[1]: is listed twice',
      expect.stringMatching(/^meta\.ok: must be a string/),
      expect.stringMatching(/^meta\.version: is set by the module/),
      expect.stringMatching(/^meta\.consul-x: key must be/),
      expect.stringMatching(/^operationTimeoutMs: must be a whole number/),
      'retry.jitter: must be a number from 0 to 1',
      'retry.maxDelayMs: must be at least retry.initialDelayMs',
    ]);
  });

  it('requires a service name to register, but not for a discovery-only client', () => {
    expect(problems({ driver: 'consul' })).toEqual([expect.stringMatching(/^service: is required to register with driver "consul"/)]);
    expect(problems({ driver: 'consul', register: false })).toEqual([]);
    expect(problems({ driver: 'etcd', service: 'orders_v2' })).toEqual([expect.stringMatching(/^service: must be a DNS label/)]);
  });

  it("refuses Consul's sub-minute deregister_critical_service_after, a liveness check path, and a check timeout over its interval", () => {
    expect(
      problems({
        driver: 'consul',
        service: 'orders',
        consul: { check: { path: '/health/live', deregisterCriticalServiceAfterMs: 30_000, intervalMs: 1000, timeoutMs: 1000 } },
      }),
    ).toEqual([
      expect.stringMatching(/^consul\.check\.path: points at a liveness probe/),
      expect.stringMatching(/^consul\.check\.deregisterCriticalServiceAfterMs: must be at least 60000/),
      'consul.check.timeoutMs: must be shorter than consul.check.intervalMs',
    ]);
  });

  it('refuses a TTL or lease too short for its heartbeat to land in time', () => {
    expect(
      problems({ driver: 'consul', service: 'orders', operationTimeoutMs: 3000, consul: { check: { type: 'ttl', ttlMs: 4000 } } }),
    ).toEqual([expect.stringMatching(/^consul\.check\.ttlMs: is too short for operationTimeoutMs: .*raise ttlMs above 4500/)]);
    expect(problems({ driver: 'etcd', service: 'orders', operationTimeoutMs: 3000, etcd: { leaseTtlSeconds: 4 } })).toEqual([
      expect.stringMatching(/^etcd\.leaseTtlSeconds: is too short for operationTimeoutMs: .*at least 5/),
    ]);
    expect(problems({ driver: 'etcd', service: 'orders', etcd: { leaseTtlSeconds: 1 } })).toEqual([
      'etcd.leaseTtlSeconds: must be a whole number of seconds from 2 to 3600',
    ]);
  });

  it('checks URLs, key prefixes, TLS pairs and the Consul wait limit', () => {
    expect(
      problems({
        consul: { url: 'consul:8500', tls: { cert: 'x' } },
        etcd: { endpoints: ['127.0.0.1:2379'], keyPrefix: 'services' },
        discovery: { waitMs: 900_000, onEmpty: 'drop' },
      }),
    ).toEqual([
      expect.stringMatching(/^consul\.url: must be an http/),
      'consul.tls: cert and key go together (mutual TLS needs both)',
      expect.stringMatching(/^etcd\.endpoints\[0\]: must be an http/),
      expect.stringMatching(/^etcd\.keyPrefix: must start and end with "\/"/),
      'discovery.onEmpty: must be "keep-last-known" or "accept"',
      expect.stringMatching(/^discovery\.waitMs: must be at most 600000/),
    ]);
  });

  it('never prints a token, password or credential-bearing URL it rejects', () => {
    const text = problems({
      consul: {
        url: 'http://admin:consul-url-secret@consul:8500/v1',
        token: ['consul-token-secret'] as unknown as string,
        tokn: 'misspelt-secret',
      },
      etcd: {
        endpoints: ['https://root:etcd-url-secret@etcd-0:2379/v3'],
        auth: { username: '', password: 'etcd-password-secret' },
      },
    }).join('\n');
    expect(text).not.toMatch(/secret/);
    expect(text.split('\n')).toEqual([
      expect.stringMatching(/^consul\.url: must be an http/),
      'consul.token: must be a non-empty string',
      expect.stringMatching(/^consul\.tokn: unknown option/),
      expect.stringMatching(/^etcd\.endpoints\[0\]: must be an http/),
      'etcd.auth.username: must be a non-empty string',
    ]);
    expect(problems({ etcd: { auth: { username: 'u', password: 42 as unknown as string } } })).toEqual([
      'etcd.auth.password: must be a string',
    ]);
  });

  it('rejects unknown options at every level, naming their path', () => {
    expect(
      problems({
        drvier: 'consul',
        consul: { check: { ttlMS: 30_000 }, tls: { rejectunauthorized: false } },
        etcd: { auth: { username: 'u', password: 'p', role: 'root' } },
        retry: { maxDelay: 1000 },
        discovery: { onempty: 'accept' },
      }),
    ).toEqual([
      'retry.maxDelay: unknown option; known options: initialDelayMs, maxDelayMs, multiplier, jitter',
      'consul.tls.rejectunauthorized: unknown option (did you mean "rejectUnauthorized"?)',
      'consul.check.ttlMS: unknown option (did you mean "ttlMs"?)',
      'etcd.auth.role: unknown option; known options: username, password',
      'discovery.onempty: unknown option (did you mean "onEmpty"?)',
      expect.stringMatching(/^drvier: unknown option; known options: driver, register, service, /),
    ]);
  });

  it('resolves every option key, also those without a default, and freezes every level', () => {
    const resolved = resolveRegistryOptions({});
    expect(Object.keys(resolved)).toEqual(
      expect.arrayContaining(['service', 'instanceId', 'address', 'port', 'consul', 'etcd', 'discovery', 'retry']),
    );
    expect(Object.keys(resolved.consul)).toEqual(['url', 'token', 'datacenter', 'tls', 'check']);
    expect('isHealthy' in resolved.consul.check).toBe(true);
    expect(Object.keys(resolved.etcd)).toEqual(['endpoints', 'keyPrefix', 'leaseTtlSeconds', 'auth', 'tls']);
    for (const level of [
      resolved.retry,
      resolved.consul,
      resolved.consul.check,
      resolved.etcd,
      resolved.etcd.endpoints,
      resolved.discovery,
      resolved.tags,
      resolved.meta,
    ]) {
      expect(Object.isFrozen(level)).toBe(true);
    }
    expect(resolved.etcd.endpoints).not.toBe(DEFAULT_REGISTRY_OPTIONS.etcd.endpoints);
  });

  it('strips a trailing slash from the Consul URL and keeps a TTL check whose heartbeat lands in time', () => {
    const resolved = resolveRegistryOptions({
      driver: 'consul',
      service: 'orders',
      consul: { url: 'https://consul.local:8501/', token: 't', check: { type: 'ttl', ttlMs: 4501 } },
    });
    expect(resolved.consul).toMatchObject({ url: 'https://consul.local:8501', token: 't', check: { type: 'ttl', ttlMs: 4501 } });
  });

  it('refuses options that are not an object', () => {
    expect(problems('consul')).toEqual(['options must be an object']);
    expect(problems({ consul: 'http://127.0.0.1:8500', retry: [] })).toEqual(['retry: must be an object', 'consul: must be an object']);
  });

  it('checks rules across fields even when an unrelated option is invalid', () => {
    expect(problems({ driver: 'etcd', port: 'http' as unknown as number, etcd: { leaseTtlSeconds: 4 } })).toEqual([
      'port: must be a whole number from 1 to 65535',
      expect.stringMatching(/^service: is required to register with driver "etcd"/),
      expect.stringMatching(/^etcd\.leaseTtlSeconds: is too short/),
    ]);
  });
});
