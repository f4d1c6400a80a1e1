import { HttpCanaryForwarder, registryCanaryTargets } from '@nest-rollout/canary';
import type { CanaryForwarder, CanaryModuleOptions } from '@nest-rollout/canary';
import type { TraceContext } from '@nest-rollout/logging';
import type { RegistryClient } from '@nest-rollout/registry';
import { SERVICE_NAME } from '../sample.constants';
import type { SampleConfig } from '../sample.config';

/** OpenTelemetry's name for the variant a feature flag evaluated to, as a log field. */
export const VARIANT_LOG_FIELD = 'feature_flag.result.variant';

/** Algorithms accepted from a JWKS issuer; a secret verifies HS256 only. */
const JWKS_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;

/**
 * The canary module's options from the environment: the track (APP_TRACK), how tokens are verified
 * (CANARY_JWT_SECRET or CANARY_JWKS_URL) and who may force a side (CANARY_FORCE_TRUST). The rules
 * themselves are live, from the `canary:` section of the dynamic configuration. With `traces`, the
 * decision goes on the request's log lines.
 */
export function sampleCanaryOptions(config: SampleConfig, traces?: TraceContext): CanaryModuleOptions {
  const { jwtSecret, jwksUrl, forceTrust } = config.canary;
  return {
    track: config.registry.track,
    // Every further line of a decided request, its access line included, carries the variant.
    ...(traces ? { onDecision: (decision) => traces.annotate({ [VARIANT_LOG_FIELD]: decision.variant }) } : {}),
    ...(jwtSecret ? { jwt: { secret: jwtSecret, algorithms: ['HS256'] } } : {}),
    ...(jwksUrl ? { jwt: { jwksUrl, algorithms: [...JWKS_ALGORITHMS] } } : {}),
    trust: { force: typeof forceTrust === 'string' ? forceTrust : { proxies: forceTrust } },
  };
}

/**
 * Where a stable instance sends canary decisions: CANARY_URL, else the healthy canary instances of
 * the registry (registered with `track=canary`), else nowhere (served here, reason
 * `no_forwarder`). A canary instance serves everything itself and needs none.
 */
export function sampleCanaryForwarder(config: SampleConfig, registry: RegistryClient | undefined): CanaryForwarder | undefined {
  if (config.registry.track === 'canary') return undefined;
  if (config.canary.url) return new HttpCanaryForwarder(config.canary.url);
  if (config.registry.driver !== 'none' && registry) return new HttpCanaryForwarder(registryCanaryTargets(registry, SERVICE_NAME));
  return undefined;
}
