import { ConfigSourceError, type ConfigSourceFailure } from '../config.errors';
import type { ConfigSource, ConfigSourceUpdate } from '../dynamic/sources/config-source';

/**
 * A ConfigSource the spec drives: `push()` and `fail()` are what a watch would deliver, `set()`
 * changes the document silently (only a reload sees it). Counts its starts, reloads and stops.
 */
export class MemorySource implements ConfigSource {
  readonly kind: string;
  readonly location: string;
  started = 0;
  reloads = 0;
  stopped = 0;
  private current: ConfigSourceUpdate;
  private listener: ((update: ConfigSourceUpdate) => void) | undefined;

  constructor(document: unknown, { kind = 'memory', location = 'memory:test' }: { kind?: string; location?: string } = {}) {
    this.kind = kind;
    this.location = location;
    this.current = { ok: true, value: document };
  }

  async start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate> {
    this.started++;
    this.listener = onUpdate;
    return this.current;
  }

  async reload(): Promise<ConfigSourceUpdate> {
    this.reloads++;
    return this.current;
  }

  async stop(): Promise<void> {
    this.stopped++;
    this.listener = undefined;
  }

  /** A new document, delivered as the source's watch would. */
  push(document: unknown): void {
    this.set(document);
    this.listener?.(this.current);
  }

  /** The document is gone (or unreadable), delivered as the source's watch would. */
  fail(failure: ConfigSourceFailure = 'unavailable', message = `${this.location}: connection refused`): void {
    this.current = { ok: false, error: new ConfigSourceError(failure, this.location, message) };
    this.listener?.(this.current);
  }

  /** Changes the document without telling anyone: only `reload()` reads it. */
  set(document: unknown): void {
    this.current = { ok: true, value: document };
  }

  get watching(): boolean {
    return this.listener !== undefined;
  }
}
