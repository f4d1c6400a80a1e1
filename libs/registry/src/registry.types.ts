/** Which registry the instance registers in and discovers from. `none` suits Kubernetes, whose Service does both. */
export type RegistryDriverKind = 'consul' | 'etcd' | 'none';

/** Release track advertised in the registry's metadata; the canary router looks for `canary`. */
export type ReleaseTrack = 'stable' | 'canary';

/** What this instance puts in the registry. */
export interface ServiceRegistration {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  /** Includes `version`, `color` and `track`. */
  readonly meta: Readonly<Record<string, string>>;
}

/** Health of an instance as the registry reports it (etcd holds only live instances: always `passing`). */
export type InstanceHealth = 'passing' | 'warning' | 'critical';

/** One instance of a service, as discovery returns it. */
export interface ServiceInstance {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly health: InstanceHealth;
}

/** Which instances of a service a caller wants. */
export interface InstanceQuery {
  /** Every listed tag must be present. */
  readonly tags?: readonly string[];
  /** Every listed key must have exactly this value (e.g. `{ track: 'canary' }`). */
  readonly meta?: Readonly<Record<string, string>>;
  /**
   * Only instances whose every check passes. Off, instances in warning or critical state are
   * returned too, with their `health`.
   * @default the `discovery.passingOnly` option (true)
   */
  readonly passingOnly?: boolean;
}

/** Emitted to subscribers when the instances matching a query change. */
export interface ServiceInstancesChange {
  readonly service: string;
  readonly instances: readonly ServiceInstance[];
  readonly added: readonly ServiceInstance[];
  readonly removed: readonly ServiceInstance[];
  /** Epoch milliseconds. */
  readonly at: number;
  /** True while the registry says "none" and the last known good set is served instead. */
  readonly keptLastKnown: boolean;
}

/** Where this instance stands with the registry. */
export enum RegistrationState {
  /** Driver `none` or `register: false`. */
  DISABLED = 'DISABLED',
  /** Not READY yet: nothing is registered before the lifecycle says so. */
  WAITING_FOR_READY = 'WAITING_FOR_READY',
  /** READY; a registration is being attempted (or retried after a failure). */
  REGISTERING = 'REGISTERING',
  REGISTERED = 'REGISTERED',
  DEREGISTERING = 'DEREGISTERING',
  DEREGISTERED = 'DEREGISTERED',
}
