import { createHash } from 'node:crypto';
import { readFile, readlink } from 'node:fs/promises';
import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { optionGroup, parseModuleOptions, withoutDefault } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import { ConfigSourceError, DynamicConfigOptionsError } from '../../config.errors';
import type { ConfigSource, ConfigSourceUpdate } from './config-source';
import { DocumentFormat, parseConfigDocument } from './parse-document';

const fileSourceOptionsSchema = optionGroup({
  /**
   * Quiet time after the last change event before the file is read: a burst of writes (an editor's
   * save, a deploy tool writing several times) is read once, at its end.
   * @default 100
   */
  debounceMs: z.number().int().min(0).max(60_000).default(100),
  /**
   * A missing file is an empty document (`{}`) instead of a `missing` failure.
   * @default false
   */
  optional: z.boolean().default(false),
  /**
   * How to parse the file. Without it, `.json` files are JSON and everything else YAML (a superset
   * of JSON).
   */
  format: withoutDefault(z.enum(['yaml', 'json'])),
  /**
   * How often the file is read when its folder cannot be watched (the folder does not exist yet or
   * was removed, or the system is out of watches); watching is tried again at each read.
   * @default 1000
   */
  pollIntervalMs: z.number().int().min(10).max(600_000).default(1000),
});

/** Options of {@link fileSource}. */
// An interface rather than an alias, so that declarations name it and keep each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface FileSourceOptions extends z.input<typeof fileSourceOptionsSchema> {}

/**
 * A YAML or JSON file as a layer of the dynamic configuration (kind `file`).
 *
 * It watches the file's folder, not the file: a file replaced by rename (atomic writes, most
 * editors, the Kubernetes ConfigMap volume, which swaps a `..data` symlink and never writes the
 * file itself) is a new inode that a watch on the old one never reports. Every event naming the
 * file, `..data`, the first element of the file's symlink target or the folder itself leads, after
 * `debounceMs` of quiet, to a fresh read through the path (so symlinks are resolved again), and
 * only a content change (or a change of failure) is delivered: a touch or a rewrite with the same
 * content delivers nothing. When the folder cannot be watched, the file is read every
 * `pollIntervalMs` until it can be. Like a server socket, the watch keeps the process alive until
 * `stop()`.
 */
export function fileSource(path: string, options?: FileSourceOptions): ConfigSource {
  const resolved = parseModuleOptions(
    fileSourceOptionsSchema,
    options,
    (problems) => new DynamicConfigOptionsError(problems.map((problem) => `fileSource(${JSON.stringify(path)}).${problem}`)),
  );
  return new FileConfigSource(path, resolved);
}

type ResolvedFileSourceOptions = z.output<typeof fileSourceOptionsSchema>;

/** The symlink kubelet swaps in a ConfigMap or Secret volume (`..data -> ..2024_01_01_12_00_00.123456789`). */
const KUBERNETES_DATA_LINK = '..data';

/**
 * A steady stream of events (a file rewritten every few milliseconds) would postpone a trailing
 * debounce forever; after this many debounce periods since the first event the file is read anyway.
 */
const MAX_DEBOUNCE_PERIODS = 10;

class FileConfigSource implements ConfigSource {
  readonly kind = 'file';
  private readonly absolutePath: string;
  private readonly folder: string;
  private readonly format: DocumentFormat;
  /** Names in the folder whose events may change what the path resolves to. */
  private readonly watchedNames: Set<string>;
  /** The first element of a relative symlink target (`current` for `dynamic.yaml -> current/dynamic.yaml`). */
  private linkedName: string | undefined;

  private listener: ((update: ConfigSourceUpdate) => void) | undefined;
  private watcher: FSWatcher | undefined;
  /** The folder the watcher was opened on, to notice it was removed or replaced. */
  private watchedFolder: { dev: number; ino: number } | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private burstStartedAt: number | undefined;
  /** Reads run one after the other, so that updates are delivered in the order of the reads. */
  private reads: Promise<unknown> = Promise.resolve();
  /** What was last handed out (content hash, or the failure), so that a no-op event delivers nothing. */
  private deliveredKey: string | undefined;

  constructor(
    readonly location: string,
    private readonly options: ResolvedFileSourceOptions,
  ) {
    this.absolutePath = resolve(location);
    this.folder = dirname(this.absolutePath);
    this.format = options.format ?? (extname(location).toLowerCase() === '.json' ? 'json' : 'yaml');
    // The folder's own name: inotify reports the watched folder being removed or moved under it.
    this.watchedNames = new Set([basename(this.absolutePath), KUBERNETES_DATA_LINK, basename(this.folder)]);
  }

  async start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate> {
    if (this.listener) throw new Error(`fileSource(${JSON.stringify(this.location)}) is already started; stop() it first`);
    this.listener = onUpdate;
    this.deliveredKey = undefined;
    // Watch before the first read: a change during the read is then read again, not lost.
    if (!this.watchFolder()) this.startPolling();
    return this.enqueue(() => this.readAndRecord());
  }

  reload(): Promise<ConfigSourceUpdate> {
    // The caller applies what it gets; recording it keeps the watcher from delivering it again.
    return this.enqueue(() => this.readAndRecord());
  }

  async stop(): Promise<void> {
    this.listener = undefined;
    this.closeWatcher();
    this.stopPolling();
    clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.burstStartedAt = undefined;
    // A read in flight finishes before stop() resolves, and delivers nothing (no listener).
    await this.reads.catch(() => undefined);
  }

  private enqueue<T>(read: () => Promise<T>): Promise<T> {
    const next = this.reads.then(read, read);
    this.reads = next.catch(() => undefined);
    return next;
  }

  /** Opens the folder watch; false when the folder cannot be watched (then the caller polls). */
  private watchFolder(): boolean {
    try {
      const stats = statSync(this.folder);
      if (!stats.isDirectory()) return false;
      const watcher = watch(this.folder, (_event, name) => this.onFolderEvent(name));
      watcher.on('error', () => this.onWatchFailed());
      this.watcher = watcher;
      this.watchedFolder = { dev: stats.dev, ino: stats.ino };
      return true;
    } catch {
      // ENOENT (no folder yet), ENOSPC (out of inotify watches), EACCES: polling takes over.
      return false;
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
    this.watchedFolder = undefined;
  }

  private onFolderEvent(name: string | Buffer | null): void {
    // Some platforms give no name; then any event may be ours.
    const changed = name === null ? undefined : name.toString();
    if (changed === undefined || this.watchedNames.has(changed) || changed === this.linkedName) this.schedule();
  }

  private onWatchFailed(): void {
    this.closeWatcher();
    this.startPolling();
    this.schedule();
  }

  /** Trailing-edge debounce: a burst of events is one read, `debounceMs` after the last of them. */
  private schedule(): void {
    if (!this.listener) return;
    const now = Date.now();
    this.burstStartedAt ??= now;
    const latest = this.burstStartedAt + MAX_DEBOUNCE_PERIODS * Math.max(this.options.debounceMs, 100);
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(
      () => {
        this.debounceTimer = undefined;
        this.burstStartedAt = undefined;
        void this.refresh();
      },
      Math.max(0, Math.min(this.options.debounceMs, latest - now)),
    );
  }

  private startPolling(): void {
    if (this.pollTimer || !this.listener) return;
    this.pollTimer = setInterval(() => {
      if (this.watchFolder()) this.stopPolling();
      void this.refresh();
    }, this.options.pollIntervalMs);
  }

  private stopPolling(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  /** Reads the file and delivers the result if it differs from what was last handed out. */
  private refresh(): Promise<void> {
    return this.enqueue(async () => {
      if (!this.listener) return;
      this.checkWatchedFolder();
      const before = this.deliveredKey;
      const update = await this.readAndRecord();
      const listener = this.listener;
      if (!listener || this.deliveredKey === before) return;
      try {
        listener(update);
      } catch (error) {
        // A failing subscriber must not take the watcher (or the process) down with it.
        process.emitWarning(error instanceof Error ? error : String(error), { code: 'CONFIG_SOURCE_LISTENER_FAILED' });
      }
    });
  }

  /**
   * A watch follows the folder's inode: once the folder is removed, or moved away and replaced, it
   * reports nothing more. Then watch the folder now at the path, or poll until there is one.
   */
  private checkWatchedFolder(): void {
    if (!this.watcher || !this.watchedFolder) return;
    let current: { dev: number; ino: number } | undefined;
    try {
      current = statSync(this.folder);
    } catch {
      current = undefined;
    }
    if (current && current.dev === this.watchedFolder.dev && current.ino === this.watchedFolder.ino) return;
    this.closeWatcher();
    if (!this.watchFolder()) this.startPolling();
  }

  private async readAndRecord(): Promise<ConfigSourceUpdate> {
    const { update, key } = await this.read();
    this.deliveredKey = key;
    return update;
  }

  private async read(): Promise<{ update: ConfigSourceUpdate; key: string }> {
    let content: Buffer;
    try {
      content = await readFile(this.absolutePath);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (this.options.optional) return { update: { ok: true, value: {} }, key: 'absent' };
        return {
          update: this.failure(
            'missing',
            `${this.location} does not exist. Create it, or make the source optional to read a missing file as an empty document.`,
          ),
          key: 'missing',
        };
      }
      return {
        update: this.failure(
          'unavailable',
          `Cannot read ${this.location} (${code}). Check that it is a readable file; it is read again when it changes.`,
        ),
        key: `unavailable:${code}`,
      };
    }
    await this.followLink();
    const hash = createHash('sha256').update(content).digest('hex');
    const parsed = parseConfigDocument(content.toString('utf8'), this.format);
    if (!parsed.ok) {
      const message = `${this.location} ${parsed.problem}. Fix the file; it is read again when it changes.`;
      return { update: this.failure('parse', message), key: `parse:${hash}` };
    }
    return { update: { ok: true, value: parsed.value }, key: `ok:${hash}` };
  }

  /**
   * Notes the first element of a relative symlink target in the same folder (`current` of
   * `current/dynamic.yaml`, or a sibling file), whose replacement changes what the path reads.
   */
  private async followLink(): Promise<void> {
    try {
      const target = await readlink(this.absolutePath);
      const first = isAbsolute(target) ? undefined : target.split(/[\\/]/).find((part) => part !== '' && part !== '.');
      this.linkedName = first === '..' ? undefined : first;
    } catch {
      this.linkedName = undefined; // not a symlink
    }
  }

  private failure(failure: 'parse' | 'missing' | 'unavailable', message: string): ConfigSourceUpdate {
    return { ok: false, error: new ConfigSourceError(failure, this.location, message) };
  }
}
