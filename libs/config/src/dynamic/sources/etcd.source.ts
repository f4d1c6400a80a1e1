import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, rejected, systemClock } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import type { ConfigSourceError } from '../../config.errors';
import type { ConfigSource, ConfigSourceUpdate } from './config-source';
import {
  backoffDelayMs,
  bounded,
  exactlyOneOfKeyOrPrefix,
  KvDocumentRules,
  KvSnapshot,
  kvSourceShape,
  KvUpdateGate,
  loadOptional,
  nonEmptyString,
  parseSourceOptions,
  ResolvedRetry,
  unavailableError,
  updateFromSnapshot,
} from './kv-source';

/** The part of an etcd3 client (npm `etcd3` v1: `new Etcd3(...)`) this source uses. */
export interface EtcdSourceClient {
  get(key: string): { exec(): Promise<EtcdRangeResponse> };
  getAll(): { prefix(prefix: string): { exec(): Promise<EtcdRangeResponse> } };
  watch(): EtcdWatchBuilder;
  close(): void;
}
interface EtcdRangeResponse {
  header: { revision: string };
  kvs: { key: Buffer; value: Buffer }[];
}
interface EtcdWatchBuilder {
  key(key: string): EtcdWatchBuilder;
  prefix(prefix: string): EtcdWatchBuilder;
  startRevision(revision: string): EtcdWatchBuilder;
  create(): Promise<EtcdWatcher>;
}
interface EtcdWatcher {
  on(event: 'data', handler: (response: { events: unknown[] }) => void): unknown;
  on(event: 'disconnected', handler: (error: Error) => void): unknown;
  on(event: 'error', handler: (error: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
  cancel(): Promise<void>;
}
type EtcdClientConstructor = new (options: Record<string, unknown>) => EtcdSourceClient;

const DEFAULT_ETCD_ENDPOINTS = ['http://127.0.0.1:2379'];
/** A watch that lived this long was healthy: the next break starts the backoff over. */
const STABLE_WATCH_MS = 5_000;

const pem = z.union([z.string(), z.instanceof(Buffer)], { error: 'must be a PEM string or Buffer' });

const etcdSourceSchema = optionGroup(
  {
    /**
     * etcd members to connect to (`http://` or `https://`).
     * @default ['http://127.0.0.1:2379']
     */
    endpoints: z
      .array(z.string({ error: 'must be an http:// or https:// URL' }).refine(isHttpUrl, 'must be an http:// or https:// URL'), {
        error: 'must be an array of URLs',
      })
      .min(1, 'must list at least one endpoint')
      .readonly()
      .optional(),
    /** An etcd3 client to use instead of one made from `endpoints`; it is not closed by `stop()`. */
    client: z
      .custom<EtcdSourceClient>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          ['get', 'getAll', 'watch', 'close'].every((m) => typeof (value as Record<string, unknown>)[m] === 'function'),
        'must be an etcd3 client (new Etcd3(...))',
      )
      .optional(),
    /** One key whose value is the whole document (YAML or JSON). */
    key: nonEmptyString('must be a non-empty string').optional(),
    /**
     * A prefix whose keys are one setting each: `<prefix>degrade/orders_list` = `true` gives
     * `{ degrade: { orders_list: true } }`. A trailing "/" is added when missing.
     */
    prefix: nonEmptyString('must be a non-empty string').optional(),
    /** etcd user, when authentication is enabled. */
    auth: optionGroup(
      {
        username: nonEmptyString('must be a non-empty string'),
        password: z.string({ error: 'must be a string' }),
      },
      'must be { username, password }',
    ).optional(),
    /** TLS to etcd (`https://` endpoints): the CA, and a client certificate for mutual TLS. */
    tls: optionGroup({ ca: pem.optional(), cert: pem.optional(), key: pem.optional() })
      .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), 'cert and key go together (mutual TLS needs both)')
      .optional(),
    ...kvSourceShape,
  },
  'options must be an object',
)
  .superRefine(exactlyOneOfKeyOrPrefix, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'client') || options.client === undefined) return;
    for (const option of ['endpoints', 'auth', 'tls'] as const) {
      if (options[option] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [option], message: 'cannot be combined with client: configure the client itself' });
      }
    }
  }, EVEN_WITH_OTHER_PROBLEMS);

/** Options of {@link etcdSource}: `key` or `prefix` is required. */
// An interface rather than an alias, so that declarations name it and keep each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface EtcdSourceOptions extends z.input<typeof etcdSourceSchema> {}
type ResolvedEtcdSourceOptions = z.output<typeof etcdSourceSchema>;

/**
 * Dynamic configuration from etcd: the YAML/JSON document in one `key`, or one setting per key
 * under a `prefix`. Read once, then kept current by an etcd watch (each burst of changes read
 * again as one update). While etcd is unreachable the source reports `unavailable` once, retries
 * with backoff and jitter, and once back reads everything again, so that what changed meanwhile
 * is not missed. Needs the `etcd3` package (an optional peer dependency).
 */
export function etcdSource(options: EtcdSourceOptions): ConfigSource {
  const resolved = parseSourceOptions('etcdSource', etcdSourceSchema, options);
  const Etcd3 =
    resolved.client === undefined
      ? loadOptional(
          'etcd3',
          '^1.1.0',
          'etcdSource()',
          // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when an etcd source is used
          () => (require('etcd3') as { Etcd3: EtcdClientConstructor }).Etcd3,
        )
      : undefined;
  return new EtcdSource(resolved, Etcd3);
}

class EtcdSource implements ConfigSource {
  readonly kind = 'etcd';
  readonly location: string;
  private readonly rules: KvDocumentRules;
  private readonly gate: KvUpdateGate;
  private readonly clock: LifecycleClock;
  private readonly retry: ResolvedRetry;
  /** Where etcd is, for messages: endpoints without credentials. */
  private readonly target: string;
  private readonly stopping = new AbortController();
  /** Private like the credentials: the client holds them too. */
  #client: EtcdSourceClient | undefined;
  private onUpdate: ((update: ConfigSourceUpdate) => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly options: Omit<ResolvedEtcdSourceOptions, 'auth' | 'client'>;
  /** Whether this source made its client (and so closes it). */
  private readonly ownsClient: boolean;
  /** Kept out of the enumerable state, so that logging or inspecting the source never shows the password. */
  readonly #auth: ResolvedEtcdSourceOptions['auth'];

  constructor(
    { auth, client, ...options }: ResolvedEtcdSourceOptions,
    private readonly Etcd3: EtcdClientConstructor | undefined,
  ) {
    this.options = options;
    this.#auth = auth;
    const mode = options.key !== undefined ? 'key' : 'prefix';
    const path = options.key ?? withTrailingSlash(options.prefix!);
    this.location = `etcd:${path}`;
    this.rules = {
      kind: this.kind,
      location: this.location,
      mode,
      path,
      format: options.format,
      optional: options.optional,
      keyNoun: 'etcd key',
    };
    this.gate = new KvUpdateGate((snapshot) => updateFromSnapshot(this.rules, snapshot));
    this.clock = options.clock ?? systemClock;
    this.retry = options.retry;
    this.#client = client;
    this.ownsClient = client === undefined;
    this.target = client ? 'etcd' : `etcd at ${(options.endpoints ?? DEFAULT_ETCD_ENDPOINTS).map(withoutCredentials).join(',')}`;
  }

  async start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate> {
    if (this.onUpdate) throw new Error(`${this.location}: the source is already started`);
    this.onUpdate = onUpdate;
    const signal = this.stopping.signal;
    let first: ConfigSourceUpdate;
    let revision: string | undefined;
    try {
      const read = await this.read(signal);
      revision = read.revision;
      first = this.gate.current(read);
    } catch (error) {
      first = this.gate.failed(this.readFailure(error)) ?? { ok: false, error: this.readFailure(error) };
    }
    this.running = this.run(signal, revision);
    return first;
  }

  async reload(): Promise<ConfigSourceUpdate> {
    try {
      return this.gate.current(await this.read(this.stopping.signal));
    } catch (error) {
      return { ok: false, error: this.readFailure(error) };
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    if (this.#client && this.ownsClient) this.#client.close();
  }

  /** Watch, and after any failure: report it once, back off, read again, watch again. */
  private async run(signal: AbortSignal, firstRevision: string | undefined): Promise<void> {
    let revision = firstRevision;
    let attempt = firstRevision === undefined ? 1 : 0;
    if (attempt > 0) await this.clock.sleep(backoffDelayMs(this.retry, attempt), signal);
    while (!signal.aborted) {
      try {
        if (revision === undefined) {
          const read = await this.read(signal);
          this.emit(this.gate.next(read));
          revision = read.revision;
        }
        const watchedAt = this.clock.now();
        const broken = await this.watch(revision, signal);
        // Read everything again before watching again rather than letting etcd3 resume the watch
        // from its last revision: an etcd restored from a snapshot or restarted with a wiped data
        // dir starts over at a lower revision, where a resumed watch would wait, silent.
        revision = undefined;
        if (broken === undefined) return;
        // A watch that breaks right after it starts, again and again, must not spin against etcd.
        if (this.clock.now() - watchedAt >= STABLE_WATCH_MS) attempt = 0;
        else await this.clock.sleep(backoffDelayMs(this.retry, ++attempt), signal);
      } catch (error) {
        if (signal.aborted) return;
        this.emit(this.gate.failed(this.readFailure(error)));
        revision = undefined;
        await this.clock.sleep(backoffDelayMs(this.retry, ++attempt), signal);
      }
    }
  }

  /**
   * Watches from `fromRevision` until the watch breaks (resolves with why) or the source stops
   * (resolves with undefined). Each burst of events is read again once, `debounceMs` after its last
   * event, so a change of several keys is applied as one.
   */
  private async watch(fromRevision: string, signal: AbortSignal): Promise<unknown> {
    const client = this.connect();
    const builder = this.rules.mode === 'key' ? client.watch().key(this.rules.path) : client.watch().prefix(this.rules.path);
    const creating = builder.startRevision((BigInt(fromRevision) + 1n).toString()).create();
    let watcher: EtcdWatcher;
    try {
      watcher = await bounded(this.clock, this.options.operationTimeoutMs, `${this.target}: creating the watch`, () => creating, signal);
    } catch (error) {
      // A watcher that connects after we gave up on it would otherwise live on, reconnecting by itself.
      creating.then((late) => late.cancel()).catch(() => undefined);
      if (signal.aborted) return undefined;
      throw error;
    }
    let cancelTimer: (() => void) | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await new Promise<unknown>((resolve) => {
        if (signal.aborted) return resolve(undefined);
        onAbort = () => resolve(undefined);
        signal.addEventListener('abort', onAbort, { once: true });
        let dirty = false;
        let reading = false;
        const schedule = () => {
          cancelTimer?.();
          cancelTimer = this.clock.setTimer(this.options.debounceMs, () => void readAgain());
        };
        const readAgain = async () => {
          cancelTimer = undefined;
          if (reading) return;
          reading = true;
          dirty = false;
          try {
            const read = await this.read(signal);
            if (!signal.aborted) this.emit(this.gate.next(read));
          } catch (error) {
            return resolve(error);
          } finally {
            reading = false;
          }
          // Events that came during the read: read once more.
          if (dirty) schedule();
        };
        watcher.on('data', (response) => {
          // Progress notifications carry no event.
          if (!response.events?.length) return;
          dirty = true;
          if (!reading) schedule();
        });
        watcher.on('disconnected', (error) => resolve(error ?? new Error('the etcd watch was disconnected')));
        watcher.on('error', (error) => resolve(error ?? new Error('the etcd watch failed')));
      });
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
      cancelTimer?.();
      watcher.removeAllListeners('data');
      watcher.removeAllListeners('disconnected');
      watcher.removeAllListeners('error');
      // A watcher left behind would reconnect by itself; an error from cancelling a broken one is moot.
      watcher.on('error', () => undefined);
      void watcher.cancel().catch(() => undefined);
    }
  }

  private async read(signal: AbortSignal): Promise<KvSnapshot & { revision: string }> {
    const client = this.connect();
    const path = this.rules.path;
    const response = await bounded(
      this.clock,
      this.options.operationTimeoutMs,
      `${this.target}: reading "${path}"`,
      () => (this.rules.mode === 'key' ? client.get(path).exec() : client.getAll().prefix(path).exec()),
      signal,
    );
    const entries = response.kvs.map((kv) => ({
      key: this.rules.mode === 'key' ? '' : kv.key.toString('utf8').slice(path.length),
      value: kv.value.toString('utf8'),
    }));
    return { entries, revision: response.header.revision };
  }

  private connect(): EtcdSourceClient {
    if (this.#client) return this.#client;
    const options = this.options;
    const tls = options.tls;
    const timeoutMs = options.operationTimeoutMs;
    this.#client = new this.Etcd3!({
      hosts: [...(options.endpoints ?? DEFAULT_ETCD_ENDPOINTS)],
      ...(tls ? { credentials: { rootCertificate: toBuffer(tls.ca), privateKey: toBuffer(tls.key), certChain: toBuffer(tls.cert) } } : {}),
      ...(this.#auth ? { auth: { username: this.#auth.username, password: this.#auth.password } } : {}),
      dialTimeout: timeoutMs,
      // One attempt per call: etcd3's default retries and circuit breaker would stack a second retry
      // schedule under this source's backoff and delay the catch-up once etcd is back.
      faultHandling: { host: () => runOnce, global: runOnce, watchBackoff: constantBackoff(200) },
      grpcOptions: {
        // Reconnect soon after etcd comes back rather than after gRPC's default backoff (up to 120 s).
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': Math.max(1000, options.retry.maxDelayMs),
        // Pings on the open watch stream find a half-open connection (a frozen etcd, a dropped NAT
        // entry) that would otherwise leave the watch silent forever. etcd refuses pings more often than every 5 s.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': Math.max(1000, timeoutMs),
      },
      // Unary calls get a deadline; the watch stream must not, or it would end with it.
      defaultCallOptions: (context: { isStream: boolean }) => (context.isStream ? {} : { deadline: new Date(Date.now() + timeoutMs) }),
    });
    return this.#client;
  }

  private readFailure(error: unknown): ConfigSourceError {
    return unavailableError(this.location, `${this.target} did not answer for "${this.rules.path}"`, error);
  }

  private emit(update: ConfigSourceUpdate | undefined): void {
    if (!update || this.stopping.signal.aborted) return;
    try {
      this.onUpdate?.(update);
    } catch (error) {
      // A failing subscriber must not stop the watch (or take the process down with it).
      process.emitWarning(error instanceof Error ? error : String(error), { code: 'CONFIG_SOURCE_LISTENER_FAILED' });
    }
  }
}

/** etcd3's fault-handling policy, run once. */
const runOnce = {
  execute: <T>(fn: (context: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal, attempt: 0 })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
};

/** A short fixed delay for etcd3's own watch-stream reconnection: this source's backoff is the one that grows. */
function constantBackoff(durationMs: number) {
  const backoff = { duration: durationMs, next: () => backoff };
  return backoff;
}

function withTrailingSlash(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function withoutCredentials(endpoint: string): string {
  const url = new URL(endpoint);
  return `${url.protocol}//${url.host}`;
}

function toBuffer(value: string | Buffer | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  return Buffer.isBuffer(value) ? value : Buffer.from(value);
}
