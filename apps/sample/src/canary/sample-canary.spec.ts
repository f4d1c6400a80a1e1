import { HttpCanaryForwarder, resolveCanaryOptions } from '@nest-rollout/canary';
import type { RegistryClient } from '@nest-rollout/registry';
import { sampleConfig } from '../sample.config';
import { sampleDynamicConfigSchemaFor } from '../sample.dynamic-config';
import { sampleCanaryForwarder, sampleCanaryOptions } from './sample-canary';

const SECRET = 'a-secret-of-at-least-thirty-two-characters';

/** A registry client that records what it was asked for and knows one canary instance. */
function registry(): { client: RegistryClient; asked: unknown[] } {
  const asked: unknown[] = [];
  const client = {
    pick: (service: string, query: unknown) => {
      asked.push({ service, query });
      return { address: '10.0.0.7', port: 3000 };
    },
  } as unknown as RegistryClient;
  return { client, asked };
}

describe('the sample canary settings', () => {
  it('verifies no tokens and lets nobody force a side by default', () => {
    const options = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({})), {});
    expect(options).toMatchObject({ track: 'stable', jwt: undefined, trust: { force: 'none' } });
  });

  it('verifies HS256 tokens with CANARY_JWT_SECRET, or a JWKS issuer with CANARY_JWKS_URL', () => {
    const hmac = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({ CANARY_JWT_SECRET: SECRET })), {});
    expect(hmac.jwt).toMatchObject({ secret: SECRET, algorithms: ['HS256'] });
    const jwks = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({ CANARY_JWKS_URL: 'https://id.example.com/jwks.json' })), {});
    expect(jwks.jwt).toMatchObject({ jwksUrl: 'https://id.example.com/jwks.json', algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'] });
  });

  it('trusts x-canary from anyone, or only from the proxies of CANARY_FORCE_TRUST', () => {
    const any = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({ CANARY_FORCE_TRUST: 'any' })), {});
    expect(any.trust).toEqual({ force: 'any' });
    const proxies = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({ CANARY_FORCE_TRUST: '10.0.0.0/8, 127.0.0.1/32' })), {});
    expect(proxies.trust).toEqual({ force: { proxies: ['10.0.0.0/8', '127.0.0.1/32'] } });
  });

  it('accepts claim rules in the dynamic configuration only where tokens are verified', () => {
    const jwt = resolveCanaryOptions(sampleCanaryOptions(sampleConfig.parse({ CANARY_JWT_SECRET: SECRET })), {}).jwt;
    const document = { canary: { claim: { plan: 'beta' } } };
    expect(sampleDynamicConfigSchemaFor(jwt).safeParse(document).success).toBe(true);
    expect(sampleDynamicConfigSchemaFor(undefined).safeParse(document).success).toBe(false);
  });
});

describe('the sample canary forwarder', () => {
  it('forwards to CANARY_URL when it is set, even with a registry', () => {
    const { client, asked } = registry();
    const forwarder = sampleCanaryForwarder(sampleConfig.parse({ CANARY_URL: 'http://127.0.0.1:3100', REGISTRY_DRIVER: 'etcd' }), client);
    expect(forwarder).toBeInstanceOf(HttpCanaryForwarder);
    expect(asked).toEqual([]);
  });

  it("watches the registry's canary instances of the service without CANARY_URL", () => {
    const { client, asked } = registry();
    expect(sampleCanaryForwarder(sampleConfig.parse({ REGISTRY_DRIVER: 'etcd' }), client)).toBeInstanceOf(HttpCanaryForwarder);
    expect(asked).toEqual([{ service: 'orders', query: { meta: { track: 'canary' } } }]);
  });

  it('has none on a canary instance, or with neither a URL nor a registry', () => {
    const { client, asked } = registry();
    expect(sampleCanaryForwarder(sampleConfig.parse({ APP_TRACK: 'canary', CANARY_URL: 'http://127.0.0.1:3100' }), client)).toBeUndefined();
    expect(sampleCanaryForwarder(sampleConfig.parse({}), client)).toBeUndefined();
    expect(asked).toEqual([]);
  });
});
