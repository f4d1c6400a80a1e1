import { SECRET_MASK } from '../config.constants';
import { isPlainObject } from './config-document';

/**
 * Secret values shorter than this are not searched for in messages: they would mask ordinary words
 * and numbers of every message, and a value that short protects nothing anyway.
 */
const MIN_REDACTED_LENGTH = 4;

/**
 * The `secretKeys` option, compiled once: dot paths (`db.password`, `upstreams.*.token`; `*` stands
 * for any one key or array index) whose values, and everything under them, never reach a log line.
 */
export class SecretKeys {
  private readonly patterns: readonly (readonly string[])[];

  constructor(paths: readonly string[]) {
    this.patterns = paths.map((path) => path.split('.'));
  }

  /** Whether the value at `path` (dot path) is secret: a secret key is that path or holds it. */
  covers(path: string): boolean {
    if (this.patterns.length === 0) return false;
    return this.coversSegments(path === '' ? [] : path.split('.'));
  }

  /** `value`, found at `path`, with every secret part replaced by `***` (a copy; `value` is left alone). */
  mask(path: string, value: unknown): unknown {
    if (this.patterns.length === 0) return value;
    return this.maskAt(path === '' ? [] : path.split('.'), value);
  }

  /**
   * `text` with every secret string value of `documents` replaced by `***`: for messages written by
   * others (a schema's problem, a parser's error quoting the line it failed on) that may quote a value.
   */
  redact(text: string, documents: readonly unknown[]): string {
    if (this.patterns.length === 0) return text;
    const secrets = new Set<string>();
    for (const document of documents) this.collect([], document, false, secrets);
    // Longest first, so that a secret containing another is replaced whole.
    for (const secret of [...secrets].sort((a, b) => b.length - a.length)) text = text.split(secret).join(SECRET_MASK);
    return text;
  }

  private coversSegments(segments: readonly string[]): boolean {
    return this.patterns.some(
      (pattern) => pattern.length <= segments.length && pattern.every((part, i) => part === '*' || part === segments[i]),
    );
  }

  private maskAt(segments: string[], value: unknown): unknown {
    if (segments.length > 0 && this.coversSegments(segments)) return SECRET_MASK;
    if (Array.isArray(value)) return value.map((item, i) => this.maskAt([...segments, String(i)], item));
    if (!isPlainObject(value)) return value;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      Object.defineProperty(out, key, { value: this.maskAt([...segments, key], value[key]), enumerable: true, writable: true });
    }
    return out;
  }

  private collect(segments: string[], value: unknown, secret: boolean, into: Set<string>): void {
    const inSecret = secret || (segments.length > 0 && this.coversSegments(segments));
    if (Array.isArray(value)) {
      value.forEach((item, i) => this.collect([...segments, String(i)], item, inSecret, into));
    } else if (isPlainObject(value)) {
      for (const key of Object.keys(value)) this.collect([...segments, key], value[key], inSecret, into);
    } else if (inSecret && (typeof value === 'string' || typeof value === 'number') && String(value).length >= MIN_REDACTED_LENGTH) {
      into.add(String(value));
    }
  }
}
