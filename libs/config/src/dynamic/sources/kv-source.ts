import { describeError, EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { parseDocument, YAMLError } from 'yaml';
import { z } from 'zod';
import { ConfigError, ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSourceUpdate } from './config-source';

/*
 * What the etcd and Consul KV sources share: their common options, how a key or a prefix of keys
 * becomes one document, backoff with jitter, bounded calls, and the rules for which reads and
 * failures are handed on (each change once, an outage once).
 */

/** How values are parsed: YAML (which also reads JSON) or strict JSON. */
export type KvValueFormat = 'yaml' | 'json';

/** Backoff of reconnection attempts while the backend is unreachable. */
export interface KvSourceRetryOptions {
  /** @default 500 */
  readonly initialDelayMs?: number;
  /** @default 30000 */
  readonly maxDelayMs?: number;
  /** @default 2 */
  readonly multiplier?: number;
  /**
   * Share of each delay that is random (0 to 1), so that a fleet that lost the backend together
   * does not come back in lockstep.
   * @default 0.5
   */
  readonly jitter?: number;
}

export const DEFAULT_KV_SOURCE_OPTIONS = {
  format: 'yaml',
  optional: false,
  operationTimeoutMs: 3_000,
  debounceMs: 50,
  retry: { initialDelayMs: 500, maxDelayMs: 30_000, multiplier: 2, jitter: 0.5 },
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

const retrySchema = optionGroup({
  initialDelayMs: wholeMs(1).default(d.retry.initialDelayMs),
  maxDelayMs: wholeMs(1).default(d.retry.maxDelayMs),
  multiplier: z.number({ error: 'must be a number >= 1' }).min(1, 'must be a number >= 1').default(d.retry.multiplier),
  jitter: z
    .number({ error: 'must be a number from 0 to 1' })
    .min(0, 'must be a number from 0 to 1')
    .max(1, 'must be a number from 0 to 1')
    .default(d.retry.jitter),
}).superRefine((retry, ctx) => {
  if (rejected(ctx, 'initialDelayMs', 'maxDelayMs') || retry.maxDelayMs >= retry.initialDelayMs) return;
  ctx.addIssue({ code: 'custom', path: ['maxDelayMs'], message: 'must be at least retry.initialDelayMs' });
}, EVEN_WITH_OTHER_PROBLEMS);

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
  retry: retrySchema.prefault({}),
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

export interface ResolvedRetry {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: number;
}

/**
 * Delay before retry number `attempt` (1 for the first): `initial * multiplier^(attempt-1)`, capped
 * at `maxDelayMs`, then shortened by up to `jitter` of itself.
 */
export function backoffDelayMs(retry: ResolvedRetry, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * Math.pow(retry.multiplier, Math.max(0, attempt - 1)));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(1, Math.round(base - base * retry.jitter * r));
}

/**
 * Runs `call`, rejecting after `timeoutMs` or as soon as `signal` aborts, whatever the call does:
 * an unreachable backend cannot hold a read, a watch or `stop()` longer than the bound.
 */
export function bounded<T>(
  clock: LifecycleClock,
  timeoutMs: number,
  what: string,
  call: () => Promise<T>,
  signal: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (action: () => void) => {
      if (settled) return;
      settled = true;
      cancelTimer();
      signal.removeEventListener('abort', onAbort);
      action();
    };
    const onAbort = () => finish(() => reject(new Error(`${what}: stopped`)));
    const cancelTimer = clock.setTimer(timeoutMs, () => finish(() => reject(new Error(`${what} did not answer within ${timeoutMs} ms`))));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve()
      .then(call)
      .then(
        (value) => finish(() => resolve(value)),
        (error: unknown) => finish(() => reject(error)),
      );
  });
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

type Parsed = { ok: true; value: unknown } | { ok: false; problem: string };

/**
 * One value as YAML or JSON. A problem names what is wrong and where (line, column), never the text
 * around it: a value may hold a password or a token.
 */
export function parseValue(text: string, format: KvValueFormat): Parsed {
  if (format === 'json') {
    try {
      return { ok: true, value: JSON.parse(text) as unknown };
    } catch (error) {
      // JSON.parse's message may quote the text; the YAML parser, reading it with YAML's JSON schema,
      // locates most errors by line and column instead.
      const [located] = parseDocument(text, { schema: 'json', prettyErrors: false }).errors;
      if (located) return { ok: false, problem: `is not valid JSON (${describeYamlError(located, text)})` };
      const offset = /at position (\d+)/.exec((error as Error).message)?.[1];
      return { ok: false, problem: `is not valid JSON${offset === undefined ? '' : ` (at ${lineAndColumn(text, Number(offset))})`}` };
    }
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const [error] = doc.errors;
  if (error) return { ok: false, problem: `is not valid YAML (${describeYamlError(error, text)})` };
  try {
    // A document of comments only has no contents: an empty value.
    return { ok: true, value: doc.contents === null ? null : doc.toJS({ maxAliasCount: 100 }) };
  } catch (e) {
    // Unresolved aliases, alias bombs past maxAliasCount.
    return { ok: false, problem: `is not valid YAML (${withoutQuotedText((e as Error).message)})` };
  }
}

function describeYamlError(error: YAMLError, text: string): string {
  return `${withoutQuotedText(error.message)} (${error.code}) at ${lineAndColumn(text, error.pos[0])}`;
}

/**
 * The first line of a parser's message without anything it quotes from the document (`Unresolved
 * plain scalar "hunter2"`, `Unresolved alias (...): nope`).
 */
function withoutQuotedText(message: string): string {
  const text = message
    .split('\n', 1)[0]
    .replace(/:?\s*(["'])(?:(?!\1).)*\1/g, '')
    .replace(/["']/g, '')
    .split(': ', 1)[0]
    .trim();
  return text === '' ? 'invalid document' : text;
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1].length + 1}`;
}

/** The document held in one key: a mapping; an empty value is an empty document. */
export function documentFromValue(text: string, format: KvValueFormat): Parsed {
  if (text.trim() === '') return { ok: true, value: {} };
  const parsed = parseValue(text, format);
  if (!parsed.ok) return parsed;
  if (parsed.value === null || parsed.value === undefined) return { ok: true, value: {} };
  if (typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
    return {
      ok: false,
      problem: `must hold a mapping of settings (key: value), not ${Array.isArray(parsed.value) ? 'a list' : typeof parsed.value}`,
    };
  }
  return parsed;
}

/**
 * The document built from one key per setting: the path below the prefix, split at "/", is where
 * the value goes (`degrade/orders_list` = `true` → `{ degrade: { orders_list: true } }`); each value
 * is parsed on its own (a YAML scalar, or a whole YAML/JSON document). Empty folder keys (Consul's
 * `config/orders/`) are skipped. A key both holding a value and having keys below it is a problem.
 */
export function documentFromEntries(entries: readonly KvEntry[], format: KvValueFormat, fullKey: (key: string) => string): Parsed {
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
  readonly format: KvValueFormat;
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
      ? documentFromValue(snapshot.entries[0].value, rules.format)
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
