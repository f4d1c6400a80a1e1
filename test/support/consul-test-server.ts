import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, IncomingMessage, request as httpRequest, Server, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * An in-memory Consul agent (a dev-mode agent: agent, catalog and health in one process) for
 * end-to-end tests, built from Consul's documented HTTP API and, where the documentation is silent
 * or wrong, from Consul's source (hashicorp/consul). Every behaviour below names what it follows;
 * docs/consul-test-server.md has the whole table, with what is knowingly simplified.
 *
 *   PUT  /v1/agent/service/register            ?replace-existing-checks; Name, ID, Tags, Address, Port, Meta, Check + Checks
 *   PUT  /v1/agent/service/deregister/:id      404 for an unknown id
 *   GET  /v1/agent/services                    map of service id to service, filtered by ACLs
 *   GET  /v1/agent/service/:id                 404 for an unknown id, 403 without service:read
 *   PUT  /v1/agent/check/pass|warn|fail/:id    TTL updates (?note); 404 for an unknown id
 *   PUT  /v1/agent/check/update/:id            TTL update with a JSON body { Status, Output }
 *   GET  /v1/health/service/:name              ?passing ?tag ?dc ?index ?wait, filtered by ACLs
 *   GET  /v1/catalog/service/:name             ?tag ?dc ?index ?wait, filtered by ACLs
 *   GET  /v1/kv/:key                           ?recurse ?raw ?dc ?index ?wait; 404 when nothing matches
 *   PUT  /v1/kv/:key                           raw body as the value, ?flags ?cas; answers true or false
 *   DELETE /v1/kv/:key                         ?recurse ?cas; answers true or false
 *
 * Checks run as the agent runs them: HTTP and HTTPS (2xx passing, 429 warning, anything else
 * critical), TCP (a connection is passing), TTL (critical once `TTL` passes without an update).
 * A service whose check has been critical for longer than its DeregisterCriticalServiceAfter is
 * removed by a reaper that runs every 30 s.
 *
 * Test controls: `restart()` (an agent restarted without its data dir: services, checks and the
 * index are gone), `freeze()` (requests are accepted and never answered), `setAclRules()` (a
 * token's policy changed while the agent runs), `history` (check transitions and reaps, with their
 * times) and `reapTimeScale`. That one is the only thing scaled: tests cannot wait the minutes
 * reaping takes, and the registry refuses a DeregisterCriticalServiceAfter under Consul's
 * one-minute floor, so the reaper's period (Consul's check_reap_interval) and each check's
 * effective deregister delay (after the floor, check_deregister_interval_min) are multiplied by
 * it, which Consul's own agent tests do by setting those two values. Check intervals, timeouts and
 * TTLs run at full length, and the order of events stays Consul's.
 */
export interface ConsulTestServerOptions {
  /** @default a free port */
  port?: number;
  /** @default 'test-node' */
  nodeName?: string;
  /** The agent's datacenter; a `?dc` naming another one gets Consul's "No path to datacenter". @default 'dc1' */
  datacenter?: string;
  /** ACLs enabled with these tokens and rules; without it ACLs are off and every request may do everything. */
  acl?: ConsulTestAclOptions;
  /** CA certificates (PEM) that HTTPS checks verify against, as the agent's TLS `ca_file`. @default Node's root store */
  checkCa?: string | Buffer;
  /** Multiplies the reaper's period (30 s) and each effective DeregisterCriticalServiceAfter (at least 1 m), nothing else. @default 1 */
  reapTimeScale?: number;
}

/** A rule's access level, as in Consul's ACL rules language. */
export type ConsulAclAccess = 'read' | 'write' | 'deny';

/**
 * One token's rules, in Consul's rule names: an exact rule (`service "orders"`) wins over the
 * longest matching prefix rule (`service_prefix "ord"`); `write` includes `read`.
 */
export interface ConsulAclRules {
  service?: Record<string, ConsulAclAccess>;
  service_prefix?: Record<string, ConsulAclAccess>;
  node?: Record<string, ConsulAclAccess>;
  node_prefix?: Record<string, ConsulAclAccess>;
  key?: Record<string, ConsulAclAccess>;
  key_prefix?: Record<string, ConsulAclAccess>;
}

export interface ConsulTestAclOptions {
  /** `acl.default_policy`: what a resource that no rule names allows. @default 'allow' (Consul's default) */
  defaultPolicy?: 'allow' | 'deny';
  /** Rules of the anonymous token, which Consul uses for a request that carries no token. @default {} */
  anonymous?: ConsulAclRules;
  /** Secret IDs of the tokens the agent knows, with their rules; any other token is "ACL not found" (403). */
  tokens?: Record<string, ConsulAclRules>;
}

interface CheckDefinition {
  HTTP?: string;
  Method?: string;
  Header?: Record<string, string[]>;
  Body?: string;
  TCP?: string;
  GRPC?: string;
  Args?: string[];
  Interval?: string;
  Timeout?: string;
  TTL?: string;
  DeregisterCriticalServiceAfter?: string;
  TLSSkipVerify?: boolean;
}

type CheckStatus = 'passing' | 'warning' | 'critical';

interface AgentCheck {
  Node: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  Definition: CheckDefinition;
  CreateIndex: number;
  ModifyIndex: number;
}

interface AgentService {
  ID: string;
  Service: string;
  Tags: string[];
  Meta: Record<string, string>;
  Port: number;
  Address: string;
  EnableTagOverride: boolean;
  Weights: { Passing: number; Warning: number };
  Datacenter: string;
  CreateIndex: number;
  ModifyIndex: number;
}

interface CheckRuntime {
  check: AgentCheck;
  /**
   * When the check last went from not critical to critical, as reported by its runner; undefined
   * while it is not, and for a check just (re-)registered, whatever status it starts with
   * (agent/local/state.go: CheckState.CriticalTime is set only by UpdateCheck).
   */
  criticalSince: number | undefined;
  /** The effective DeregisterCriticalServiceAfter (floor and reapTimeScale applied); undefined when unset. */
  deregisterAfterMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Runs of its runner (HTTP, TCP) or TTL expiries since it was registered. */
  runs: number;
}

interface KvEntry {
  Key: string;
  Value: Buffer;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Flags: number;
}

export interface ConsulRequestRecord {
  readonly method: string;
  readonly path: string;
  /** The query string, with its leading "?" ('' when none). */
  readonly search: string;
  readonly at: number;
  /** The status answered; undefined while the request is open (a blocking query, a frozen agent). */
  status: number | undefined;
}

/** What the agent did on its own, for tests to hold the order and timing of events against. */
export type ConsulHistoryEvent =
  | { readonly at: number; readonly event: 'check'; readonly checkId: string; readonly serviceId: string; readonly status: CheckStatus }
  | { readonly at: number; readonly event: 'reaped'; readonly serviceId: string; readonly checkId: string; readonly criticalForMs: number };

const DEFAULT_DATACENTER = 'dc1';
const NODE_ID = '40e4a748-2192-161a-0510-9bf59fe950b5';
/** Consul's max_query_time and default_query_time (agent/config/default.go). */
const MAX_WAIT_MS = 10 * 60_000;
const DEFAULT_WAIT_MS = 5 * 60_000;
/** check_reap_interval and check_deregister_interval_min (agent/config/default.go). */
const REAP_INTERVAL_MS = 30_000;
const MIN_DEREGISTER_CRITICAL_MS = 60_000;
/** "Timeout ... defaults to 10 seconds" (api-docs/agent/check.mdx); checks.MinInterval is 1 s. */
const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
const MIN_CHECK_INTERVAL_MS = 1000;
/** "Values in the KV store cannot be larger than 512kb." */
const MAX_KV_VALUE_BYTES = 512 * 1024;
const INVALID_CHECK = 'Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval';
/** acl.AnonymousTokenID */
const ANONYMOUS_ACCESSOR = '00000000-0000-0000-0000-000000000002';
/** agent/structs/errors.go errNoDCPath */
const NO_DC_PATH = 'No path to datacenter';
/** acl/errors.go errNotFound: a token the agent does not know. */
const ACL_NOT_FOUND = 'ACL not found';

/**
 * Go's time.ParseDuration, which Consul uses for every duration it reads ("1h30m", "10s",
 * "1500ms", "-2s", "0"); anything else throws.
 */
export function parseGoDuration(value: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const match = /^([-+]?)(.*)$/s.exec(value)!;
  const sign = match[1] === '-' ? -1 : 1;
  const rest = match[2];
  if (rest === '0') return 0;
  const parts = [...rest.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)];
  if (rest === '' || parts.length === 0 || parts.map((p) => p[0]).join('') !== rest) {
    throw new Error(`time: invalid duration "${value}"`);
  }
  return sign * parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]], 0);
}

/**
 * A self-signed certificate for 127.0.0.1 (made with openssl, valid one day), for an instance
 * that serves its readiness probe over HTTPS: `cert` doubles as the CA that verifies it.
 */
export function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'consul-https-check-'));
  try {
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ].concat(['-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]),
      { stdio: 'pipe' },
    );
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Go's strconv.ParseBool, which Consul uses for boolean query parameters. */
function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  return undefined;
}

/** A request's ACL identity: the rules it acts with, or none when ACLs are off. */
interface Caller {
  /** Undefined when ACLs are off. */
  readonly rules: ConsulAclRules | undefined;
  readonly accessor: string;
  /** Whether the request carried a token (Consul only reveals ACL filtering to those). */
  readonly authenticated: boolean;
}

class AclDenied extends Error {}

export class ConsulTestServer {
  readonly requests: ConsulRequestRecord[] = [];
  readonly history: ConsulHistoryEvent[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly services = new Map<string, AgentService>();
  private readonly checks = new Map<string, CheckRuntime>();
  private index = 1;
  /** The last index handed out, by a catalog or a KV write (Consul's Raft index, shared by both). */
  private raftIndex = 1;
  /** The KV store, by key. */
  private readonly kv = new Map<string, KvEntry>();
  /** Index at which each deleted key was deleted, so that a recursive query notices deletions. */
  private readonly kvDeleted = new Map<string, number>();
  /** Index of the last KV write or deletion (the KV table's index). */
  private kvIndex = 0;
  /** Index at which each service name last changed (registration, deregistration, check status). */
  private readonly serviceIndex = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private readonly frozen = new Set<ServerResponse>();
  private isFrozen = false;
  private reaper: NodeJS.Timeout | undefined;
  private portNumber: number | undefined;
  private readonly reapTimeScale: number;
  private readonly nodeName: string;
  private readonly datacenter: string;
  private readonly aclTokens: Map<string, ConsulAclRules>;
  private anonymousRules: ConsulAclRules;

  constructor(private readonly options: ConsulTestServerOptions = {}) {
    this.portNumber = options.port;
    this.reapTimeScale = options.reapTimeScale ?? 1;
    this.nodeName = options.nodeName ?? 'test-node';
    this.datacenter = options.datacenter ?? DEFAULT_DATACENTER;
    this.aclTokens = new Map(Object.entries(options.acl?.tokens ?? {}));
    this.anonymousRules = options.acl?.anonymous ?? {};
  }

  /** Creates a server and starts listening on 127.0.0.1. */
  static async start(options: ConsulTestServerOptions = {}): Promise<ConsulTestServer> {
    const server = new ConsulTestServer(options);
    await server.listen();
    return server;
  }

  get port(): number {
    if (this.portNumber === undefined) throw new Error('ConsulTestServer: not listening yet');
    return this.portNumber;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** The reaper's period in effect (Consul's 30 s times reapTimeScale). */
  get reapIntervalMs(): number {
    return REAP_INTERVAL_MS * this.reapTimeScale;
  }

  /** How long a check with this DeregisterCriticalServiceAfter must stay critical here: the one-minute floor, then reapTimeScale. */
  effectiveDeregisterAfterMs(deregisterCriticalServiceAfterMs: number): number {
    // agent/agent.go addCheck: "check has deregister interval below minimum" raises it to
    // check_deregister_interval_min instead of refusing it.
    return Math.max(deregisterCriticalServiceAfterMs, MIN_DEREGISTER_CRITICAL_MS) * this.reapTimeScale;
  }

  async listen(): Promise<void> {
    if (this.listening) return;
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.portNumber ?? 0, '127.0.0.1', () => resolve());
    });
    this.portNumber = (server.address() as AddressInfo).port;
    this.server = server;
    // agent/agent.go reapServices: one pass every check_reap_interval.
    this.reaper = setInterval(() => this.reap(), Math.max(10, this.reapIntervalMs));
    this.reaper.unref();
  }

  /** Stops answering: every connection is cut and the port is closed. The state stays (see `restart`). */
  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    this.reaper = undefined;
    for (const res of this.frozen) res.destroy();
    this.frozen.clear();
    this.isFrozen = false;
    for (const wake of [...this.waiters]) wake();
    const server = this.server;
    this.server = undefined;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await closed;
    }
  }

  /** Closes the port, forgets every service, check and index (a dev agent restarted), listens again. */
  async restart(downtimeMs = 0): Promise<void> {
    await this.close();
    this.clearState();
    if (downtimeMs > 0) await new Promise((resolve) => setTimeout(resolve, downtimeMs));
    await this.listen();
  }

  /** Stops the port and every check timer for good. */
  async destroy(): Promise<void> {
    await this.close();
    this.clearState();
  }

  /** From now on requests are accepted and never answered, like an agent stuck in a GC pause. */
  freeze(): void {
    this.isFrozen = true;
  }

  thaw(): void {
    this.isFrozen = false;
    for (const res of this.frozen) res.destroy();
    this.frozen.clear();
  }

  /**
   * Replaces the rules of a token (`anonymous` for the anonymous token), as an operator editing
   * its policy while the agent runs; `undefined` deletes the token (it becomes "ACL not found").
   */
  setAclRules(token: string, rules: ConsulAclRules | undefined): void {
    if (!this.options.acl) throw new Error('ConsulTestServer: ACLs are off; pass the acl option');
    if (token === 'anonymous') this.anonymousRules = rules ?? {};
    else if (rules) this.aclTokens.set(token, rules);
    else this.aclTokens.delete(token);
  }

  /** The agent's services (what GET /v1/agent/services answers without ACLs), for assertions. */
  agentServices(): Record<string, AgentService> {
    return Object.fromEntries([...this.services].map(([id, s]) => [id, { ...s }]));
  }

  /** The agent's checks of one service, by check id, for assertions. */
  serviceChecks(serviceId: string): Record<string, AgentCheck> {
    return Object.fromEntries(
      [...this.checks.values()].filter((r) => r.check.ServiceID === serviceId).map((r) => [r.check.CheckID, { ...r.check }]),
    );
  }

  checkStatus(checkId: string): CheckStatus | undefined {
    return this.checks.get(checkId)?.check.Status;
  }

  /** How often a check has run (or, for a TTL check, expired) since it was last registered. */
  checkRuns(checkId: string): number {
    return this.checks.get(checkId)?.runs ?? 0;
  }

  /** The index a health or catalog query for `name` reports now. */
  serviceQueryIndex(name: string): number {
    return this.indexOf(name);
  }

  private clearState(): void {
    for (const runtime of this.checks.values()) if (runtime.timer) clearTimeout(runtime.timer);
    this.checks.clear();
    this.services.clear();
    this.serviceIndex.clear();
    this.index = 1;
    this.raftIndex = 1;
    this.kv.clear();
    this.kvDeleted.clear();
    this.kvIndex = 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: ConsulRequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      search: url.search,
      at: Date.now(),
      status: undefined,
    };
    this.requests.push(record);
    res.once('finish', () => (record.status = res.statusCode));
    if (this.isFrozen) {
      this.frozen.add(res);
      res.once('close', () => this.frozen.delete(res));
      return;
    }
    const rawBody = await readBody(req);
    const body = rawBody.toString('utf8');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let match: RegExpMatchArray | null;
    try {
      // agent/http.go parseToken: X-Consul-Token, then "Authorization: Bearer", then ?token; a token
      // the agent does not know fails every endpoint with 403 "ACL not found" (acl/errors.go;
      // agent/http.go answers acl.IsErrNotFound and IsErrPermissionDenied with 403).
      const caller = this.caller(req, url);
      if (caller === undefined) return send(res, 403, ACL_NOT_FOUND, 'text/plain');
      if (path === '/v1/agent/service/register') return method === 'PUT' ? this.register(url, body, caller, res) : notAllowed(res);
      if ((match = path.match(/^\/v1\/agent\/service\/deregister\/(.+)$/))) {
        return method === 'PUT' ? this.deregister(decodeURIComponent(match[1]), caller, res) : notAllowed(res);
      }
      if (path === '/v1/agent/services') return method === 'GET' ? this.listAgentServices(caller, res) : notAllowed(res);
      if ((match = path.match(/^\/v1\/agent\/service\/([^/]+)$/)) && method === 'GET') {
        return this.readAgentService(decodeURIComponent(match[1]), caller, res);
      }
      if ((match = path.match(/^\/v1\/agent\/check\/(pass|warn|fail)\/(.+)$/))) {
        if (method !== 'PUT') return notAllowed(res);
        const status = match[1] === 'pass' ? 'passing' : match[1] === 'warn' ? 'warning' : 'critical';
        return this.updateTtl(decodeURIComponent(match[2]), status, url.searchParams.get('note') ?? '', caller, res);
      }
      if ((match = path.match(/^\/v1\/agent\/check\/update\/(.+)$/))) {
        return method === 'PUT' ? this.checkUpdate(decodeURIComponent(match[1]), body, caller, res) : notAllowed(res);
      }
      if ((match = path.match(/^\/v1\/health\/service\/([^/]+)$/)) && method === 'GET') {
        if (!this.ownDatacenter(url, res)) return;
        // agent/health_endpoint.go getBoolQueryParam: present without a value is true, else strconv.ParseBool.
        const rawPassing = url.searchParams.get('passing');
        const passing = rawPassing === null ? false : rawPassing === '' ? true : parseGoBool(rawPassing);
        if (passing === undefined) return send(res, 400, 'Invalid value for ?passing', 'text/plain');
        return await this.blocking(url, decodeURIComponent(match[1]), caller, res, (name, visible) =>
          this.healthEntries(name, url.searchParams.getAll('tag'), passing, visible),
        );
      }
      if ((match = path.match(/^\/v1\/catalog\/service\/([^/]+)$/)) && method === 'GET') {
        if (!this.ownDatacenter(url, res)) return;
        return await this.blocking(url, decodeURIComponent(match[1]), caller, res, (name, visible) =>
          this.catalogEntries(name, url, visible),
        );
      }
      if (path.startsWith('/v1/kv/')) {
        if (!this.ownDatacenter(url, res)) return;
        const key = decodeURIComponent(path.slice('/v1/kv/'.length));
        if (method === 'GET') return await this.kvGet(url, key, caller, res);
        if (method === 'PUT') return this.kvPut(url, key, rawBody, caller, res);
        if (method === 'DELETE') return this.kvDelete(url, key, caller, res);
        return notAllowed(res);
      }
    } catch (error) {
      if (error instanceof AclDenied) return send(res, 403, error.message, 'text/plain');
      return send(res, 500, (error as Error).message, 'text/plain');
    }
    send(res, 404, '', 'text/plain');
  }

  // ---- ACLs -----------------------------------------------------------------------------------

  /** The caller's rules; undefined for a token the agent does not know. */
  private caller(req: IncomingMessage, url: URL): Caller | undefined {
    const header = req.headers['x-consul-token'];
    const token = (Array.isArray(header) ? header[0] : header) || bearer(req.headers.authorization) || url.searchParams.get('token') || '';
    if (!this.options.acl) return { rules: undefined, accessor: ANONYMOUS_ACCESSOR, authenticated: token !== '' };
    if (token === '') return { rules: this.anonymousRules, accessor: ANONYMOUS_ACCESSOR, authenticated: false };
    const rules = this.aclTokens.get(token);
    return rules ? { rules, accessor: accessorOf(token), authenticated: true } : undefined;
  }

  /** acl/policy_authorizer.go: the exact rule, else the longest matching prefix rule, else the default policy. */
  private allows(caller: Caller, resource: 'service' | 'node' | 'key', name: string, need: 'read' | 'write'): boolean {
    if (!caller.rules) return true;
    const exact = caller.rules[resource]?.[name];
    let access: ConsulAclAccess | undefined = exact;
    if (access === undefined) {
      let longest = -1;
      for (const [prefix, value] of Object.entries(caller.rules[`${resource}_prefix`] ?? {})) {
        if (name.startsWith(prefix) && prefix.length > longest) {
          longest = prefix.length;
          access = value;
        }
      }
    }
    if (access === undefined) return (this.options.acl?.defaultPolicy ?? 'allow') === 'allow';
    return access === 'write' || (access === 'read' && need === 'read');
  }

  /** Throws acl.PermissionDeniedError's message (acl/errors.go) unless the caller may. */
  private require(caller: Caller, resource: 'service' | 'node' | 'key', name: string, need: 'read' | 'write'): void {
    if (this.allows(caller, resource, name, need)) return;
    const who = caller.accessor === ANONYMOUS_ACCESSOR ? 'anonymous token' : `token with AccessorID '${caller.accessor}'`;
    const anonymousNote =
      caller.accessor === ANONYMOUS_ACCESSOR ? '. The anonymous token is used implicitly when a request does not specify a token.' : '';
    throw new AclDenied(`Permission denied: ${who} lacks permission '${resource}:${need}' on ${JSON.stringify(name)}${anonymousNote}`);
  }

  /**
   * agent/http.go setResultsFilteredByACLs, masked for requests without a token
   * (Server.maskResultsFilteredByACLs): "X-Consul-Results-Filtered-By-ACLs: true" when something was left out.
   */
  private markFiltered(res: ServerResponse, caller: Caller, filtered: boolean): void {
    if (filtered && caller.authenticated) res.setHeader('X-Consul-Results-Filtered-By-ACLs', 'true');
  }

  /**
   * RPC-backed endpoints (health, catalog, KV) go to the datacenter `?dc` names; with one server
   * in one datacenter any other has no route: agent/consul/rpc.go forwardDC returns
   * structs.ErrNoDCPath, which agent/http.go answers with 500.
   */
  private ownDatacenter(url: URL, res: ServerResponse): boolean {
    const dc = url.searchParams.get('dc');
    if (dc && dc !== this.datacenter) {
      send(res, 500, NO_DC_PATH, 'text/plain');
      return false;
    }
    return true;
  }

  // ---- agent endpoints ------------------------------------------------------------------------

  /** agent/agent_endpoint.go AgentRegisterService, agent/agent.go addServiceInternal. */
  private register(url: URL, raw: string, caller: Caller, res: ServerResponse): void {
    let def: Record<string, unknown>;
    try {
      def = normalizeKeys(JSON.parse(raw || '{}')) as Record<string, unknown>;
    } catch (error) {
      return send(res, 400, `Request decode failed: ${(error as Error).message}`, 'text/plain');
    }
    const name = def.name;
    if (typeof name !== 'string' || name === '') return send(res, 400, 'Missing service name', 'text/plain');
    const address = typeof def.address === 'string' ? def.address : '';
    if (address === '0.0.0.0' || address === '::' || address === '[::]') return send(res, 400, 'Invalid service address', 'text/plain');
    const id = typeof def.id === 'string' && def.id !== '' ? def.id : name;
    // structs.ServiceDefinition.CheckTypes: `Check` first, then every entry of `Checks`; the ids
    // generated below number them only when there is more than one of them in all.
    const rawChecks: Record<string, unknown>[] = [
      ...(def.check && typeof def.check === 'object' && Object.keys(def.check).length > 0 ? [def.check as Record<string, unknown>] : []),
      ...(Array.isArray(def.checks) ? (def.checks as Record<string, unknown>[]) : []),
    ];
    const tags = stringArray(def.tags);
    const planned: CheckRuntime[] = [];
    for (const [i, c] of rawChecks.entries()) {
      const status = c.status;
      if (status !== undefined && status !== '' && !['passing', 'warning', 'critical'].includes(String(status))) {
        return send(res, 400, "Status for checks must 'passing', 'warning', 'critical'", 'text/plain');
      }
      let definition: CheckDefinition;
      try {
        definition = checkDefinition(c);
      } catch (error) {
        return send(res, 400, `Request decode failed: ${(error as Error).message}`, 'text/plain');
      }
      const hasInterval = definition.Interval !== undefined && parseGoDuration(definition.Interval) > 0;
      const valid =
        definition.TTL !== undefined
          ? parseGoDuration(definition.TTL) > 0
          : hasInterval && !!(definition.HTTP || definition.TCP || definition.GRPC || definition.Args);
      if (!valid) return send(res, 400, `Invalid check: ${INVALID_CHECK}`, 'text/plain');
      // agent/agent.go addCheck: script checks from the HTTP API need enable_script_checks, off by default.
      if (definition.Args && definition.TTL === undefined) {
        return send(
          res,
          500,
          "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true",
          'text/plain',
        );
      }
      // agent/agent.go addServiceInternal: "service:<id>", with ":<n>" only when len(chkTypes) > 1.
      const checkId =
        typeof c.checkid === 'string' && c.checkid !== '' ? c.checkid : rawChecks.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`;
      const dcsa = definition.DeregisterCriticalServiceAfter ? parseGoDuration(definition.DeregisterCriticalServiceAfter) : 0;
      planned.push({
        check: {
          Node: this.nodeName,
          CheckID: checkId,
          Name: typeof c.name === 'string' && c.name !== '' ? c.name : `Service '${name}' check`,
          Status: (status as CheckStatus) || 'critical',
          Notes: typeof c.notes === 'string' ? c.notes : '',
          Output: '',
          ServiceID: id,
          ServiceName: name,
          ServiceTags: tags,
          Type: definition.TTL !== undefined ? 'ttl' : definition.HTTP ? 'http' : definition.TCP ? 'tcp' : 'grpc',
          Definition: definition,
          CreateIndex: 0,
          ModifyIndex: 0,
        },
        criticalSince: undefined,
        deregisterAfterMs: dcsa > 0 ? this.effectiveDeregisterAfterMs(dcsa) : undefined,
        timer: undefined,
        runs: 0,
      });
    }
    // agent/acl.go vetServiceRegisterWithAuthorizer: service:write on the new name, and on the
    // name of the service this one replaces.
    this.require(caller, 'service', name, 'write');
    const previous = this.services.get(id);
    if (previous) this.require(caller, 'service', previous.Service, 'write');

    // "replace-existing-checks - Missing health checks from the request will be deleted from the
    // agent" (api-docs/agent/service.mdx); present without a value or "true"
    // (agent/agent_endpoint.go AgentRegisterService). Without it they stay.
    const replaceParam = url.searchParams.getAll('replace-existing-checks');
    const replaceExistingChecks = replaceParam.length > 0 && (replaceParam[0] === '' || replaceParam[0] === 'true');
    const keep = new Set(planned.map((p) => p.check.CheckID));
    const doomed = replaceExistingChecks
      ? [...this.checks.values()].filter((r) => r.check.ServiceID === id && !keep.has(r.check.CheckID)).map((r) => r.check.CheckID)
      : [];

    const service: AgentService = {
      ID: id,
      Service: name,
      Tags: tags,
      Meta: stringRecord(def.meta),
      Port: typeof def.port === 'number' ? def.port : 0,
      Address: address,
      EnableTagOverride: def.enabletagoverride === true,
      Weights: { Passing: 1, Warning: 1 },
      Datacenter: this.datacenter,
      CreateIndex: previous?.CreateIndex ?? 0,
      ModifyIndex: previous?.ModifyIndex ?? 0,
    };
    for (const runtime of planned) {
      const existing = this.checks.get(runtime.check.CheckID);
      // addServiceInternal restores Status and Output from the snapshot of the check it replaces,
      // but the check state itself is new (local/state.go addCheckLocked): its critical clock
      // starts again at the next critical result, and its runner starts over.
      if (existing) {
        runtime.check.Status = existing.check.Status;
        runtime.check.Output = existing.check.Output;
        runtime.check.CreateIndex = existing.check.CreateIndex;
        runtime.check.ModifyIndex = existing.check.ModifyIndex;
      }
    }
    // agent/consul/state/catalog.go ensureServiceTxn ("if entry.IsSameService(serviceNode) return
    // nil") and ensureCheckTxn: what anti-entropy syncs unchanged is not written again, so the
    // index does not move and blocking queries do not wake.
    const unchanged =
      previous !== undefined &&
      sameService(previous, service) &&
      doomed.length === 0 &&
      planned.every((p) => {
        const existing = this.checks.get(p.check.CheckID);
        return existing !== undefined && sameCheck(existing.check, p.check);
      });
    const index = unchanged ? previous.ModifyIndex : this.bump(name);
    if (previous && previous.Service !== name) this.bump(previous.Service);
    service.CreateIndex = previous?.CreateIndex ?? index;
    service.ModifyIndex = index;
    this.services.set(id, service);
    for (const checkId of doomed) this.removeCheck(checkId);
    for (const runtime of planned) {
      const existing = this.checks.get(runtime.check.CheckID);
      if (existing?.timer) clearTimeout(existing.timer);
      if (!existing) runtime.check.CreateIndex = index;
      if (!unchanged) runtime.check.ModifyIndex = index;
      this.checks.set(runtime.check.CheckID, runtime);
      this.schedule(runtime, true);
    }
    if (!unchanged) this.wake();
    send(res, 200, '', 'application/json');
  }

  /** agent/agent_endpoint.go AgentDeregisterService with agent/acl.go vetServiceUpdateWithAuthorizer. */
  private deregister(id: string, caller: Caller, res: ServerResponse): void {
    const service = this.services.get(id);
    // The API page says "If the service does not exist, no action is taken", but the code answers
    // an HTTPError with http.StatusNotFound: "Unknown service ID %q. Ensure that the service ID is
    // passed, not the service name."
    if (!service) {
      return send(
        res,
        404,
        `Unknown service ID ${JSON.stringify(id)}. Ensure that the service ID is passed, not the service name.`,
        'text/plain',
      );
    }
    this.require(caller, 'service', service.Service, 'write');
    this.removeService(id);
    send(res, 200, '', 'application/json');
  }

  /** agent/agent_endpoint.go AgentServices: services the caller may not read are left out (agent/acl.go filterServicesWithAuthorizer). */
  private listAgentServices(caller: Caller, res: ServerResponse): void {
    const all = this.agentServices();
    const visible = Object.fromEntries(Object.entries(all).filter(([, s]) => this.allows(caller, 'service', s.Service, 'read')));
    this.markFiltered(res, caller, Object.keys(visible).length !== Object.keys(all).length);
    sendJson(res, 200, visible);
  }

  /** agent/agent_endpoint.go AgentService: 404 "unknown service ID", then service:read (403). */
  private readAgentService(id: string, caller: Caller, res: ServerResponse): void {
    const service = this.services.get(id);
    if (!service) return send(res, 404, `unknown service ID: ${id}`, 'text/plain');
    this.require(caller, 'service', service.Service, 'read');
    res.setHeader('X-Consul-ContentHash', String(service.ModifyIndex));
    sendJson(res, 200, { ...service, ContentHash: String(service.ModifyIndex) });
  }

  /** agent/agent_endpoint.go AgentCheckUpdate: a PUT with { Status, Output } instead of pass/warn/fail. */
  private checkUpdate(checkId: string, raw: string, caller: Caller, res: ServerResponse): void {
    let update: Record<string, unknown>;
    try {
      update = normalizeKeys(JSON.parse(raw || '{}')) as Record<string, unknown>;
    } catch (error) {
      return send(res, 400, `Request decode failed: ${(error as Error).message}`, 'text/plain');
    }
    const status = update.status;
    if (status !== 'passing' && status !== 'warning' && status !== 'critical') {
      return send(res, 400, `Invalid check status: '${typeof status === 'string' ? status : ''}'`, 'text/plain');
    }
    this.updateTtl(checkId, status, typeof update.output === 'string' ? update.output : '', caller, res);
  }

  /** agent/agent_endpoint.go agentCheckUpdate: vetCheckUpdateWithAuthorizer (404, 403), then updateTTLCheck (500 when not a TTL check). */
  private updateTtl(checkId: string, status: CheckStatus, output: string, caller: Caller, res: ServerResponse): void {
    const runtime = this.checks.get(checkId);
    if (!runtime) {
      return send(
        res,
        404,
        `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`,
        'text/plain',
      );
    }
    this.require(caller, 'service', runtime.check.ServiceName, 'write');
    if (runtime.check.Definition.TTL === undefined) {
      return send(res, 500, `CheckID ${JSON.stringify(checkId)} does not have associated TTL`, 'text/plain');
    }
    this.setStatus(runtime, status, output);
    this.schedule(runtime, false);
    send(res, 200, '', 'application/json');
  }

  private removeService(id: string): void {
    const service = this.services.get(id);
    if (!service) return;
    this.services.delete(id);
    for (const [checkId, runtime] of this.checks) if (runtime.check.ServiceID === id) this.removeCheck(checkId);
    this.bump(service.Service);
    this.wake();
  }

  private removeCheck(checkId: string): void {
    const runtime = this.checks.get(checkId);
    if (runtime?.timer) clearTimeout(runtime.timer);
    this.checks.delete(checkId);
  }

  // ---- checks ---------------------------------------------------------------------------------

  /** agent/local/state.go UpdateCheck: a runner's (or a TTL update's) result. */
  private setStatus(runtime: CheckRuntime, status: CheckStatus, output: string): void {
    if (this.checks.get(runtime.check.CheckID) !== runtime) return;
    // "Update the critical time tracking": set when it first turns critical, kept while it stays
    // critical, cleared otherwise; an update with the same status still starts the clock of a
    // check registered critical.
    if (status === 'critical') runtime.criticalSince ??= Date.now();
    else runtime.criticalSince = undefined;
    if (runtime.check.Status === status && runtime.check.Output === output) return;
    const statusChanged = runtime.check.Status !== status;
    runtime.check.Status = status;
    runtime.check.Output = output;
    if (!statusChanged) return;
    // A change of output alone reaches the catalog only check_update_interval (5 m) later
    // (CheckState.DeferCheck): only status changes move the index at once.
    this.history.push({ at: Date.now(), event: 'check', checkId: runtime.check.CheckID, serviceId: runtime.check.ServiceID, status });
    runtime.check.ModifyIndex = this.bump(runtime.check.ServiceName);
    this.wake();
  }

  /** TTL: arm the expiry. HTTP and TCP: the next run (the first at a random offset within the interval, as lib.RandomStagger does). */
  private schedule(runtime: CheckRuntime, first: boolean): void {
    if (runtime.timer) clearTimeout(runtime.timer);
    runtime.timer = undefined;
    const def = runtime.check.Definition;
    if (def.TTL !== undefined) {
      // checks/check.go CheckTTL: "TTL expired" once TTL passes without an update.
      runtime.timer = setTimeout(() => {
        runtime.runs += 1;
        this.setStatus(runtime, 'critical', 'TTL expired');
      }, parseGoDuration(def.TTL));
      runtime.timer.unref();
      return;
    }
    if (!(def.HTTP || def.TCP) || !def.Interval) return;
    const intervalMs = Math.max(MIN_CHECK_INTERVAL_MS, parseGoDuration(def.Interval));
    const delayMs = first ? Math.floor(Math.random() * intervalMs) : intervalMs;
    runtime.timer = setTimeout(() => {
      runtime.runs += 1;
      const run = def.HTTP ? this.runHttpCheck(runtime) : this.runTcpCheck(runtime);
      // A check that fails in an unexpected way is critical, never a crash of the loop.
      void run
        .catch((error: unknown) => this.setStatus(runtime, 'critical', String((error as Error)?.message ?? error)))
        .then(() => {
          if (this.checks.get(runtime.check.CheckID) === runtime && this.listening) this.schedule(runtime, false);
        });
    }, delayMs);
    runtime.timer.unref();
  }

  /**
   * checks/check.go CheckHTTP: GET (or `Method`) with `Header` and `Body`, `Timeout` (default 10 s);
   * 2xx passing, 429 warning, anything else critical. HTTPS verifies the instance's certificate
   * against the agent's CA (tls OutgoingTLSConfigForCheck) unless `TLSSkipVerify`.
   */
  private runHttpCheck(runtime: CheckRuntime): Promise<void> {
    const def = runtime.check.Definition;
    const timeoutMs = def.Timeout ? parseGoDuration(def.Timeout) : DEFAULT_CHECK_TIMEOUT_MS;
    const method = def.Method || 'GET';
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (status: CheckStatus, output: string) => {
        if (done) return;
        done = true;
        this.setStatus(runtime, status, output);
        resolve();
      };
      const headers: Record<string, string | string[]> = {
        'User-Agent': 'Consul Health Check',
        Accept: 'text/plain, text/*, */*',
        ...def.Header,
      };
      let target: URL;
      try {
        target = new URL(def.HTTP!);
      } catch (error) {
        return finish('critical', `Get ${JSON.stringify(def.HTTP)}: ${(error as Error).message}`);
      }
      const onResponse = (res: IncomingMessage) => {
        res.resume();
        const code = res.statusCode ?? 0;
        const output = `HTTP ${method} ${def.HTTP}: ${code} ${res.statusMessage ?? ''}`;
        res.once('end', () => finish(code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical', output));
        res.once('error', () => finish('critical', output));
      };
      let req;
      if (target.protocol === 'https:') {
        req = httpsRequest(
          target,
          {
            method,
            headers,
            agent: false,
            rejectUnauthorized: !def.TLSSkipVerify,
            ...(this.options.checkCa ? { ca: this.options.checkCa } : {}),
          },
          onResponse,
        );
      } else if (target.protocol === 'http:') {
        req = httpRequest(target, { method, headers, agent: false }, onResponse);
      } else {
        return finish(
          'critical',
          `Get ${JSON.stringify(def.HTTP)}: unsupported protocol scheme ${JSON.stringify(target.protocol.replace(/:$/, ''))}`,
        );
      }
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`context deadline exceeded (Client.Timeout exceeded while awaiting headers)`)));
      req.on('error', (error) => finish('critical', `Get ${JSON.stringify(def.HTTP)}: ${error.message}`));
      req.end(def.Body ?? undefined);
    });
  }

  /** checks/check.go CheckTCP: passing once a connection opens within `Timeout` (default 10 s). */
  private runTcpCheck(runtime: CheckRuntime): Promise<void> {
    const def = runtime.check.Definition;
    const timeoutMs = def.Timeout ? parseGoDuration(def.Timeout) : DEFAULT_CHECK_TIMEOUT_MS;
    const match = /^\[?([^\]]*?)\]?:(\d+)$/.exec(def.TCP!);
    return new Promise<void>((resolve) => {
      if (!match) {
        this.setStatus(runtime, 'critical', `dial tcp: address ${def.TCP}: missing port in address`);
        return resolve();
      }
      const socket = tcpConnect({ host: match[1], port: Number(match[2]) });
      socket.setTimeout(timeoutMs);
      const finish = (status: CheckStatus, output: string) => {
        socket.destroy();
        this.setStatus(runtime, status, output);
        resolve();
      };
      socket.once('connect', () => finish('passing', `TCP connect ${def.TCP}: Success`));
      socket.once('timeout', () => finish('critical', `dial tcp ${def.TCP}: i/o timeout`));
      socket.once('error', (error) => finish('critical', `dial tcp ${def.TCP}: ${error.message}`));
    });
  }

  /**
   * agent/agent.go reapServicesInternal: every check that has been critical (by its critical
   * clock) for longer than its deregister delay removes its service, once per pass.
   */
  private reap(): void {
    const now = Date.now();
    const reaped = new Set<string>();
    for (const runtime of [...this.checks.values()]) {
      const serviceId = runtime.check.ServiceID;
      if (!serviceId || reaped.has(serviceId)) continue;
      if (runtime.deregisterAfterMs === undefined || runtime.criticalSince === undefined) continue;
      const criticalForMs = now - runtime.criticalSince;
      if (criticalForMs > runtime.deregisterAfterMs) {
        reaped.add(serviceId);
        this.history.push({ at: now, event: 'reaped', serviceId, checkId: runtime.check.CheckID, criticalForMs });
        this.removeService(serviceId);
      }
    }
  }

  // ---- health and catalog ---------------------------------------------------------------------

  private async blocking(
    url: URL,
    name: string,
    caller: Caller,
    res: ServerResponse,
    read: (name: string, visible: (s: AgentService) => boolean) => unknown[],
  ): Promise<void> {
    if (!(await this.awaitIndex(url, res, () => this.indexOf(name)))) return;
    res.setHeader('X-Consul-Index', String(this.indexOf(name)));
    res.setHeader('X-Consul-KnownLeader', 'true');
    res.setHeader('X-Consul-LastContact', '0');
    // agent/consul/acl_filter.go: an entry needs node:read on its node and service:read on its service.
    let filtered = false;
    const visible = (s: AgentService) => {
      const ok = this.allows(caller, 'node', this.nodeName, 'read') && this.allows(caller, 'service', s.Service, 'read');
      if (!ok) filtered = true;
      return ok;
    };
    const entries = read(name, visible);
    this.markFiltered(res, caller, filtered);
    sendJson(res, 200, entries);
  }

  /**
   * A blocking query's wait (agent/http.go parseWait, api-docs/features/blocking.mdx): `wait` is a
   * Go duration and `index` an unsigned integer, else 400 "Invalid wait time" / "Invalid index";
   * with `index` above 0 the answer waits until the index passes it or `wait` runs out (0 or less:
   * the default 5 m, at most 10 m, agent/consul/rpc.go RPCQueryTimeout; plus up to wait/16).
   * False when the request was answered here or is gone (the client left, the port closed).
   */
  private async awaitIndex(url: URL, res: ServerResponse, current: () => number): Promise<boolean> {
    let waitMs = DEFAULT_WAIT_MS;
    const waitParam = url.searchParams.get('wait');
    if (waitParam) {
      let parsed: number;
      try {
        parsed = parseGoDuration(waitParam);
      } catch {
        send(res, 400, 'Invalid wait time', 'text/plain');
        return false;
      }
      waitMs = parsed <= 0 ? DEFAULT_WAIT_MS : Math.min(parsed, MAX_WAIT_MS);
    }
    const indexParam = url.searchParams.get('index');
    let wanted = 0;
    if (indexParam) {
      // strconv.ParseUint(idx, 10, 64)
      if (!/^\d+$/.test(indexParam) || BigInt(indexParam) > 0xffffffffffffffffn) {
        send(res, 400, 'Invalid index', 'text/plain');
        return false;
      }
      wanted = Number(indexParam);
    }
    if (wanted > 0 && current() <= wanted) {
      // "A small random amount of additional wait time is added ... up to wait / 16."
      const deadline = Date.now() + waitMs + Math.floor(Math.random() * (waitMs / 16));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
        timer.unref();
        const check = () => {
          if (current() > wanted || !this.listening) done();
        };
        function done() {
          clearTimeout(timer);
          waiters.delete(check);
          res.off('close', done);
          resolve();
        }
        const waiters = this.waiters;
        waiters.add(check);
        res.once('close', done);
      });
      if (res.destroyed || !this.listening) return false;
    }
    return true;
  }

  /** agent/health_endpoint.go HealthServiceNodes. */
  private healthEntries(name: string, tags: string[], passing: boolean, visible: (s: AgentService) => boolean): unknown[] {
    const serf = {
      Node: this.nodeName,
      CheckID: 'serfHealth',
      Name: 'Serf Health Status',
      Status: 'passing',
      Notes: '',
      Output: 'Agent alive and reachable',
      ServiceID: '',
      ServiceName: '',
      ServiceTags: [],
      Type: '',
      CreateIndex: 1,
      ModifyIndex: 1,
    };
    return this.servicesNamed(name, tags)
      .filter(visible)
      .map((s) => {
        const checks = [...this.checks.values()].filter((c) => c.check.ServiceID === s.ID).map((c) => ({ ...c.check }));
        return { Node: this.node(), Service: { ...s, TaggedAddresses: taggedAddresses(s) }, Checks: [serf, ...checks] };
      })
      .filter((entry) => !passing || entry.Checks.every((c) => c.Status === 'passing'));
  }

  /** agent/catalog_endpoint.go CatalogServiceNodes. */
  private catalogEntries(name: string, url: URL, visible: (s: AgentService) => boolean): unknown[] {
    return this.servicesNamed(name, url.searchParams.getAll('tag'))
      .filter(visible)
      .map((s) => ({
        ID: NODE_ID,
        Node: this.nodeName,
        Address: '127.0.0.1',
        Datacenter: this.datacenter,
        TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' },
        NodeMeta: {},
        ServiceKind: '',
        ServiceID: s.ID,
        ServiceName: s.Service,
        ServiceTags: s.Tags,
        ServiceAddress: s.Address,
        ServiceTaggedAddresses: taggedAddresses(s),
        ServiceWeights: s.Weights,
        ServiceMeta: s.Meta,
        ServicePort: s.Port,
        ServiceEnableTagOverride: s.EnableTagOverride,
        CreateIndex: s.CreateIndex,
        ModifyIndex: s.ModifyIndex,
      }));
  }

  /**
   * Instances of a service carrying every tag asked for, compared case-insensitively
   * (agent/consul/state/catalog.go serviceTagFilter lower-cases both sides).
   */
  private servicesNamed(name: string, tags: string[]): AgentService[] {
    const wanted = tags.map((t) => t.toLowerCase());
    return [...this.services.values()].filter((s) => {
      if (s.Service !== name) return false;
      const have = new Set(s.Tags.map((t) => t.toLowerCase()));
      return wanted.every((t) => have.has(t));
    });
  }

  private node() {
    return {
      ID: NODE_ID,
      Node: this.nodeName,
      Address: '127.0.0.1',
      Datacenter: this.datacenter,
      TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' },
      Meta: { 'consul-network-segment': '' },
      CreateIndex: 1,
      ModifyIndex: 1,
    };
  }

  /** The index a query for `name` reports: the last change of that service, else of the whole table. */
  private indexOf(name: string): number {
    return this.serviceIndex.get(name) ?? this.index;
  }

  private bump(name: string): number {
    this.index = this.nextRaftIndex();
    this.serviceIndex.set(name, this.index);
    return this.index;
  }

  private nextRaftIndex(): number {
    this.raftIndex += 1;
    return this.raftIndex;
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  // ---- KV store ------------------------------------------------------------------------------
  //
  // https://developer.hashicorp.com/consul/api-docs/kv and the blocking-query rules of
  // https://developer.hashicorp.com/consul/api-docs/features/blocking: a single key reports its
  // ModifyIndex (the KV table's index when it does not exist), `?recurse` the highest ModifyIndex
  // or deletion under the prefix; a blocking query returns once that index passes `index`. Values
  // are base64 in JSON answers (null when empty). `restart()` wipes it like the rest of the state;
  // `setKey` / `deleteKey` change it directly, also while the port is closed (a write the clients
  // could not see).

  /** Sets a key as a PUT would, also while the port is closed; wakes blocking queries. */
  setKey(key: string, value: string | Buffer, flags = 0): number {
    const index = this.nextRaftIndex();
    const previous = this.kv.get(key);
    this.kv.set(key, {
      Key: key,
      Value: Buffer.isBuffer(value) ? value : Buffer.from(value),
      CreateIndex: previous?.CreateIndex ?? index,
      ModifyIndex: index,
      LockIndex: previous?.LockIndex ?? 0,
      Flags: flags,
    });
    this.kvDeleted.delete(key);
    this.kvIndex = index;
    this.wake();
    return index;
  }

  /** Deletes a key (or, with `recurse`, every key under it) as a DELETE would; true if something was deleted. */
  deleteKey(key: string, recurse = false): boolean {
    const doomed = recurse ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : this.kv.has(key) ? [key] : [];
    if (doomed.length === 0) return false;
    const index = this.nextRaftIndex();
    for (const k of doomed) {
      this.kv.delete(k);
      this.kvDeleted.set(k, index);
    }
    this.kvIndex = index;
    this.wake();
    return true;
  }

  /** The value of a key now, for assertions. */
  keyValue(key: string): string | undefined {
    return this.kv.get(key)?.Value.toString('utf8');
  }

  private async kvGet(url: URL, key: string, caller: Caller, res: ServerResponse): Promise<void> {
    // Consul tests these flags for presence: `?recurse` and `?recurse=true` alike.
    const recurse = url.searchParams.has('recurse');
    const raw = url.searchParams.has('raw');
    // agent/consul/kvs_endpoint.go: Get needs key:read on the key (403); List leaves out the keys
    // the caller may not read.
    if (!recurse) this.require(caller, 'key', key, 'read');
    const current = () => (recurse ? this.kvPrefixIndex(key) : this.kvKeyIndex(key));
    if (!(await this.awaitIndex(url, res, current))) return;
    res.setHeader('X-Consul-Index', String(current()));
    res.setHeader('X-Consul-KnownLeader', 'true');
    res.setHeader('X-Consul-LastContact', '0');
    const found = recurse
      ? [...this.kv.values()].filter((e) => e.Key.startsWith(key)).sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0))
      : [this.kv.get(key)].filter((e): e is KvEntry => e !== undefined);
    const entries = found.filter((e) => this.allows(caller, 'key', e.Key, 'read'));
    this.markFiltered(res, caller, entries.length !== found.length);
    if (entries.length === 0) return send(res, 404, '', 'text/plain');
    // ?raw applies to a single key only; a recursive read stays JSON.
    if (raw && !recurse) {
      const value = entries[0].Value;
      if (res.headersSent || res.destroyed) return;
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': value.length });
      return void res.end(value);
    }
    sendJson(
      res,
      200,
      entries.map((e) => ({
        LockIndex: e.LockIndex,
        Key: e.Key,
        Flags: e.Flags,
        Value: e.Value.length > 0 ? e.Value.toString('base64') : null,
        CreateIndex: e.CreateIndex,
        ModifyIndex: e.ModifyIndex,
      })),
    );
  }

  private kvPut(url: URL, key: string, body: Buffer, caller: Caller, res: ServerResponse): void {
    if (key === '') return send(res, 400, 'Missing key name', 'text/plain');
    if (url.searchParams.has('acquire') || url.searchParams.has('release')) {
      return send(res, 400, 'sessions (acquire/release) are not supported by this test server', 'text/plain');
    }
    if (body.length > MAX_KV_VALUE_BYTES) {
      return send(res, 413, `Value exceeds ${MAX_KV_VALUE_BYTES} byte limit`, 'text/plain');
    }
    const flagsParam = url.searchParams.get('flags');
    const flags = flagsParam ? Number(flagsParam) : 0;
    if (!Number.isInteger(flags) || flags < 0) return send(res, 400, 'Invalid flags', 'text/plain');
    this.require(caller, 'key', key, 'write');
    const casParam = url.searchParams.get('cas');
    if (casParam !== null) {
      const cas = Number(casParam);
      if (!/^\d+$/.test(casParam)) return send(res, 400, 'Invalid cas index', 'text/plain');
      // "If the index is 0, Consul will only put the key if it does not already exist. If the index is
      // non-zero, the key is only set if the index matches the ModifyIndex of that key."
      const existing = this.kv.get(key);
      if (cas === 0 ? existing !== undefined : existing?.ModifyIndex !== cas) return sendJson(res, 200, false);
    }
    this.setKey(key, body, flags);
    sendJson(res, 200, true);
  }

  private kvDelete(url: URL, key: string, caller: Caller, res: ServerResponse): void {
    const recurse = url.searchParams.has('recurse');
    if (key === '' && !recurse) return send(res, 400, 'Missing key name', 'text/plain');
    this.require(caller, 'key', key, 'write');
    const casParam = url.searchParams.get('cas');
    if (casParam !== null && !recurse) {
      if (!/^\d+$/.test(casParam)) return send(res, 400, 'Invalid cas index', 'text/plain');
      // "Unlike PUT, the index must be greater than 0 for Consul to take any action."
      const cas = Number(casParam);
      if (cas === 0 || this.kv.get(key)?.ModifyIndex !== cas) return sendJson(res, 200, false);
    }
    this.deleteKey(key, recurse);
    sendJson(res, 200, true);
  }

  /** A single key's index: its ModifyIndex, or the KV table's index when it does not exist (at least 1). */
  private kvKeyIndex(key: string): number {
    return this.kv.get(key)?.ModifyIndex ?? Math.max(1, this.kvIndex);
  }

  /** A prefix's index: the highest ModifyIndex or deletion under it, else the KV table's index (at least 1). */
  private kvPrefixIndex(prefix: string): number {
    if (prefix === '') return Math.max(1, this.kvIndex);
    let index = 0;
    for (const entry of this.kv.values()) if (entry.Key.startsWith(prefix)) index = Math.max(index, entry.ModifyIndex);
    for (const [key, deletedAt] of this.kvDeleted) if (key.startsWith(prefix)) index = Math.max(index, deletedAt);
    return index > 0 ? index : Math.max(1, this.kvIndex);
  }
}

function checkDefinition(c: Record<string, unknown>): CheckDefinition {
  const def: CheckDefinition = {};
  const str = (key: string) => (typeof c[key] === 'string' && c[key] !== '' ? (c[key] as string) : undefined);
  if (str('http')) def.HTTP = str('http');
  if (str('method')) def.Method = str('method');
  if (str('body')) def.Body = str('body');
  if (str('tcp')) def.TCP = str('tcp');
  if (str('grpc')) def.GRPC = str('grpc');
  if (Array.isArray(c.args)) def.Args = c.args as string[];
  if (c.header && typeof c.header === 'object') def.Header = c.header as Record<string, string[]>;
  for (const [key, field] of [
    ['interval', 'Interval'],
    ['timeout', 'Timeout'],
    ['ttl', 'TTL'],
    ['deregistercriticalserviceafter', 'DeregisterCriticalServiceAfter'],
  ] as const) {
    const value = c[key];
    if (value === undefined || value === '') continue;
    // Consul accepts a duration string, or a number of nanoseconds.
    def[field] = typeof value === 'number' ? `${value / 1e6}ms` : String(value);
    parseGoDuration(def[field]!);
  }
  if (c.tlsskipverify === true) def.TLSSkipVerify = true;
  return def;
}

/** structs.ServiceNode.IsSameService, for what this server keeps. */
function sameService(a: AgentService, b: AgentService): boolean {
  return (
    a.ID === b.ID &&
    a.Service === b.Service &&
    a.Address === b.Address &&
    a.Port === b.Port &&
    a.EnableTagOverride === b.EnableTagOverride &&
    JSON.stringify(a.Tags) === JSON.stringify(b.Tags) &&
    JSON.stringify(Object.entries(a.Meta).sort()) === JSON.stringify(Object.entries(b.Meta).sort()) &&
    JSON.stringify(a.Weights) === JSON.stringify(b.Weights)
  );
}

/** structs.HealthCheck.IsSame, for what this server keeps. */
function sameCheck(a: AgentCheck, b: AgentCheck): boolean {
  return (
    a.CheckID === b.CheckID &&
    a.Name === b.Name &&
    a.Status === b.Status &&
    a.Notes === b.Notes &&
    a.Output === b.Output &&
    a.ServiceID === b.ServiceID &&
    a.ServiceName === b.ServiceName &&
    JSON.stringify(a.ServiceTags) === JSON.stringify(b.ServiceTags) &&
    JSON.stringify(a.Definition) === JSON.stringify(b.Definition)
  );
}

/** Consul accepts PascalCase, camelCase and snake_case keys in service definitions. */
function normalizeKeys(value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) return value.map((v) => normalizeKeys(v, depth + 1));
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const k = key.replace(/_/g, '').toLowerCase();
    // Meta and Header maps keep their user-chosen keys.
    out[k] = k === 'meta' || k === 'header' ? v : normalizeKeys(v, depth + 1);
  }
  return out;
}

function taggedAddresses(s: AgentService) {
  return s.Address ? { lan_ipv4: { Address: s.Address, Port: s.Port }, wan_ipv4: { Address: s.Address, Port: s.Port } } : {};
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function stringRecord(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object') return {};
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
}

/** A stable, made-up AccessorID for a secret, so that messages never echo the secret. */
function accessorOf(secret: string): string {
  let h = 0x811c9dc5;
  for (const ch of secret) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  const hex = h.toString(16).padStart(8, '0');
  return `${hex}-0000-4000-8000-${hex}${hex.slice(0, 4)}`;
}

function bearer(header: string | undefined): string | undefined {
  return header?.startsWith('Bearer ') ? header.slice(7) : undefined;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(Buffer.concat(chunks)));
  });
}

function notAllowed(res: ServerResponse): void {
  send(res, 405, '', 'text/plain');
}

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  if (res.headersSent || res.destroyed) return;
  // Go's net/http sniffs error bodies as "text/plain; charset=utf-8".
  const type = contentType === 'text/plain' ? 'text/plain; charset=utf-8' : contentType;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), 'application/json');
}
