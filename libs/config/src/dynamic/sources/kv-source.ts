import {
  backoffDelayMs,
  backoffOptions,
  bounded,
  DEFAULT_BACKOFF_POLICY,
  describeError,
  parseModuleOptions,
  rejected,
  systemClock,
} from '@nest-rollout/lifecycle';
import type { BackoffPolicy, LifecycleClock } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import { ConfigError, ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSource, ConfigSourceUpdate } from './config-source';
import { DocumentFormat, Parsed, parseConfigDocument, parseValue } from './parse-document';

/*
 * What the etcd and Consul KV sources share: their common options, how a key or a prefix of keys
 * becomes one document, the rules for which reads and failures are handed on (each change once, an
 * outage once), and the source itself but for how it reads and follows changes (KvConfigSource).
 */

export const DEFAULT_KV_SOURCE_OPTIONS = {
  format: 'yaml',
  optional: false,
  operationTimeoutMs: 3_000,
  debounceMs: 50,
  retry: DEFAULT_BACKOFF_POLICY,
} as const;

const MAX_TIMER_MS = 2 ** 31 - 1;
const d = DEFAULT_KV_SOURCE_OPTIONS;

export function wholeMs(min: number, max = MAX_TIMER_MS) {
  const message = `must be a whole number of milliseconds from ${min} to ${max}`;
  return z.number({ error: message }).int(message).min(min, message).max(max, message);
}

export const flag = z.boolean({ error: 'must be a boolean' });

export function nonEmptyString(message: string) {
  return z.string({ error: message }).min(1, message);
}

const clockSchema = z.custom<LifecycleClock>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    ['now', 'sleep', 'setTimer'].every((m) => typeof (value as Record<string, unknown>)[m] === 'function'),
  'must be a LifecycleClock ({ now, sleep, setTimer })',
);

/** The options every KV source has, as zod shape entries. */
export const kvSourceShape = {
  /**
   * Format of the value (`key`) or of each value (`prefix`): YAML also reads JSON.
   * @default 'yaml'
   */
  format: z.enum(['yaml', 'json'], { error: 'must be "yaml" or "json"' }).default(d.format),
  /**
   * A missing key (or a prefix without keys) is an empty document instead of a `missing` failure.
   * @default false
   */
  optional: flag.default(d.optional),
  /**
   * Bound of one read, and of starting a watch.
   * @default 3000
   */
  operationTimeoutMs: wholeMs(1).default(d.operationTimeoutMs),
  /**
   * Quiet time after a change before it is read and handed on: the keys of one change, written one
   * after the other, arrive as one update.
   * @default 50
   */
  debounceMs: wholeMs(0, 60_000).default(d.debounceMs),
  /**
   * Backoff of reconnection attempts while the backend is unreachable.
   * @default 500 ms ×2 up to 30000, jitter 0.5
   */
  retry: backoffOptions.prefault({}),
  /** Time source (tests pass a ManualClock). @default the system clock */
  clock: clockSchema.optional(),
};

/** `key` xor `prefix`, as a zod refinement on a source's options. */
export function exactlyOneOfKeyOrPrefix(options: { key?: string; prefix?: string }, ctx: z.RefinementCtx<unknown>): void {
  if (rejected(ctx, 'key', 'prefix')) return;
  if ((options.key === undefined) === (options.prefix === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [options.key === undefined ? 'key' : 'prefix'],
      message:
        options.key === undefined
          ? 'set either key (one document) or prefix (one key per setting)'
          : 'cannot be combined with key: set either key (one document) or prefix (one key per setting)',
    });
  }
}

/**
 * A `client` given to a source replaces the options its own client would be made from, as a zod
 * refinement: `.superRefine(clientReplaces('url'), EVEN_WITH_OTHER_PROBLEMS)`.
 */
export function clientReplaces<Option extends string>(...options: Option[]) {
  return (value: { readonly client?: unknown } & { readonly [name in Option]?: unknown }, ctx: z.RefinementCtx<unknown>): void => {
    if (rejected(ctx, 'client') || value.client === undefined) return;
    for (const option of options) {
      if (value[option] !== undefined && !rejected(ctx, option)) {
        ctx.addIssue({ code: 'custom', path: [option], message: 'cannot be combined with client: configure the client itself' });
      }
    }
  };
}

/** The npm package a source's client comes from: an optional peer dependency, loaded only when no client is given. */
export interface KvClientPackage<Client> {
  readonly name: string;
  /** The range to install, for the message when it is missing. */
  readonly range: string;
  readonly load: () => Client;
}

/**
 * What a KV source factory does: parses its options (`parseSourceOptions`), loads the client
 * package unless the options bring a client, and makes the source from both.
 */
export function createKvSource<S extends z.ZodType, Client>(
  factory: string,
  schema: S,
  input: unknown,
  clientPackage: KvClientPackage<Client>,
  create: (options: z.output<S>, Client: Client | undefined) => ConfigSource,
): ConfigSource {
  const resolved = parseSourceOptions(factory, schema, input);
  const given = (resolved as { client?: unknown }).client !== undefined;
  return create(resolved, given ? undefined : loadOptional(clientPackage.name, clientPackage.range, `${factory}()`, clientPackage.load));
}

/**
 * Parses a source factory's options. Sources are part of DynamicConfigModule's options, so their
 * problems come as that module's options error, every one at once, each named `<factory>().<option>`.
 */
export function parseSourceOptions<S extends z.ZodType>(factory: string, schema: S, input: unknown): z.output<S> {
  return parseModuleOptions(
    schema,
    input,
    (problems) => new DynamicConfigOptionsError(problems.map((problem) => `${factory}().${problem}`)),
  );
}

/**
 * Loads an optional peer dependency when a source that needs it is created; a missing package fails
 * the boot with the command that fixes it.
 */
export function loadOptional<T>(packageName: string, range: string, source: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e?.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${packageName}'`)) {
      throw new ConfigError(
        'CONFIG_SOURCE_CLIENT_MISSING',
        `${source} needs the ${packageName} package, an optional peer dependency of @nest-rollout/config: npm install ${packageName}@"${range}"`,
      );
    }
    throw error;
  }
}

// ---- documents ------------------------------------------------------------------------------

/** One key as read: for a prefix source, `key` is relative to the prefix. */
export interface KvEntry {
  readonly key: string;
  readonly value: string;
}

/** What one read found. */
export interface KvSnapshot {
  readonly entries: readonly KvEntry[];
}

/**
 * The document built from one key per setting: the path below the prefix, split at "/", is where
 * the value goes (`degrade/orders_list` = `true` → `{ degrade: { orders_list: true } }`); each value
 * is parsed on its own (a YAML scalar, or a whole YAML/JSON document). Empty folder keys (Consul's
 * `config/orders/`) are skipped. A key both holding a value and having keys below it is a problem.
 */
export function documentFromEntries(entries: readonly KvEntry[], format: DocumentFormat, fullKey: (key: string) => string): Parsed {
  const root: Record<string, unknown> = {};
  const branches = new WeakSet<object>([root]);
  const leafKeys = new Map<string, string>();
  const problems: string[] = [];
  for (const entry of [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    if ((entry.key === '' || entry.key.endsWith('/')) && entry.value === '') continue;
    const name = `"${fullKey(entry.key)}"`;
    const segments = entry.key.split('/');
    if (segments.some((s) => s === '')) {
      problems.push(`${name}: has an empty path segment (a leading, trailing or double "/")`);
      continue;
    }
    if (segments.includes('__proto__')) {
      problems.push(`${name}: "__proto__" cannot be a setting name`);
      continue;
    }
    const parsed = entry.value === '' ? ({ ok: true, value: null } as const) : parseValue(entry.value, format);
    if (!parsed.ok) {
      problems.push(`${name} ${parsed.problem}`);
      continue;
    }
    let node = root;
    let conflict: string | undefined;
    for (let i = 0; i < segments.length - 1 && conflict === undefined; i++) {
      const next = node[segments[i]];
      if (next === undefined) {
        const branch: Record<string, unknown> = {};
        branches.add(branch);
        node[segments[i]] = branch;
        node = branch;
      } else if (typeof next === 'object' && next !== null && branches.has(next)) {
        node = next as Record<string, unknown>;
      } else {
        conflict = leafKeys.get(segments.slice(0, i + 1).join('/'));
      }
    }
    const last = segments[segments.length - 1];
    if (conflict === undefined && node[last] !== undefined) conflict = leafKeys.get(entry.key) ?? firstKeyBelow(leafKeys, entry.key);
    if (conflict !== undefined) {
      problems.push(`${name} conflicts with "${fullKey(conflict)}": a key holding a value cannot have keys below it`);
      continue;
    }
    node[last] = parsed.value;
    leafKeys.set(entry.key, entry.key);
  }
  return problems.length > 0 ? { ok: false, problem: problems.join('; ') } : { ok: true, value: root };
}

function firstKeyBelow(leafKeys: Map<string, string>, key: string): string {
  for (const leaf of leafKeys.keys()) if (leaf.startsWith(`${key}/`)) return leaf;
  return key;
}

/** How a KV source turns what it read into an update. */
export interface KvDocumentRules {
  readonly kind: string;
  readonly location: string;
  readonly mode: 'key' | 'prefix';
  /** The key, or the prefix (ending in "/"). */
  readonly path: string;
  readonly format: DocumentFormat;
  readonly optional: boolean;
  /** "etcd key", "Consul KV key": how messages name a key. */
  readonly keyNoun: string;
}

export function updateFromSnapshot(rules: KvDocumentRules, snapshot: KvSnapshot): ConfigSourceUpdate {
  if (snapshot.entries.length === 0) {
    if (rules.optional) return { ok: true, value: {} };
    const message =
      rules.mode === 'key'
        ? `${rules.keyNoun} "${rules.path}" does not exist: create it, or make the source optional`
        : `there is no ${rules.keyNoun} under "${rules.path}": create one, or make the source optional`;
    return { ok: false, error: new ConfigSourceError('missing', rules.location, message) };
  }
  const parsed =
    rules.mode === 'key'
      ? parseConfigDocument(snapshot.entries[0].value, rules.format)
      : documentFromEntries(snapshot.entries, rules.format, (key) => `${rules.path}${key}`);
  if (parsed.ok) return { ok: true, value: parsed.value };
  const message =
    rules.mode === 'key'
      ? `${rules.keyNoun} "${rules.path}" ${parsed.problem}; the last good configuration stays in force until it is fixed`
      : `${parsed.problem}; the last good configuration stays in force until it is fixed`;
  return { ok: false, error: new ConfigSourceError('parse', rules.location, message) };
}

/**
 * Decides what reaches the dynamic configuration: a read only when it differs from the last one
 * handed on (a watch wakes up for changes elsewhere, a blocking query times out unchanged), an
 * outage once until the backend answers again, and after an outage the current document even if
 * it did not change, so the consumer knows the source is back.
 */
export class KvUpdateGate {
  private delivered: string | undefined;
  private down = false;

  constructor(private readonly toUpdate: (snapshot: KvSnapshot) => ConfigSourceUpdate) {}

  /** A read the caller will hand on itself (the first read, `reload()`). */
  current(snapshot: KvSnapshot): ConfigSourceUpdate {
    this.delivered = fingerprint(snapshot);
    return this.toUpdate(snapshot);
  }

  /** A read by the watch: the update to hand on, or undefined when nothing changed. */
  next(snapshot: KvSnapshot): ConfigSourceUpdate | undefined {
    const print = fingerprint(snapshot);
    if (!this.down && print === this.delivered) return undefined;
    this.down = false;
    this.delivered = print;
    return this.toUpdate(snapshot);
  }

  /** The backend could not be reached: the update to hand on, or undefined if this outage was already reported. */
  failed(error: ConfigSourceError): ConfigSourceUpdate | undefined {
    if (this.down) return undefined;
    this.down = true;
    return { ok: false, error };
  }
}

function fingerprint(snapshot: KvSnapshot): string {
  return JSON.stringify(snapshot.entries.map((e) => [e.key, e.value]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

/** The 'unavailable' error of a source, with the cause's message (never a credential: `redact` removes it). */
export function unavailableError(
  location: string,
  what: string,
  error: unknown,
  redact: (text: string) => string = (t) => t,
): ConfigSourceError {
  const cause = describeError(error);
  const detail = redact(`${cause.code && !cause.message.includes(cause.code) ? `${cause.code}: ` : ''}${cause.message}`);
  return new ConfigSourceError(
    'unavailable',
    location,
    `${what} (${detail}); retrying with backoff, the last good configuration stays in force`,
  );
}

/** The resolved options every KV source has (`kvSourceShape`), and its key or prefix. */
export interface KvSourceSettings {
  readonly key?: string;
  readonly prefix?: string;
  readonly format: DocumentFormat;
  readonly optional: boolean;
  readonly operationTimeoutMs: number;
  readonly retry: BackoffPolicy;
  readonly clock?: LifecycleClock;
}

/**
 * A KV source but for its backend: the first read and `reload()`, each change handed on once and an
 * outage reported once, backoff between attempts, calls bounded in time, and `stop()`. A source adds
 * how it reads (`read`), how it follows changes until it stops (`follow`), and what it releases.
 */
export abstract class KvConfigSource<Read extends KvSnapshot> implements ConfigSource {
  readonly location: string;
  protected readonly rules: KvDocumentRules;
  protected readonly clock: LifecycleClock;
  protected readonly stopping = new AbortController();
  private readonly gate: KvUpdateGate;
  private readonly retry: BackoffPolicy;
  private readonly operationTimeoutMs: number;
  private onUpdate: ((update: ConfigSourceUpdate) => void) | undefined;
  private running: Promise<void> | undefined;

  /**
   * @param kind `etcd` or `consul`: the source's kind, and the scheme of its location.
   * @param keyNoun How messages name a key ("etcd key").
   * @param target Where the backend is, for messages: never a credential.
   */
  protected constructor(
    readonly kind: string,
    keyNoun: string,
    settings: KvSourceSettings,
    protected readonly target: string,
  ) {
    const mode = settings.key !== undefined ? 'key' : 'prefix';
    const path = settings.key ?? withTrailingSlash(settings.prefix!);
    this.location = `${kind}:${path}`;
    this.rules = { kind, location: this.location, mode, path, format: settings.format, optional: settings.optional, keyNoun };
    this.gate = new KvUpdateGate((snapshot) => updateFromSnapshot(this.rules, snapshot));
    this.clock = settings.clock ?? systemClock;
    this.retry = settings.retry;
    this.operationTimeoutMs = settings.operationTimeoutMs;
  }

  async start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate> {
    if (this.onUpdate) throw new Error(`${this.location}: the source is already started`);
    this.onUpdate = onUpdate;
    const signal = this.stopping.signal;
    let first: ConfigSourceUpdate;
    let read: Read | undefined;
    try {
      read = await this.read();
      first = this.gate.current(read);
    } catch (error) {
      read = undefined;
      first = this.gate.failed(this.failure(error)) ?? { ok: false, error: this.failure(error) };
    }
    this.running = this.follow(signal, read);
    return first;
  }

  async reload(): Promise<ConfigSourceUpdate> {
    try {
      return this.gate.current(await this.read());
    } catch (error) {
      return { ok: false, error: this.failure(error) };
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    this.release();
  }

  /** One read of the key or prefix, bounded (`bounded`) so that it ends when the source stops. */
  protected abstract read(): Promise<Read>;

  /**
   * Follows changes until `signal` aborts, handing each read on (`handOn`) and, after a failure,
   * reporting it and backing off (`retryLater`). `first` is the first read, undefined if it failed.
   */
  protected abstract follow(signal: AbortSignal, first: Read | undefined): Promise<void>;

  /** Releases what the source made (its client), once it stopped. */
  protected abstract release(): void;

  /** Removes what a message must not show (a token) from a backend's error message. */
  protected redact(text: string): string {
    return text;
  }

  /** A read by the watch, handed on if it differs from the last one (or ends an outage). */
  protected handOn(read: KvSnapshot): void {
    this.emit(this.gate.next(read));
  }

  /** After a failed attempt: reports it (once per outage), then waits the backoff for retry number `attempt`. */
  protected async retryLater(error: unknown, attempt: number): Promise<void> {
    this.emit(this.gate.failed(this.failure(error)));
    await this.backOff(attempt);
  }

  /** Waits the backoff for retry number `attempt` (1 for the first); resolves early when the source stops. */
  protected backOff(attempt: number): Promise<void> {
    return this.clock.sleep(backoffDelayMs(this.retry, attempt), this.stopping.signal);
  }

  /**
   * Runs a backend call, rejecting after `timeoutMs` or as soon as the source stops, whatever the
   * call does: an unreachable backend cannot hold a read, a watch or `stop()` longer than the bound.
   * `what` names the call in the error.
   */
  protected bounded<T>(what: string, call: () => Promise<T>, timeoutMs = this.operationTimeoutMs): Promise<T> {
    return bounded(this.clock, timeoutMs, call, {
      signal: this.stopping.signal,
      timedOut: () => new Error(`${what} did not answer within ${timeoutMs} ms`),
      aborted: () => new Error(`${what}: stopped`),
    });
  }

  private failure(error: unknown): ConfigSourceError {
    return unavailableError(this.location, `${this.target} did not answer for "${this.rules.path}"`, error, (text) => this.redact(text));
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

function withTrailingSlash(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}
