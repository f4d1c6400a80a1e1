import { createHash } from 'node:crypto';

/**
 * Pure functions over configuration documents: the layered merge, the canonical JSON and the
 * version hash taken from it, and the comparison of two snapshots that names the changed keys.
 */

type PlainObject = Record<string, unknown>;

/** An object literal or a parsed JSON/YAML mapping (not an array, a Date, a class instance). */
export function isPlainObject(value: unknown): value is PlainObject {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Merges the layers in order, later ones overriding earlier ones: plain objects merge key by key at
 * every depth; anything else, arrays included, replaces what was there (a list of rules is one value:
 * merging two lists element by element would make rules no layer wrote). A layer without a document
 * (`undefined`) is skipped, as is a key whose value is `undefined`; `null` is a value like any other.
 * The result is a fresh copy: freezing or validating it never touches a source's own documents.
 * No layer at all gives `{}`, so that a schema with defaults for everything still validates.
 */
export function mergeLayers(documents: readonly unknown[]): unknown {
  let merged: unknown = undefined;
  for (const document of documents) {
    if (document !== undefined) merged = mergeTwo(merged, document);
  }
  return merged === undefined ? {} : merged;
}

function mergeTwo(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return copy(over);
  const out = copy(base) as PlainObject;
  for (const key of Object.keys(over)) {
    const value = over[key];
    if (value === undefined) continue;
    defineKey(out, key, mergeTwo(Object.hasOwn(out, key) ? out[key] : undefined, value));
  }
  return out;
}

/** A deep copy of plain objects and arrays; other values are kept as they are. */
function copy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copy);
  if (!isPlainObject(value)) return value;
  const out: PlainObject = {};
  for (const key of Object.keys(value)) defineKey(out, key, copy(value[key]));
  return out;
}

/**
 * Sets an own, enumerable property even for `__proto__`: a document may contain that key (JSON.parse
 * and YAML make it an ordinary key), and plain assignment would change the object's prototype instead.
 */
function defineKey(target: PlainObject, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * JSON with the keys of every object sorted, so that two equal configurations give the same text
 * whatever the order their sources wrote the keys in. Follows JSON.stringify otherwise (`toJSON`,
 * `undefined` keys left out, non-finite numbers as null), and writes a bigint as its decimal string.
 */
export function canonicalJson(value: unknown): string {
  return write(value, new Set()) ?? 'null';
}

function write(value: unknown, path: Set<object>): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return 'null';
  const object = value as object & { toJSON?: () => unknown };
  if (typeof object.toJSON === 'function') return write(object.toJSON(), path);
  if (path.has(object)) throw new TypeError('the configuration contains a cycle');
  path.add(object);
  let text: string;
  if (Array.isArray(object)) {
    text = `[${object.map((item) => write(item, path) ?? 'null').join(',')}]`;
  } else {
    const record = object as PlainObject;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const item = write(record[key], path);
      if (item !== undefined) parts.push(`${JSON.stringify(key)}:${item}`);
    }
    text = `{${parts.join(',')}}`;
  }
  path.delete(object);
  return text;
}

/** Hex digits of the version: 48 bits, plenty to tell apart the versions one service ever runs. */
const VERSION_LENGTH = 12;

/** The version of a configuration: a short SHA-256 of its canonical JSON, the same on every instance that runs it. */
export function configVersion(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, VERSION_LENGTH);
}

/** The next snapshot, sharing what did not change with the previous one, and the dot paths that changed. */
export interface SnapshotComparison {
  readonly value: unknown;
  readonly changedKeys: readonly string[];
}

/**
 * Compares a new configuration with the one in force. Plain objects are compared key by key (a
 * missing key and an `undefined` one are the same, as in JSON); any other value, arrays included,
 * as a whole by its canonical JSON. Every subtree that did not change is taken from `previous`, so
 * that `current.limits === previous.limits` tells a subscriber that its part stayed the same.
 * `changedKeys` are the deepest changed paths, sorted: `degrade.orders_list`, `rules` (an array).
 * A changed root that is not an object is the path `''`.
 */
export function compareSnapshots(previous: unknown, next: unknown): SnapshotComparison {
  const changedKeys: string[] = [];
  const value = share(previous, next, '', changedKeys);
  return { value, changedKeys: changedKeys.sort() };
}

function share(previous: unknown, next: unknown, path: string, changed: string[]): unknown {
  if (Object.is(previous, next)) return previous;
  if (isPlainObject(previous) && isPlainObject(next)) {
    const out: PlainObject = {};
    let same = true;
    for (const key of Object.keys(next)) {
      const before = Object.hasOwn(previous, key) ? previous[key] : undefined;
      const after = next[key];
      const at = path === '' ? key : `${path}.${key}`;
      if (after === undefined || before === undefined) {
        if (after !== before) {
          changed.push(at);
          same = false;
        }
        defineKey(out, key, after);
        continue;
      }
      const kept = share(before, after, at, changed);
      if (kept !== before) same = false;
      defineKey(out, key, kept);
    }
    for (const key of Object.keys(previous)) {
      if (!Object.hasOwn(next, key) && previous[key] !== undefined) {
        changed.push(path === '' ? key : `${path}.${key}`);
        same = false;
      }
    }
    return same ? previous : out;
  }
  if (canonicalJson(previous) === canonicalJson(next)) return previous;
  changed.push(path);
  return next;
}

/**
 * Freezes every object reachable from `value`, so that no reader can change the configuration in
 * force for everyone else. Objects already frozen are still walked: zod's `.readonly()` freezes one
 * level only.
 */
export function deepFreeze<T>(value: T): T {
  const seen = new WeakSet<object>();
  const visit = (node: unknown): void => {
    // Typed arrays and Buffers cannot be frozen (their elements stay writable by design).
    if (node === null || typeof node !== 'object' || seen.has(node) || ArrayBuffer.isView(node)) return;
    seen.add(node);
    Object.freeze(node);
    for (const key of Object.keys(node)) visit((node as PlainObject)[key]);
  };
  visit(value);
  return value;
}
