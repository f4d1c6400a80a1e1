import { lookup as dnsLookup, LookupAddress, LookupOptions } from 'node:dns';
import { EventEmitter } from 'node:events';
import { types } from 'node:util';
import { untilAborted } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { RegistryPermissionError, RegistryRequestError } from '../registry.errors';
import type { ResolvedConsulOptions, ResolvedRegistryOptions } from '../registry.options';
import type { InstanceHealth, ServiceInstance, ServiceRegistration } from '../registry.types';
import type { DiscoveryFeedQuery, DiscoverySink, HeartbeatResult, RegistryDriver } from './registry.driver';

/** The part of node-consul (npm `consul` v2) this driver uses. */
interface ConsulCallOptions {
  timeout?: number;
  ctx?: EventEmitter;
}
/** A request of papi, the HTTP client node-consul's client extends (papi's documented `_get` / `_put`). */
interface PapiRequest extends ConsulCallOptions {
  name: string;
  path: string;
  params?: Record<string, string>;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  type?: 'json';
  body?: unknown;
}
interface PapiResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}
interface ConsulClient {
  /** For the calls node-consul has no option for (`?replace-existing-checks`) or no method for (one agent service). */
  _get(request: PapiRequest): Promise<PapiResponse>;
  _put(request: PapiRequest): Promise<PapiResponse>;
  agent: {
    service: {
      deregister(options: { id: string } & ConsulCallOptions): Promise<unknown>;
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
type ConsulResponse = PapiResponse;

/** Consul's duration syntax ("10s", "1500ms"). */
export function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The check id Consul gives the single `Check` of a service registration; set explicitly so TTL updates can name it. */
export function consulCheckId(serviceId: string): string {
  return `service:${serviceId}`;
}

/** The body of PUT /v1/agent/service/register, in the field names of Consul's API (api-docs/agent/service.mdx). */
export function consulRegistrationBody(registration: ServiceRegistration, options: ResolvedConsulOptions): Record<string, unknown> {
  const c = options.check;
  const host = registration.address.includes(':') ? `[${registration.address}]` : registration.address;
  const check: Record<string, unknown> =
    c.type === 'http'
      ? {
          CheckID: consulCheckId(registration.id),
          Name: `${registration.name} readiness`,
          HTTP: `${c.scheme}://${host}:${registration.port}${c.path}`,
          Interval: goDuration(c.intervalMs),
          Timeout: goDuration(c.timeoutMs),
          ...(c.scheme === 'https' ? { TLSSkipVerify: c.tlsSkipVerify } : {}),
          DeregisterCriticalServiceAfter: goDuration(c.deregisterCriticalServiceAfterMs),
        }
      : {
          CheckID: consulCheckId(registration.id),
          Name: `${registration.name} heartbeat`,
          TTL: goDuration(c.ttlMs),
          DeregisterCriticalServiceAfter: goDuration(c.deregisterCriticalServiceAfterMs),
        };
  return {
    Name: registration.name,
    ID: registration.id,
    Address: registration.address,
    Port: registration.port,
    Tags: [...registration.tags],
    Meta: { ...registration.meta },
    Check: check,
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
    await this.call('register', signal, writeOn(registration), (extra) =>
      this.client._put({
        name: 'agent.service.register',
        path: '/agent/service/register',
        // Without it the agent keeps the checks an earlier registration of this id had and this one
        // has not (api-docs/agent/service.mdx): a stale critical check would hide the instance
        // behind ?passing for good.
        query: { 'replace-existing-checks': 'true' },
        headers: this.tokenHeader(),
        type: 'json',
        body: consulRegistrationBody(registration, this.consul),
        ...extra,
      }),
    );
  }

  async deregister(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    try {
      await this.call('deregister', signal, writeOn(registration), (extra) =>
        this.client.agent.service.deregister({ id: registration.id, ...extra }),
      );
    } catch (error) {
      // Already gone: the agent answers 404 "Unknown service ID" (agent/acl.go
      // vetServiceUpdateWithAuthorizer; the API page says "no action is taken"). The goal is reached.
      if (error instanceof RegistryRequestError && error.statusCode === 404) return;
      throw error;
    }
  }

  async heartbeat(registration: ServiceRegistration, healthy: boolean, signal: AbortSignal): Promise<HeartbeatResult> {
    if (this.consul.check.type !== 'ttl') return 'ok';
    const id = consulCheckId(registration.id);
    try {
      await this.call('heartbeat', signal, writeOn(registration), (extra) =>
        healthy
          ? this.client.agent.check.pass({ id, note: 'ready', ...extra })
          : this.client.agent.check.fail({ id, note: 'not ready', ...extra }),
      );
      return 'ok';
    } catch (error) {
      if (!(error instanceof RegistryRequestError)) throw error;
      // The agent no longer knows the check (restarted without its state, reaped the service):
      // 404 "Unknown check ID" (agent/acl.go vetCheckUpdateWithAuthorizer).
      if (error.statusCode === 404) return 'lost';
      // Older agents answer a lost check with 500 "CheckID ... does not have associated TTL", a
      // status they use for real failures too: ask the agent for the service itself.
      if ((await this.agentService('heartbeat', registration, signal)) === undefined) return 'lost';
      throw error;
    }
  }

  async isRegistered(registration: ServiceRegistration, signal: AbortSignal): Promise<boolean> {
    // Read the one entry, not the list: /v1/agent/services leaves out what the token may not read,
    // so a missing permission would look like a lost registration there; here it is a 403.
    const mine = await this.agentService('anti-entropy', registration, signal);
    return (
      mine !== undefined && mine.Service === registration.name && mine.Port === registration.port && mine.Address === registration.address
    );
  }

  async watch(query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void> {
    const { waitMs, minQueryIntervalMs } = this.options.discovery;
    // Consul adds up to wait/16 to the wait; past that plus a margin the query is hung, not blocking.
    const requestTimeoutMs = waitMs + Math.ceil(waitMs / 16) + this.options.operationTimeoutMs;
    const readOn = `service:read on "${query.service}" and node:read on the nodes that run it`;
    let index = 0n;
    while (!signal.aborted) {
      const started = this.clock.now();
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
      const [response, body] = (await this.call(
        'discovery',
        signal,
        readOn,
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
      // Consul answers 200 with what the token may see, and says so to a token (not to the
      // anonymous one): an answer missing instances is not the service's state.
      if (header(response, 'x-consul-results-filtered-by-acls') === 'true') {
        throw new RegistryPermissionError(
          `consul discovery of "${query.service}": the agent left instances out of its answer for lack of permission; ${this.grant(readOn)}`,
        );
      }
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

  /** GET /v1/agent/service/:id: the entry, or undefined when the agent answers 404 (it does not have it). */
  private async agentService(
    operation: string,
    registration: ServiceRegistration,
    signal: AbortSignal,
  ): Promise<ConsulAgentService | undefined> {
    try {
      const response = await this.call(operation, signal, `service:read on "${registration.name}"`, (extra) =>
        this.client._get({
          name: 'agent.service.get',
          path: '/agent/service/{id}',
          params: { id: registration.id },
          headers: this.tokenHeader(),
          ...extra,
        }),
      );
      return (response.body ?? {}) as ConsulAgentService;
    } catch (error) {
      if (error instanceof RegistryRequestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  private tokenHeader(): Record<string, string> {
    return this.consul.token ? { 'x-consul-token': this.consul.token } : {};
  }

  /** What to do about a refusal: which token, and which permission. */
  private grant(permission: string): string {
    const token = this.consul.token ? 'the ACL token in consul.token' : 'the anonymous token (consul.token is not set)';
    return `${token} needs ${permission}`;
  }

  /**
   * One HTTP call, cancelled when `signal` aborts. A 403 becomes a RegistryPermissionError naming
   * `permission` (a token without the rule, or one the agent does not know: "ACL not found"),
   * other HTTP errors a RegistryRequestError with the status code.
   */
  private async call<T>(
    operation: string,
    signal: AbortSignal,
    permission: string,
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
      if (typeof status !== 'number') throw error;
      // papi keeps a text answer in the message only under 80 characters: read the whole body.
      const said = responseText(error) || (error as Error).message;
      if (status === 403) {
        throw new RegistryPermissionError(`consul ${operation} was refused (HTTP 403: ${said}); ${this.grant(permission)}`, status);
      }
      throw new RegistryRequestError(`consul ${operation} failed with HTTP ${status}: ${said}`, status);
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }
}

/** The permission every write about this registration needs. */
function writeOn(registration: ServiceRegistration): string {
  return `service:write on "${registration.name}"`;
}

function header(response: ConsulResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The body of an HTTP error answer, as text (papi keeps the response on the error). */
function responseText(error: unknown): string {
  const body = (error as { response?: { body?: unknown } }).response?.body;
  if (typeof body === 'string') return body.trim();
  if (Buffer.isBuffer(body)) return body.toString('utf8').trim();
  return '';
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
