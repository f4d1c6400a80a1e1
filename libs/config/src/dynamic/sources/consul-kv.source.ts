import { EventEmitter } from 'node:events';
import { types } from 'node:util';
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
  .superRefine((options, ctx) => {
    if (rejected(ctx, 'client', 'url')) return;
    if (options.client !== undefined && options.url !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'cannot be combined with client: configure the client itself' });
    }
  }, EVEN_WITH_OTHER_PROBLEMS);

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
  const resolved = parseSourceOptions('consulKvSource', consulKvSourceSchema, options);
  const Consul =
    resolved.client === undefined
      ? loadOptional(
          'consul',
          '^2.0.0',
          'consulKvSource()',
          // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when a Consul source is used
          () => require('consul') as ConsulClientConstructor,
        )
      : undefined;
  return new ConsulKvSource(resolved, Consul);
}

class ConsulKvSource implements ConfigSource {
  readonly kind = 'consul';
  readonly location: string;
  private readonly rules: KvDocumentRules;
  private readonly gate: KvUpdateGate;
  private readonly clock: LifecycleClock;
  private readonly retry: ResolvedRetry;
  /** The agent, for messages: scheme and host only. */
  private readonly target: string;
  private readonly stopping = new AbortController();
  #client: ConsulKvClient | undefined;
  /** Whether this source made its client (and so destroys it). */
  private readonly ownsClient: boolean;
  private onUpdate: ((update: ConfigSourceUpdate) => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly options: Omit<ResolvedConsulKvSourceOptions, 'token' | 'client'>;
  /** Kept out of the enumerable state, so that logging or inspecting the source never shows it. */
  readonly #token: string | undefined;

  constructor(
    { token, client, ...options }: ResolvedConsulKvSourceOptions,
    private readonly Consul: ConsulClientConstructor | undefined,
  ) {
    this.options = options;
    this.#token = token;
    const mode = options.key !== undefined ? 'key' : 'prefix';
    const path = options.key ?? withTrailingSlash(options.prefix!);
    this.location = `consul:${path}`;
    this.rules = {
      kind: this.kind,
      location: this.location,
      mode,
      path,
      format: options.format,
      optional: options.optional,
      keyNoun: 'Consul KV key',
    };
    this.gate = new KvUpdateGate((snapshot) => updateFromSnapshot(this.rules, snapshot));
    this.clock = options.clock ?? systemClock;
    this.retry = options.retry;
    this.#client = client;
    this.ownsClient = client === undefined;
    const url = new URL(options.url ?? d.url);
    this.target = client ? 'Consul' : `Consul at ${url.protocol}//${url.host}`;
  }

  async start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate> {
    if (this.onUpdate) throw new Error(`${this.location}: the source is already started`);
    this.onUpdate = onUpdate;
    const signal = this.stopping.signal;
    let first: ConfigSourceUpdate;
    let index = 0n;
    try {
      const read = await this.query(0n, signal);
      index = nextIndex(0n, read.index);
      first = this.gate.current(read);
    } catch (error) {
      first = this.gate.failed(this.failure(error)) ?? { ok: false, error: this.failure(error) };
    }
    this.running = this.run(signal, index);
    return first;
  }

  async reload(): Promise<ConfigSourceUpdate> {
    try {
      return this.gate.current(await this.query(0n, this.stopping.signal));
    } catch (error) {
      return { ok: false, error: this.failure(error) };
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    if (this.#client && this.ownsClient) this.#client.destroy();
  }

  /**
   * Blocking queries, one after the other, following Consul's rules for them: the next waits on
   * the index the last one returned, an index that goes backwards is reset (a snapshot restore,
   * an agent restarted without its data), and queries are rate-limited. `index` 0 means a plain read.
   */
  private async run(signal: AbortSignal, startIndex: bigint): Promise<void> {
    let index = startIndex;
    let attempt = 0;
    if (startIndex === 0n) await this.clock.sleep(backoffDelayMs(this.retry, ++attempt), signal);
    while (!signal.aborted) {
      const started = this.clock.now();
      try {
        let read = await this.query(index, signal);
        let next = nextIndex(index, read.index);
        if (index > 0n && next !== index && this.options.debounceMs > 0) {
          // The index moved: something changed. Let the rest of a change of several keys land,
          // then read the result once.
          await this.clock.sleep(this.options.debounceMs, signal);
          if (signal.aborted) return;
          read = await this.query(0n, signal);
          next = nextIndex(next, read.index);
        }
        if (signal.aborted) return;
        index = next;
        attempt = 0;
        this.emit(this.gate.next(read));
      } catch (error) {
        if (signal.aborted) return;
        this.emit(this.gate.failed(this.failure(error)));
        // Once the agent is back, a plain read first: it catches up with what changed meanwhile.
        index = 0n;
        await this.clock.sleep(backoffDelayMs(this.retry, ++attempt), signal);
        continue;
      }
      const elapsed = this.clock.now() - started;
      if (elapsed < this.options.minQueryIntervalMs) await this.clock.sleep(this.options.minQueryIntervalMs - elapsed, signal);
    }
  }

  /** One GET of the key or prefix, blocking on `index` when it is above 0. */
  private async query(index: bigint, signal: AbortSignal): Promise<KvSnapshot & { index: string | string[] | undefined }> {
    const client = this.connect();
    const { waitMs, operationTimeoutMs } = this.options;
    const blocking = index > 0n;
    // Consul adds up to wait/16 to the wait; past that plus a margin the query is hung, not blocking.
    const timeoutMs = blocking ? waitMs + Math.ceil(waitMs / 16) + operationTimeoutMs : operationTimeoutMs;
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    let answer: unknown;
    try {
      answer = await bounded(
        this.clock,
        timeoutMs,
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
        signal,
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

  private failure(error: unknown): ConfigSourceError {
    const token = this.#token;
    return unavailableError(this.location, `${this.target} did not answer for "${this.rules.path}"`, error, (text) =>
      token ? text.split(token).join('[token]') : text,
    );
  }

  private emit(update: ConfigSourceUpdate | undefined): void {
    if (!update || this.stopping.signal.aborted) return;
    try {
      this.onUpdate?.(update);
    } catch (error) {
      // A failing subscriber must not stop the queries (or take the process down with it).
      process.emitWarning(error instanceof Error ? error : String(error), { code: 'CONFIG_SOURCE_LISTENER_FAILED' });
    }
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

function withTrailingSlash(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

function isHttpUrlWithoutPath(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && (url.pathname === '/' || url.pathname === '') && !url.search;
  } catch {
    return false;
  }
}
