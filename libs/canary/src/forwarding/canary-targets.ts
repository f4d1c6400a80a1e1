/** A canary instance to forward to: its origin, `http://host:port`. */
export interface CanaryTarget {
  readonly url: string;
}

/**
 * Where canary instances are found, asked once per forwarded request: return a healthy instance,
 * or undefined when there is none (the request is then served locally, `no_canary_target`). Must
 * answer from memory; it runs on the request path.
 */
export interface CanaryTargets {
  pick(): CanaryTarget | undefined;
}

/** One configured canary URL (e.g. the `CANARY_URL` of the sample), used as is. */
export function staticCanaryTargets(url: string): CanaryTargets {
  const target: CanaryTarget = { url: new URL(url).origin };
  return { pick: () => target };
}

/**
 * What `registryCanaryTargets` needs of a discovery client. @nest-rollout/registry's
 * `RegistryClient` has this shape, so an application passes it as is; this lib does not depend on
 * the registry lib.
 */
export interface CanaryInstanceSource {
  pick(
    service: string,
    query: { readonly meta?: Readonly<Record<string, string>> },
  ): { readonly address: string; readonly port: number; readonly meta?: Readonly<Record<string, string>> } | undefined;
}

export interface RegistryCanaryTargetsOptions {
  /** Meta every canary instance is registered with. @default { track: 'canary' } */
  readonly meta?: Readonly<Record<string, string>>;
  /** @default 'http' */
  readonly protocol?: 'http' | 'https';
  /**
   * A meta key holding the port to use instead of the registered one: e.g. `grpc_port` for a
   * `GrpcCanaryForwarder` when instances register their HTTP port. An instance without it is skipped.
   */
  readonly portMeta?: string;
}

/**
 * Canary instances of `service` from a registry (round-robin over the healthy ones, from the
 * client's memory, watched from the moment this is called):
 *
 * ```ts
 * { provide: CANARY_TARGETS, inject: [RegistryClient], useFactory: (registry) => registryCanaryTargets(registry, 'orders') }
 * ```
 */
export function registryCanaryTargets(
  registry: CanaryInstanceSource,
  service: string,
  options: RegistryCanaryTargetsOptions = {},
): CanaryTargets {
  const query = { meta: options.meta ?? { track: 'canary' } };
  const protocol = options.protocol ?? 'http';
  // A registry client answers from memory and starts watching a service the first time it is asked
  // for it: ask now, so that the canary instances are known before the first canary request.
  registry.pick(service, query);
  return {
    pick() {
      const instance = registry.pick(service, query);
      if (!instance) return undefined;
      const port = options.portMeta === undefined ? instance.port : Number(instance.meta?.[options.portMeta]);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
      const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
      return { url: `${protocol}://${host}:${port}` };
    },
  };
}
