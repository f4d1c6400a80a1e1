import type { RegistryDriverKind, ServiceInstance, ServiceRegistration } from '../registry.types';

/** Result of a heartbeat: `lost` means the registry no longer knows the registration. */
export type HeartbeatResult = 'ok' | 'lost';

/** What a discovery feed reports to the client that runs it. */
export interface DiscoverySink {
  /** The complete current set of instances (not a delta). */
  update(instances: readonly ServiceInstance[]): void;
  /** The feed is connected and its view is current (an etcd watch is established, a Consul query answered). */
  live(): void;
}

export interface DiscoveryFeedQuery {
  readonly service: string;
  readonly passingOnly: boolean;
}

/**
 * One registry behind one small interface. Drivers do I/O only: retries, backoff, heartbeat and
 * anti-entropy schedules, timeouts and logs live in RegistryService and RegistryClient, on the
 * injected clock. Every call takes an AbortSignal that aborts when its bound passes.
 */
export interface RegistryDriver {
  readonly kind: RegistryDriverKind;
  /** Where the calls go (agent URL, endpoints), for logs. Never holds credentials. */
  readonly target: string;
  /**
   * After this long without a successful heartbeat the registry has dropped the registration for
   * sure (etcd: the lease TTL); undefined when the registry keeps it (Consul marks it critical).
   */
  readonly expiresAfterMs: number | undefined;
  /** Time between heartbeats (TTL check pass, lease keep-alive); undefined when none is needed. */
  readonly heartbeatIntervalMs: number | undefined;

  /** Puts the registration. Idempotent: registering again replaces it. */
  register(registration: ServiceRegistration, signal: AbortSignal): Promise<void>;
  /** Removes the registration; one that is already gone counts as success. */
  deregister(registration: ServiceRegistration, signal: AbortSignal): Promise<void>;
  /** Feeds the TTL check / keeps the lease alive; `healthy` false reports the instance down. */
  heartbeat(registration: ServiceRegistration, healthy: boolean, signal: AbortSignal): Promise<HeartbeatResult>;
  /** Anti-entropy: whether the registry still holds this registration as we put it. */
  isRegistered(registration: ServiceRegistration, signal: AbortSignal): Promise<boolean>;
  /**
   * Follows the instances of a service until `signal` aborts (then resolves) or the feed breaks
   * (then rejects; the caller restarts it with backoff).
   */
  watch(query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}
