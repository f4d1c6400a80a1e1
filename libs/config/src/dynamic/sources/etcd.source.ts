import { EVEN_WITH_OTHER_PROBLEMS, etcdClientOptions, optionGroup } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import type { ConfigSource } from './config-source';
import {
  clientReplaces,
  createKvSource,
  exactlyOneOfKeyOrPrefix,
  KvConfigSource,
  KvSnapshot,
  kvSourceShape,
  nonEmptyString,
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
  .superRefine(clientReplaces('endpoints', 'auth', 'tls'), EVEN_WITH_OTHER_PROBLEMS);

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
  const etcd3 = {
    name: 'etcd3',
    range: '^1.1.0',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when an etcd source is used
    load: () => (require('etcd3') as { Etcd3: EtcdClientConstructor }).Etcd3,
  };
  return createKvSource('etcdSource', etcdSourceSchema, options, etcd3, (resolved, Etcd3) => new EtcdSource(resolved, Etcd3));
}

type EtcdRead = KvSnapshot & { revision: string };

class EtcdSource extends KvConfigSource<EtcdRead> {
  /** Private like the credentials: the client holds them too. */
  #client: EtcdSourceClient | undefined;
  private readonly options: Omit<ResolvedEtcdSourceOptions, 'auth' | 'client'>;
  /** Whether this source made its client (and so closes it). */
  private readonly ownsClient: boolean;
  /** Kept out of the enumerable state, so that logging or inspecting the source never shows the password. */
  readonly #auth: ResolvedEtcdSourceOptions['auth'];

  constructor(
    { auth, client, ...options }: ResolvedEtcdSourceOptions,
    private readonly Etcd3: EtcdClientConstructor | undefined,
  ) {
    // Where etcd is, for messages: the endpoints without credentials.
    const target = client ? 'etcd' : `etcd at ${(options.endpoints ?? DEFAULT_ETCD_ENDPOINTS).map(withoutCredentials).join(',')}`;
    super('etcd', 'etcd key', options, target);
    this.options = options;
    this.#auth = auth;
    this.#client = client;
    this.ownsClient = client === undefined;
  }

  protected release(): void {
    if (this.#client && this.ownsClient) this.#client.close();
  }

  /** Watch, and after any failure: report it once, back off, read again, watch again. */
  protected async follow(signal: AbortSignal, first: EtcdRead | undefined): Promise<void> {
    let revision = first?.revision;
    let attempt = first === undefined ? 1 : 0;
    if (attempt > 0) await this.backOff(attempt);
    while (!signal.aborted) {
      try {
        if (revision === undefined) {
          const read = await this.read();
          this.handOn(read);
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
        else await this.backOff(++attempt);
      } catch (error) {
        if (signal.aborted) return;
        revision = undefined;
        await this.retryLater(error, ++attempt);
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
      watcher = await this.bounded(`${this.target}: creating the watch`, () => creating);
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
            const read = await this.read();
            if (!signal.aborted) this.handOn(read);
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

  protected async read(): Promise<EtcdRead> {
    const client = this.connect();
    const path = this.rules.path;
    const response = await this.bounded(`${this.target}: reading "${path}"`, () =>
      this.rules.mode === 'key' ? client.get(path).exec() : client.getAll().prefix(path).exec(),
    );
    const entries = response.kvs.map((kv) => ({
      key: this.rules.mode === 'key' ? '' : kv.key.toString('utf8').slice(path.length),
      value: kv.value.toString('utf8'),
    }));
    return { entries, revision: response.header.revision };
  }

  private connect(): EtcdSourceClient {
    this.#client ??= new this.Etcd3!(
      etcdClientOptions({
        endpoints: this.options.endpoints ?? DEFAULT_ETCD_ENDPOINTS,
        auth: this.#auth,
        tls: this.options.tls,
        operationTimeoutMs: this.options.operationTimeoutMs,
        maxRetryDelayMs: this.options.retry.maxDelayMs,
      }),
    );
    return this.#client;
  }
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
