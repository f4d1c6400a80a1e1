import type { ServiceRegistration } from '../registry.types';
import type { DiscoveryFeedQuery, DiscoverySink, HeartbeatResult, RegistryDriver } from './registry.driver';

/** No registry: Kubernetes (or a load balancer config) routes by readiness alone. */
export class NoneDriver implements RegistryDriver {
  readonly kind = 'none' as const;
  readonly target = 'none';
  readonly expiresAfterMs = undefined;
  readonly heartbeatIntervalMs = undefined;

  async register(_registration: ServiceRegistration, _signal: AbortSignal): Promise<void> {}
  async deregister(_registration: ServiceRegistration, _signal: AbortSignal): Promise<void> {}
  async heartbeat(_registration: ServiceRegistration, _healthy: boolean, _signal: AbortSignal): Promise<HeartbeatResult> {
    return 'ok';
  }
  async isRegistered(_registration: ServiceRegistration, _signal: AbortSignal): Promise<boolean> {
    return true;
  }
  /** Reports an empty, current view and waits for the end. */
  watch(_query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void> {
    sink.update([]);
    sink.live();
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }
  async close(): Promise<void> {}
}
