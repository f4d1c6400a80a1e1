import { createServer, IncomingMessage, request, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * An in-memory Consul agent (a dev-mode agent: agent, catalog and health in one process) for
 * end-to-end tests, built from Consul's documented HTTP API rather than from what our driver sends:
 *
 *   PUT  /v1/agent/service/register            Name, ID, Tags, Address, Port, Meta, Check / Checks
 *   PUT  /v1/agent/service/deregister/:id      "If the service does not exist, no action is taken."
 *   GET  /v1/agent/services                    map of service id to service
 *   GET  /v1/agent/service/:id                 404 for an unknown id
 *   PUT  /v1/agent/check/pass|warn|fail/:id    TTL updates; 404 "Unknown check ID" for an unknown id
 *   GET  /v1/health/service/:name              ?passing ?tag (repeatable) ?index ?wait, X-Consul-Index
 *   GET  /v1/catalog/service/:name             ?tag ?index ?wait, X-Consul-Index
 *   GET  /v1/kv/:key                           ?recurse ?raw ?index ?wait, X-Consul-Index; 404 when nothing matches
 *   PUT  /v1/kv/:key                           raw body as the value, ?flags ?cas; answers true or false
 *   DELETE /v1/kv/:key                         ?recurse ?cas; answers true or false
 *
 * Checks behave as the agent's do: a check starts critical (unless `Status` says otherwise); an
 * HTTP check GETs its URL every `Interval` (first run at a random offset within the first interval,
 * as Consul staggers them) with `Timeout` (default 10 s): 2xx passing, 429 warning, anything else
 * critical; a TTL check turns critical when no update arrives within `TTL`. A service whose check
 * has been critical longer than `DeregisterCriticalServiceAfter` (raised to a 1 minute minimum) is
 * deregistered by a reaper that runs every 30 s. Blocking queries wait until the index passes the
 * one asked for or `wait` (default 5 m, max 10 m, plus up to wait/16) runs out.
 *
 * Test controls: `restart()` (an agent restarted without its data dir: services, checks and the
 * index are gone), `freeze()` (requests are accepted and never answered), `aclToken` (requests
 * without that `X-Consul-Token` get 403), and `timeScale`, which shortens only the reaper's period
 * and the deregister-critical delay (Consul's internal check_reap_interval and
 * check_deregister_interval_min, which its own tests shorten the same way), so that reaping fits in
 * a test. Deviations from a real agent: one node, one datacenter, no ACL policies (one token may do
 * everything), no `filter` expressions, no script/TCP/gRPC checks (accepted and left critical).
 *
 * The KV store follows https://developer.hashicorp.com/consul/api-docs/kv and the blocking-query
 * rules of https://developer.hashicorp.com/consul/api-docs/features/blocking: a single key reports
 * its ModifyIndex (the KV table's index when it does not exist), `?recurse` the highest ModifyIndex
 * or deletion under the prefix; a blocking query returns once that index passes `index`. Values
 * are base64 in JSON answers (null when empty). `restart()` wipes it like the rest of the state;
 * `setKey` / `deleteKey` change it directly, also while the port is closed (a write the clients
 * could not see). KV deviations: no sessions (`?acquire` / `?release` answer 400), no `?keys` /
 * `?separator` listing, no `?dc` other than the agent's, deletions remembered until `restart()`
 * (Consul reaps its tombstones after a while), and the 512 KB value limit is the only size check.
 */
export interface ConsulTestServerOptions {
  /** @default a free port */
  port?: number;
  /** Require this ACL token on every request. */
  aclToken?: string;
  /** Multiplies the reaper period (30 s) and the deregister-critical delay (min 1 m). @default 1 */
  timeScale?: number;
  /** @default 'test-node' */
  nodeName?: string;
}

interface CheckDefinition {
  HTTP?: string;
  Method?: string;
  Header?: Record<string, string[]>;
  TCP?: string;
  GRPC?: string;
  Args?: string[];
  Interval?: string;
  Timeout?: string;
  TTL?: string;
  DeregisterCriticalServiceAfter?: string;
  TLSSkipVerify?: boolean;
}

interface AgentCheck {
  Node: string;
  CheckID: string;
  Name: string;
  Status: 'passing' | 'warning' | 'critical';
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
  criticalSince: number | undefined;
  deregisterAfterMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
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
  readonly at: number;
}

const DATACENTER = 'dc1';
const NODE_ID = '40e4a748-2192-161a-0510-9bf59fe950b5';
const MAX_WAIT_MS = 10 * 60_000;
const DEFAULT_WAIT_MS = 5 * 60_000;
const REAP_INTERVAL_MS = 30_000;
const MIN_DEREGISTER_CRITICAL_MS = 60_000;
const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** "Values in the KV store cannot be larger than 512kb." */
const MAX_KV_VALUE_BYTES = 512 * 1024;
const INVALID_CHECK = 'Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval';

/** Go's time.ParseDuration for the units Consul accepts ("1h30m", "10s", "1500ms"). */
export function parseGoDuration(value: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (value === '0') return 0;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) throw new Error(`time: invalid duration "${value}"`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2]], 0);
}

export class ConsulTestServer {
  readonly requests: ConsulRequestRecord[] = [];
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
  private readonly timeScale: number;
  private readonly nodeName: string;

  constructor(private readonly options: ConsulTestServerOptions = {}) {
    this.portNumber = options.port;
    this.timeScale = options.timeScale ?? 1;
    this.nodeName = options.nodeName ?? 'test-node';
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
    this.reaper = setInterval(() => this.reap(), Math.max(10, REAP_INTERVAL_MS * this.timeScale));
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

  /** The agent's services (what GET /v1/agent/services answers), for assertions. */
  agentServices(): Record<string, AgentService> {
    return Object.fromEntries([...this.services].map(([id, s]) => [id, { ...s }]));
  }

  checkStatus(checkId: string): AgentCheck['Status'] | undefined {
    return this.checks.get(checkId)?.check.Status;
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
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, at: Date.now() });
    if (this.isFrozen) {
      this.frozen.add(res);
      res.once('close', () => this.frozen.delete(res));
      return;
    }
    const rawBody = await readBody(req);
    const body = rawBody.toString('utf8');
    if (this.options.aclToken !== undefined) {
      const token = req.headers['x-consul-token'] ?? url.searchParams.get('token') ?? bearer(req.headers.authorization);
      if (token !== this.options.aclToken) return send(res, 403, 'Permission denied', 'text/plain');
    }
    const path = url.pathname;
    const method = req.method ?? 'GET';
    let match: RegExpMatchArray | null;
    try {
      if (path === '/v1/agent/service/register') return method === 'PUT' ? this.register(body, res) : send(res, 405, '', 'text/plain');
      if ((match = path.match(/^\/v1\/agent\/service\/deregister\/(.+)$/))) {
        return method === 'PUT' ? this.deregister(decodeURIComponent(match[1]), res) : send(res, 405, '', 'text/plain');
      }
      if (path === '/v1/agent/services')
        return method === 'GET' ? sendJson(res, 200, this.agentServices()) : send(res, 405, '', 'text/plain');
      if ((match = path.match(/^\/v1\/agent\/service\/([^/]+)$/)) && method === 'GET') {
        const service = this.services.get(decodeURIComponent(match[1]));
        return service
          ? sendJson(res, 200, { ...service, ContentHash: String(service.ModifyIndex) })
          : send(res, 404, `unknown service ID: ${match[1]}`, 'text/plain');
      }
      if ((match = path.match(/^\/v1\/agent\/check\/(pass|warn|fail)\/(.+)$/))) {
        if (method !== 'PUT') return send(res, 405, '', 'text/plain');
        const status = match[1] === 'pass' ? 'passing' : match[1] === 'warn' ? 'warning' : 'critical';
        return this.updateTtl(decodeURIComponent(match[2]), status, url.searchParams.get('note') ?? '', res);
      }
      if ((match = path.match(/^\/v1\/health\/service\/([^/]+)$/)) && method === 'GET') {
        return await this.blocking(url, decodeURIComponent(match[1]), res, (name) => this.healthEntries(name, url));
      }
      if ((match = path.match(/^\/v1\/catalog\/service\/([^/]+)$/)) && method === 'GET') {
        return await this.blocking(url, decodeURIComponent(match[1]), res, (name) => this.catalogEntries(name, url));
      }
      if (path.startsWith('/v1/kv/')) {
        const key = decodeURIComponent(path.slice('/v1/kv/'.length));
        if (method === 'GET') return await this.kvGet(url, key, res);
        if (method === 'PUT') return this.kvPut(url, key, rawBody, res);
        if (method === 'DELETE') return this.kvDelete(url, key, res);
        return send(res, 405, '', 'text/plain');
      }
    } catch (error) {
      return send(res, 500, (error as Error).message, 'text/plain');
    }
    send(res, 404, '', 'text/plain');
  }

  private register(raw: string, res: ServerResponse): void {
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
    const rawChecks: Record<string, unknown>[] = Array.isArray(def.checks)
      ? (def.checks as Record<string, unknown>[])
      : def.check && typeof def.check === 'object'
        ? [def.check as Record<string, unknown>]
        : [];
    const single = !Array.isArray(def.checks);
    const planned: { runtime: CheckRuntime; existing: CheckRuntime | undefined }[] = [];
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
      if (!valid) return send(res, 400, INVALID_CHECK, 'text/plain');
      const checkId = typeof c.checkid === 'string' && c.checkid !== '' ? c.checkid : single ? `service:${id}` : `service:${id}:${i + 1}`;
      const dcsa = definition.DeregisterCriticalServiceAfter ? parseGoDuration(definition.DeregisterCriticalServiceAfter) : 0;
      planned.push({
        existing: this.checks.get(checkId),
        runtime: {
          check: {
            Node: this.nodeName,
            CheckID: checkId,
            Name: typeof c.name === 'string' && c.name !== '' ? c.name : `Service '${name}' check`,
            Status: (status as AgentCheck['Status']) || 'critical',
            Notes: typeof c.notes === 'string' ? c.notes : '',
            Output: '',
            ServiceID: id,
            ServiceName: name,
            ServiceTags: stringArray(def.tags),
            Type:
              definition.TTL !== undefined
                ? 'ttl'
                : definition.HTTP
                  ? 'http'
                  : definition.TCP
                    ? 'tcp'
                    : definition.GRPC
                      ? 'grpc'
                      : 'script',
            Definition: definition,
            CreateIndex: 0,
            ModifyIndex: 0,
          },
          criticalSince: undefined,
          // Consul raises a delay below its minimum instead of refusing it.
          deregisterAfterMs: dcsa > 0 ? Math.max(dcsa, MIN_DEREGISTER_CRITICAL_MS) * this.timeScale : undefined,
          timer: undefined,
        },
      });
    }
    const index = this.bump(name);
    const previous = this.services.get(id);
    if (previous && previous.Service !== name) this.bump(previous.Service);
    this.services.set(id, {
      ID: id,
      Service: name,
      Tags: stringArray(def.tags),
      Meta: stringRecord(def.meta),
      Port: typeof def.port === 'number' ? def.port : 0,
      Address: address,
      EnableTagOverride: def.enabletagoverride === true,
      Weights: { Passing: 1, Warning: 1 },
      Datacenter: DATACENTER,
      CreateIndex: previous?.CreateIndex ?? index,
      ModifyIndex: index,
    });
    // Checks of this service that the new definition no longer has are removed.
    const keep = new Set(planned.map((p) => p.runtime.check.CheckID));
    for (const [checkId, runtime] of this.checks) {
      if (runtime.check.ServiceID === id && !keep.has(checkId)) this.removeCheck(checkId);
    }
    const now = Date.now();
    for (const { runtime, existing } of planned) {
      if (existing) {
        if (existing.timer) clearTimeout(existing.timer);
        // Re-registering keeps the status the check had, rather than flapping it to critical.
        runtime.check.Status = existing.check.Status;
        runtime.check.Output = existing.check.Output;
        runtime.criticalSince = existing.criticalSince;
        runtime.check.CreateIndex = existing.check.CreateIndex;
      } else {
        runtime.check.CreateIndex = index;
        runtime.criticalSince = runtime.check.Status === 'critical' ? now : undefined;
      }
      runtime.check.ModifyIndex = index;
      this.checks.set(runtime.check.CheckID, runtime);
      this.schedule(runtime, true);
    }
    this.wake();
    send(res, 200, '', 'application/json');
  }

  private deregister(id: string, res: ServerResponse): void {
    this.removeService(id);
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

  private updateTtl(checkId: string, status: AgentCheck['Status'], note: string, res: ServerResponse): void {
    const runtime = this.checks.get(checkId);
    if (!runtime)
      return send(res, 404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`, 'text/plain');
    if (runtime.check.Definition.TTL === undefined)
      return send(res, 500, `CheckID "${checkId}" does not have associated TTL`, 'text/plain');
    this.setStatus(runtime, status, note);
    this.schedule(runtime, false);
    send(res, 200, '', 'application/json');
  }

  private setStatus(runtime: CheckRuntime, status: AgentCheck['Status'], output: string): void {
    if (!this.checks.has(runtime.check.CheckID)) return;
    const changed = runtime.check.Status !== status || runtime.check.Output !== output;
    if (status === 'critical') runtime.criticalSince ??= Date.now();
    else runtime.criticalSince = undefined;
    if (!changed) return;
    runtime.check.Status = status;
    runtime.check.Output = output;
    runtime.check.ModifyIndex = this.bump(runtime.check.ServiceName);
    this.wake();
  }

  /** TTL: arm the expiry. HTTP: the next run (the first at a random offset within the interval). */
  private schedule(runtime: CheckRuntime, first: boolean): void {
    if (runtime.timer) clearTimeout(runtime.timer);
    const def = runtime.check.Definition;
    if (def.TTL !== undefined) {
      runtime.timer = setTimeout(() => this.setStatus(runtime, 'critical', 'TTL expired'), parseGoDuration(def.TTL));
      runtime.timer.unref();
      return;
    }
    if (!def.HTTP || !def.Interval) return;
    const intervalMs = Math.max(1000, parseGoDuration(def.Interval));
    const delayMs = first ? Math.floor(Math.random() * intervalMs) : intervalMs;
    runtime.timer = setTimeout(() => {
      void this.runHttpCheck(runtime).then(() => {
        if (this.checks.get(runtime.check.CheckID) === runtime && this.listening) this.schedule(runtime, false);
      });
    }, delayMs);
    runtime.timer.unref();
  }

  private runHttpCheck(runtime: CheckRuntime): Promise<void> {
    const def = runtime.check.Definition;
    const timeoutMs = def.Timeout ? parseGoDuration(def.Timeout) : DEFAULT_CHECK_TIMEOUT_MS;
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (status: AgentCheck['Status'], output: string) => {
        if (done) return;
        done = true;
        this.setStatus(runtime, status, output);
        resolve();
      };
      const req = request(
        def.HTTP!,
        { method: def.Method || 'GET', agent: false, headers: { 'User-Agent': 'Consul Health Check', Accept: 'text/plain, text/*, */*' } },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          const output = `HTTP ${def.Method || 'GET'} ${def.HTTP}: ${code} ${res.statusMessage ?? ''}`;
          res.once('end', () => finish(code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical', output));
          res.once('error', () => finish('critical', output));
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)));
      req.on('error', (error) => finish('critical', `Get "${def.HTTP}": ${error.message}`));
      req.end();
    });
  }

  /** Deregisters services whose check has been critical for longer than its DeregisterCriticalServiceAfter. */
  private reap(): void {
    const now = Date.now();
    for (const runtime of [...this.checks.values()]) {
      if (runtime.deregisterAfterMs === undefined || runtime.criticalSince === undefined) continue;
      if (now - runtime.criticalSince > runtime.deregisterAfterMs) this.removeService(runtime.check.ServiceID);
    }
  }

  private async blocking(url: URL, name: string, res: ServerResponse, read: (name: string) => unknown[]): Promise<void> {
    if (!(await this.awaitIndex(url, res, () => this.indexOf(name)))) return;
    res.setHeader('X-Consul-Index', String(this.indexOf(name)));
    res.setHeader('X-Consul-KnownLeader', 'true');
    res.setHeader('X-Consul-LastContact', '0');
    sendJson(res, 200, read(name));
  }

  /**
   * A blocking query's wait: with `index` above 0, until `current()` passes it or `wait` (default
   * 5 m, max 10 m, plus up to wait/16) runs out. False when the request was answered here (a bad
   * parameter) or is gone (the client left, the port closed).
   */
  private async awaitIndex(url: URL, res: ServerResponse, current: () => number): Promise<boolean> {
    const indexParam = url.searchParams.get('index');
    let waitMs = DEFAULT_WAIT_MS;
    const waitParam = url.searchParams.get('wait');
    if (waitParam) {
      try {
        waitMs = Math.min(parseGoDuration(/^\d+$/.test(waitParam) ? `${waitParam}s` : waitParam), MAX_WAIT_MS);
      } catch (error) {
        send(res, 400, `Invalid wait time: ${(error as Error).message}`, 'text/plain');
        return false;
      }
    }
    const wanted = indexParam ? Number(indexParam) : 0;
    if (indexParam && !Number.isFinite(wanted)) {
      send(res, 400, 'Invalid index', 'text/plain');
      return false;
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

  // ---- KV store ------------------------------------------------------------------------------

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

  private async kvGet(url: URL, key: string, res: ServerResponse): Promise<void> {
    // Consul tests these flags for presence: `?recurse` and `?recurse=true` alike.
    const recurse = url.searchParams.has('recurse');
    const raw = url.searchParams.has('raw');
    const current = () => (recurse ? this.kvPrefixIndex(key) : this.kvKeyIndex(key));
    if (!(await this.awaitIndex(url, res, current))) return;
    res.setHeader('X-Consul-Index', String(current()));
    res.setHeader('X-Consul-KnownLeader', 'true');
    res.setHeader('X-Consul-LastContact', '0');
    const entries = recurse
      ? [...this.kv.values()].filter((e) => e.Key.startsWith(key)).sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0))
      : [this.kv.get(key)].filter((e): e is KvEntry => e !== undefined);
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

  private kvPut(url: URL, key: string, body: Buffer, res: ServerResponse): void {
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

  private kvDelete(url: URL, key: string, res: ServerResponse): void {
    const recurse = url.searchParams.has('recurse');
    if (key === '' && !recurse) return send(res, 400, 'Missing key name', 'text/plain');
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

  private healthEntries(name: string, url: URL): unknown[] {
    const passingParam = url.searchParams.has('passing') ? url.searchParams.get('passing') : null;
    const passing = passingParam !== null && (passingParam === '' || /^(1|t|true)$/i.test(passingParam));
    const tags = url.searchParams.getAll('tag');
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
    return [...this.services.values()]
      .filter((s) => s.Service === name && tags.every((t) => s.Tags.includes(t)))
      .map((s) => {
        const checks = [...this.checks.values()].filter((c) => c.check.ServiceID === s.ID).map((c) => ({ ...c.check }));
        return { Node: this.node(), Service: { ...s, TaggedAddresses: taggedAddresses(s) }, Checks: [serf, ...checks] };
      })
      .filter((entry) => !passing || entry.Checks.every((c) => c.Status === 'passing'));
  }

  private catalogEntries(name: string, url: URL): unknown[] {
    const tags = url.searchParams.getAll('tag');
    return [...this.services.values()]
      .filter((s) => s.Service === name && tags.every((t) => s.Tags.includes(t)))
      .map((s) => ({
        ID: NODE_ID,
        Node: this.nodeName,
        Address: '127.0.0.1',
        Datacenter: DATACENTER,
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

  private node() {
    return {
      ID: NODE_ID,
      Node: this.nodeName,
      Address: '127.0.0.1',
      Datacenter: DATACENTER,
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
}

function checkDefinition(c: Record<string, unknown>): CheckDefinition {
  const def: CheckDefinition = {};
  const str = (key: string) => (typeof c[key] === 'string' && c[key] !== '' ? (c[key] as string) : undefined);
  if (str('http')) def.HTTP = str('http');
  if (str('method')) def.Method = str('method');
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

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value), 'application/json');
}
