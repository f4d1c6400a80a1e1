import { EventEmitter } from 'node:events';
import { types } from 'node:util';
import { EVEN_WITH_OTHER_PROBLEMS, optionGroup } from '@nest-rollout/lifecycle';
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
  wholeMs,
} from './kv-source';

/** What this source passes to `kv.get` (node-consul's option names). */
export interface ConsulKvGetOptions {
  key: string;
  recurse?: boolean;
  dc?: string;
  index?: string;
  wait?: string;
  token?: string;
  timeout?: number;
  ctx?: EventEmitter;
}
/** The part of a node-consul client (npm `consul` v2: `new Consul(...)`) this source uses. */
export interface ConsulKvClient {
  kv: { get(options: ConsulKvGetOptions): Promise<unknown> };
  destroy(): void;
}
type ConsulClientConstructor = new (options: Record<string, unknown>) => ConsulKvClient;

interface ConsulResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
}
interface ConsulKvItem {
  Key?: string;
  /** Decoded from base64 by node-consul; null for a key without a value. */
  Value?: string | null;
}

export const DEFAULT_CONSUL_KV_SOURCE_OPTIONS = {
  url: 'http://127.0.0.1:8500',
  waitMs: 30_000,
  minQueryIntervalMs: 500,
} as const;
/** Consul's longest blocking query. */
const CONSUL_MAX_WAIT_MS = 600_000;
const d = DEFAULT_CONSUL_KV_SOURCE_OPTIONS;

const consulKey = (what: string) =>
  nonEmptyString('must be a non-empty string').refine(
    (key) => !key.startsWith('/'),
    `must not start with "/": Consul keys are relative (${what})`,
  );

const consulKvSourceSchema = optionGroup(
  {
    /**
     * The Consul agent's HTTP API (`http://` or `https://`, no path).
     * @default 'http://127.0.0.1:8500'
     */
    url: z
      .string({ error: 'must be an http:// or https:// URL without a path' })
      .refine(isHttpUrlWithoutPath, 'must be an http:// or https:// URL without a path')
      .optional(),
    /** A node-consul client to use instead of one made from `url`; it is not destroyed by `stop()`. */
    client: z
      .custom<ConsulKvClient>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as { kv?: { get?: unknown } }).kv?.get === 'function' &&
          typeof (value as { destroy?: unknown }).destroy === 'function',
        'must be a node-consul client (new Consul(...))',
      )
      .optional(),
    /** One key whose value is the whole document (YAML or JSON), e.g. `config/orders.yaml`. */
    key: consulKey('config/orders.yaml').optional(),
    /**
     * A prefix whose keys are one setting each: `<prefix>degrade/orders_list` = `true` gives
     * `{ degrade: { orders_list: true } }`. A trailing "/" is added when missing.
     */
    prefix: consulKey('config/orders/').optional(),
    /** ACL token with `key:read` on the key or prefix; sent as `X-Consul-Token`, never logged. */
    token: nonEmptyString('must be a non-empty string').optional(),
    /** Datacenter to read from. @default the agent's */
    datacenter: nonEmptyString('must be a non-empty string').optional(),
    /**
     * How long the agent may hold one blocking query (at most 10 minutes).
     * @default 30000
     */
    waitMs: wholeMs(1000, CONSUL_MAX_WAIT_MS).default(d.waitMs),
    /**
     * Minimum time between the starts of two queries, so that an agent answering at once (an index
     * reset, a value changing very often) is not polled in a hot loop.
     * @default 500
     */
    minQueryIntervalMs: wholeMs(0, 60_000).default(d.minQueryIntervalMs),
    ...kvSourceShape,
  },
  'options must be an object',
)
  .superRefine(exactlyOneOfKeyOrPrefix, EVEN_WITH_OTHER_PROBLEMS)
  .superRefine(clientReplaces('url'), EVEN_WITH_OTHER_PROBLEMS);

/** Options of {@link consulKvSource}: `key` or `prefix` is required. */
// An interface rather than an alias, so that declarations name it and keep each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface ConsulKvSourceOptions extends z.input<typeof consulKvSourceSchema> {}
type ResolvedConsulKvSourceOptions = z.output<typeof consulKvSourceSchema>;

/**
 * Dynamic configuration from Consul KV: the YAML/JSON document in one `key`, or one setting per
 * key under a `prefix`. Read once, then kept current by blocking queries on `X-Consul-Index`
 * (a change is read again `debounceMs` later, so a change of several keys applies as one). While
 * the agent is unreachable the source reports `unavailable` once, retries with backoff and jitter,
 * and once back reads everything again. Needs the `consul` package (an optional peer dependency).
 */
export function consulKvSource(options: ConsulKvSourceOptions): ConfigSource {
  const consul = {
    name: 'consul',
    range: '^2.0.0',
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a Consul source is used
    load: () => require('consul') as ConsulClientConstructor,
  };
  return createKvSource(
    'consulKvSource',
    consulKvSourceSchema,
    options,
    consul,
    (resolved, Consul) => new ConsulKvSource(resolved, Consul),
  );
}

/** One answer of the agent: what it found, and the X-Consul-Index it carried. */
type ConsulAnswer = KvSnapshot & { index: string | string[] | undefined };
/** A plain read, and the index the next blocking query waits on. */
type ConsulRead = KvSnapshot & { nextIndex: bigint };

class ConsulKvSource extends KvConfigSource<ConsulRead> {
  #client: ConsulKvClient | undefined;
  /** Whether this source made its client (and so destroys it). */
  private readonly ownsClient: boolean;
  private readonly options: Omit<ResolvedConsulKvSourceOptions, 'token' | 'client'>;
  /** Kept out of the enumerable state, so that logging or inspecting the source never shows it. */
  readonly #token: string | undefined;

  constructor(
    { token, client, ...options }: ResolvedConsulKvSourceOptions,
    private readonly Consul: ConsulClientConstructor | undefined,
  ) {
    // The agent, for messages: scheme and host only.
    const url = new URL(options.url ?? d.url);
    super('consul', 'Consul KV key', options, client ? 'Consul' : `Consul at ${url.protocol}//${url.host}`);
    this.options = options;
    this.#token = token;
    this.#client = client;
    this.ownsClient = client === undefined;
  }

  protected release(): void {
    if (this.#client && this.ownsClient) this.#client.destroy();
  }

  protected override redact(text: string): string {
    const token = this.#token;
    return token ? text.split(token).join('[token]') : text;
  }

  protected async read(): Promise<ConsulRead> {
    const answer = await this.query(0n);
    return { entries: answer.entries, nextIndex: nextIndex(0n, answer.index) };
  }

  /**
   * Blocking queries, one after the other, following Consul's rules for them: the next waits on
   * the index the last one returned, an index that goes backwards is reset (a snapshot restore,
   * an agent restarted without its data), and queries are rate-limited. `index` 0 means a plain read.
   */
  protected async follow(signal: AbortSignal, first: ConsulRead | undefined): Promise<void> {
    let index = first?.nextIndex ?? 0n;
    let attempt = 0;
    if (first === undefined) await this.backOff(++attempt);
    while (!signal.aborted) {
      const started = this.clock.now();
      try {
        let read = await this.query(index);
        let next = nextIndex(index, read.index);
        if (index > 0n && next !== index && this.options.debounceMs > 0) {
          // The index moved: something changed. Let the rest of a change of several keys land,
          // then read the result once.
          await this.clock.sleep(this.options.debounceMs, signal);
          if (signal.aborted) return;
          read = await this.query(0n);
          next = nextIndex(next, read.index);
        }
        if (signal.aborted) return;
        index = next;
        attempt = 0;
        this.handOn(read);
      } catch (error) {
        if (signal.aborted) return;
        // Once the agent is back, a plain read first: it catches up with what changed meanwhile.
        index = 0n;
        await this.retryLater(error, ++attempt);
        continue;
      }
      const elapsed = this.clock.now() - started;
      if (elapsed < this.options.minQueryIntervalMs) await this.clock.sleep(this.options.minQueryIntervalMs - elapsed, signal);
    }
  }

  /** One GET of the key or prefix, blocking on `index` when it is above 0. */
  private async query(index: bigint): Promise<ConsulAnswer> {
    const client = this.connect();
    const { waitMs, operationTimeoutMs } = this.options;
    const blocking = index > 0n;
    // Consul adds up to wait/16 to the wait; past that plus a margin the query is hung, not blocking.
    const timeoutMs = blocking ? waitMs + Math.ceil(waitMs / 16) + operationTimeoutMs : operationTimeoutMs;
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    let answer: unknown;
    try {
      answer = await this.bounded(
        `${this.target}: reading "${this.rules.path}"`,
        () =>
          client.kv.get({
            key: this.rules.path,
            ...(this.rules.mode === 'prefix' ? { recurse: true } : {}),
            ...(this.options.datacenter ? { dc: this.options.datacenter } : {}),
            ...(this.#token ? { token: this.#token } : {}),
            ...(blocking ? { index: index.toString(), wait: goDuration(waitMs) } : {}),
            timeout: timeoutMs,
            ctx,
          }),
        timeoutMs,
      );
      // papi (under node-consul) tells errors from results with `instanceof Error`, which fails for an
      // error made in another realm (Node's own socket errors seen from a VM context such as Jest's):
      // it then resolves with the error. A native error is never a valid answer here.
      if (types.isNativeError(answer)) throw answer;
    } catch (error) {
      ctx.emit('cancel');
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number') {
        const hint = status === 403 ? ': check that the token has key:read on it' : '';
        throw Object.assign(new Error(`HTTP ${status}, ${(error as Error).message}${hint}`), { statusCode: status });
      }
      throw error;
    }
    const [response, body] = answer as [ConsulResponse, unknown];
    // Consul answers a prefix with the keys the token may read and says so to a token (not to the
    // anonymous one): a document built from part of the keys is not the configuration.
    if ([response.headers['x-consul-results-filtered-by-acls']].flat()[0] === 'true') {
      throw new Error(
        `the agent left keys under "${this.rules.path}" out for lack of permission: check that the token has key:read on all of them`,
      );
    }
    return { entries: this.entriesOf(body), index: response.headers['x-consul-index'] };
  }

  private entriesOf(body: unknown): KvSnapshot['entries'] {
    const path = this.rules.path;
    if (this.rules.mode === 'key') {
      const item = (Array.isArray(body) ? body[0] : body) as ConsulKvItem | undefined;
      return item && item.Key === path ? [{ key: '', value: item.Value ?? '' }] : [];
    }
    if (!Array.isArray(body)) return [];
    return (body as ConsulKvItem[])
      .filter((item) => typeof item?.Key === 'string' && item.Key.startsWith(path))
      .map((item) => ({ key: item.Key!.slice(path.length), value: item.Value ?? '' }));
  }

  private connect(): ConsulKvClient {
    if (this.#client) return this.#client;
    const url = new URL(this.options.url ?? d.url);
    this.#client = new this.Consul!({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
      secure: url.protocol === 'https:',
    });
    return this.#client;
  }
}

/**
 * Consul's rules for the next blocking index: reset to 0 (a plain read) when it goes backwards,
 * never below 1 otherwise, since an index of 0 would make every following query return at once.
 */
export function nextIndex(previous: bigint, header: string | string[] | undefined): bigint {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || !/^\d+$/.test(raw)) {
    throw new Error('the answer has no X-Consul-Index header, so the key cannot be watched');
  }
  const index = BigInt(raw);
  if (index < previous) return 0n;
  return index > 0n ? index : 1n;
}

/** Consul's duration syntax ("10s", "1500ms"). */
function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function isHttpUrlWithoutPath(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && (url.pathname === '/' || url.pathname === '') && !url.search;
  } catch {
    return false;
  }
}
