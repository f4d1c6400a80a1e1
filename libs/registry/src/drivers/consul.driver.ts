import { lookup as dnsLookup, LookupAddress, LookupOptions } from 'node:dns';
import { EventEmitter } from 'node:events';
import { types } from 'node:util';
import { untilAborted } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { RegistryRequestError } from '../registry.errors';
import type { ResolvedConsulOptions, ResolvedRegistryOptions } from '../registry.options';
import type { InstanceHealth, ServiceInstance, ServiceRegistration } from '../registry.types';
import type { DiscoveryFeedQuery, DiscoverySink, HeartbeatResult, RegistryDriver } from './registry.driver';

/** The part of node-consul (npm `consul` v2) this driver uses. */
interface ConsulCallOptions {
  timeout?: number;
  ctx?: EventEmitter;
}
interface ConsulClient {
  agent: {
    service: {
      register(options: Record<string, unknown> & ConsulCallOptions): Promise<unknown>;
      deregister(options: { id: string } & ConsulCallOptions): Promise<unknown>;
      list(options: ConsulCallOptions): Promise<Record<string, ConsulAgentService>>;
    };
    check: {
      pass(options: { id: string; note?: string } & ConsulCallOptions): Promise<unknown>;
      fail(options: { id: string; note?: string } & ConsulCallOptions): Promise<unknown>;
    };
  };
  health: {
    service(
      options: { service: string; passing?: boolean; dc?: string; index?: string; wait?: string } & ConsulCallOptions,
    ): Promise<unknown>;
  };
  destroy(): void;
}
export type ConsulClientConstructor = new (options: Record<string, unknown>) => ConsulClient;

interface ConsulAgentService {
  ID?: string;
  Service?: string;
  Address?: string;
  Port?: number;
}
interface ConsulHealthEntry {
  Node?: { Node?: string; Address?: string };
  Service?: {
    ID?: string;
    Service?: string;
    Address?: string;
    Port?: number;
    Tags?: string[] | null;
    Meta?: Record<string, string> | null;
  };
  Checks?: { Status?: string }[];
}
interface ConsulResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
}

/** Consul's duration syntax ("10s", "1500ms"). */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The check id Consul gives the single `Check` of a service registration; set explicitly so TTL updates can name it. */
export function consulCheckId(serviceId: string): string {
  return `service:${serviceId}`;
}

/** The registration body of PUT /v1/agent/service/register, in node-consul's option names. */
export function consulRegistrationBody(registration: ServiceRegistration, options: ResolvedConsulOptions): Record<string, unknown> {
  const c = options.check;
  const host = registration.address.includes(':') ? `[${registration.address}]` : registration.address;
  const check: Record<string, unknown> =
    c.type === 'http'
      ? {
          checkid: consulCheckId(registration.id),
          name: `${registration.name} readiness`,
          http: `${c.scheme}://${host}:${registration.port}${c.path}`,
          interval: goDuration(c.intervalMs),
          timeout: goDuration(c.timeoutMs),
          ...(c.scheme === 'https' ? { tlsskipverify: c.tlsSkipVerify } : {}),
          deregistercriticalserviceafter: goDuration(c.deregisterCriticalServiceAfterMs),
        }
      : {
          checkid: consulCheckId(registration.id),
          name: `${registration.name} heartbeat`,
          ttl: goDuration(c.ttlMs),
          deregistercriticalserviceafter: goDuration(c.deregisterCriticalServiceAfterMs),
        };
  return {
    name: registration.name,
    id: registration.id,
    address: registration.address,
    port: registration.port,
    tags: [...registration.tags],
    meta: { ...registration.meta },
    check,
  };
}

/** Worst status among an entry's checks (node and service checks). */
function aggregateHealth(checks: readonly { Status?: string }[] | undefined): InstanceHealth {
  let health: InstanceHealth = 'passing';
  for (const check of checks ?? []) {
    if (check.Status === 'critical' || check.Status === 'maintenance') return 'critical';
    if (check.Status === 'warning') health = 'warning';
  }
  return health;
}

export function instancesFromHealth(body: unknown): ServiceInstance[] {
  if (!Array.isArray(body)) return [];
  const instances: ServiceInstance[] = [];
  for (const entry of body as ConsulHealthEntry[]) {
    const service = entry?.Service;
    if (!service?.ID || !service.Service) continue;
    instances.push({
      id: service.ID,
      service: service.Service,
      // An empty service address means "the node's address" in Consul.
      address: service.Address || entry.Node?.Address || '',
      port: service.Port ?? 0,
      tags: [...(service.Tags ?? [])],
      meta: { ...(service.Meta ?? {}) },
      health: aggregateHealth(entry.Checks),
    });
  }
  return instances;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A DNS lookup that answers with the same address until `reset()`: Consul deregisters a service
 * only on the agent that registered it, so once registered, every call of this registration must
 * reach that agent even if the agent's name resolves to several (a DNS round robin, a failover).
 */
export class PinnedLookup {
  private pinned: LookupAddress | undefined;

  constructor(private readonly resolve: typeof dnsLookup = dnsLookup) {}

  reset(): void {
    this.pinned = undefined;
  }

  readonly lookup = (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    const answer = (address: LookupAddress) => {
      if (options?.all) callback(null, [address]);
      else callback(null, address.address, address.family);
    };
    if (this.pinned) return answer(this.pinned);
    this.resolve(hostname, { family: options?.family, hints: options?.hints }, (error, address, family) => {
      if (error) return callback(error, '');
      this.pinned = { address, family };
      answer(this.pinned);
    });
  };
}

/** Registers with a Consul agent (`/v1/agent/service/*`), discovers with blocking `/v1/health/service` queries. */
export class ConsulDriver implements RegistryDriver {
  readonly kind = 'consul' as const;
  readonly target: string;
  readonly expiresAfterMs = undefined;
  readonly heartbeatIntervalMs: number | undefined;
  private readonly client: ConsulClient;
  private readonly consul: ResolvedConsulOptions;
  private readonly pinned = new PinnedLookup();

  constructor(
    private readonly options: ResolvedRegistryOptions,
    private readonly clock: LifecycleClock,
    Consul: ConsulClientConstructor,
  ) {
    this.consul = options.consul;
    const url = new URL(this.consul.url);
    this.target = `${url.protocol}//${url.host}`;
    const tls = this.consul.tls;
    this.client = new Consul({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
      secure: url.protocol === 'https:',
      ...(this.consul.token ? { defaults: { token: this.consul.token } } : {}),
      lookup: this.pinned.lookup,
      ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls?.cert !== undefined ? { cert: tls.cert, key: tls.key } : {}),
      ...(tls?.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
    });
    // A TTL check turns critical unless fed: the heartbeat comes with it, three per TTL.
    this.heartbeatIntervalMs = this.consul.check.type === 'ttl' ? Math.floor(this.consul.check.ttlMs / 3) : undefined;
  }

  async register(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    // A new registration may go to whichever agent the name resolves to now; from here on, the
    // heartbeats and the deregistration follow it there.
    this.pinned.reset();
    await this.call('register', signal, (extra) =>
      this.client.agent.service.register({ ...consulRegistrationBody(registration, this.consul), ...extra }),
    );
  }

  async deregister(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    try {
      await this.call('deregister', signal, (extra) => this.client.agent.service.deregister({ id: registration.id, ...extra }));
    } catch (error) {
      // Already gone (Consul documents "no action is taken"; some versions answer 404): the goal is reached.
      if (error instanceof RegistryRequestError && error.statusCode === 404) return;
      throw error;
    }
  }

  async heartbeat(registration: ServiceRegistration, healthy: boolean, signal: AbortSignal): Promise<HeartbeatResult> {
    if (this.consul.check.type !== 'ttl') return 'ok';
    const id = consulCheckId(registration.id);
    try {
      await this.call('heartbeat', signal, (extra) =>
        healthy
          ? this.client.agent.check.pass({ id, note: 'ready', ...extra })
          : this.client.agent.check.fail({ id, note: 'not ready', ...extra }),
      );
      return 'ok';
    } catch (error) {
      // The agent no longer knows the check: it restarted without its state, or reaped the service.
      // Consul answers 404 "Unknown check ID" (older agents: 500 "... does not have associated TTL").
      if (
        error instanceof RegistryRequestError &&
        (error.statusCode === 404 || /unknown check|does not have associated ttl/i.test(error.message))
      ) {
        return 'lost';
      }
      throw error;
    }
  }

  async isRegistered(registration: ServiceRegistration, signal: AbortSignal): Promise<boolean> {
    const services = (await this.call('anti-entropy', signal, (extra) => this.client.agent.service.list(extra))) as Record<
      string,
      ConsulAgentService
    >;
    const mine = services?.[registration.id];
    return (
      mine !== undefined && mine.Service === registration.name && mine.Port === registration.port && mine.Address === registration.address
    );
  }

  async watch(query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void> {
    const { waitMs, minQueryIntervalMs } = this.options.discovery;
    // Consul adds up to wait/16 to the wait; past that plus a margin the query is hung, not blocking.
    const requestTimeoutMs = waitMs + Math.ceil(waitMs / 16) + this.options.operationTimeoutMs;
    let index = 0n;
    while (!signal.aborted) {
      const started = this.clock.now();
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
      const [response, body] = (await this.call(
        'discovery',
        signal,
        () =>
          this.client.health.service({
            service: query.service,
            ...(query.passingOnly ? { passing: true } : {}),
            ...(this.consul.datacenter ? { dc: this.consul.datacenter } : {}),
            ...(index > 0n ? { index: index.toString(), wait: goDuration(waitMs) } : {}),
            timeout: requestTimeoutMs,
            ctx,
          }),
        ctx,
      )) as [ConsulResponse, unknown];
      if (signal.aborted) return;
      index = nextIndex(index, response.headers['x-consul-index']);
      sink.update(instancesFromHealth(body));
      sink.live();
      // Rate limit, as Consul's blocking-query guide asks: an index that resets or a result that
      // changes very often must not turn this loop into a busy loop against the agent.
      const elapsed = this.clock.now() - started;
      if (elapsed < minQueryIntervalMs) await this.clock.sleep(minQueryIntervalMs - elapsed, signal);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** One HTTP call, cancelled when `signal` aborts; HTTP errors become RegistryRequestError. */
  private async call<T>(
    operation: string,
    signal: AbortSignal,
    fn: (extra: ConsulCallOptions) => Promise<T>,
    ctx = new EventEmitter(),
  ): Promise<T> {
    const cancel = () => ctx.emit('cancel');
    signal.addEventListener('abort', cancel, { once: true });
    try {
      const value = await untilAborted(fn({ ctx, timeout: this.options.operationTimeoutMs }), signal);
      // papi (under node-consul) tells errors from results with `instanceof Error`, which fails for an
      // error made in another realm (Node's own socket errors seen from a VM context such as Jest's):
      // it then resolves with the error. A native error is never a valid answer here.
      if (types.isNativeError(value)) throw value;
      return value;
    } catch (error) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        throw new RegistryRequestError(`consul ${operation} failed with HTTP ${status}: ${(error as Error).message}`, status);
      }
      throw error;
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }
}

/** Consul's rules for the next blocking index: reset when it goes backwards, never below 1. */
export function nextIndex(previous: bigint, header: string | string[] | undefined): bigint {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || !/^\d+$/.test(raw)) {
    throw new RegistryRequestError('consul discovery: the answer has no X-Consul-Index header, so it cannot be watched');
  }
  const index = BigInt(raw);
  // "Reset the index if it goes backwards" (a snapshot restore, an agent restart); and an index
  // of 0 would make every following query return at once.
  if (index < previous) return 0n;
  return index > 0n ? index : 1n;
}
