import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { describeError, LIFECYCLE_OPTIONS, LIFECYCLE_PROCESS } from '@nest-rollout/lifecycle';
import type { LifecycleProcess, ResolvedLifecycleOptions } from '@nest-rollout/lifecycle';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defer, distinctUntilChanged, map, Observable, startWith, Subject } from 'rxjs';
import { DYNAMIC_CONFIG_OPTIONS, DYNAMIC_CONFIG_SOURCES, DynamicConfigEvent, RELOAD_SOURCE } from '../config.constants';
import { ConfigSourceError, DynamicConfigNotLoadedError, InvalidConfigError } from '../config.errors';
import { compareSnapshots, configVersion, deepFreeze, isPlainObject, mergeLayers } from './config-document';
import { DynamicConfigMetrics } from './dynamic-config.metrics';
import type { ResolvedDynamicConfigOptions } from './dynamic-config.options';
import type { ConfigChange, ConfigReloadResult, DynamicConfig } from './dynamic-config.types';
import { SecretKeys } from './secret-keys';
import type { ConfigSource, ConfigSourceUpdate } from './sources/config-source';

/** One source and what the configuration in force took from it. */
interface Layer {
  readonly source: ConfigSource;
  /** Its last document that was part of a valid configuration: what the merge uses while it fails or sends invalid ones. */
  document: unknown;
  /** Whether its last update was a failure (logged once per outage). */
  failed: boolean;
}

type Validation = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problems: readonly string[] };

/** What caused an update: a source's kind and where it reads, or `reload` (SIGHUP, `reload()`). */
interface Trigger {
  readonly source: string;
  readonly location?: string;
}

/**
 * The dynamic configuration: the sources' documents merged in order, validated by the schema, and
 * kept as one frozen snapshot that is replaced as a whole, or not at all. Updates are handled one
 * at a time, in the order they arrive, so that two sources changing together never interleave.
 *
 * Start-up (onModuleInit) starts every source and applies the first merged document; a source
 * without a document or a document the schema rejects stops the start-up with InvalidConfigError,
 * since there is no last good configuration to fall back on. Later, an update that fails (a source
 * gone, a schema violation) is logged and counted, and the last good configuration stays in force.
 */
@Injectable()
export class DynamicConfigService<T = Record<string, unknown>> implements DynamicConfig<T>, OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('DynamicConfig');
  private readonly layers: readonly Layer[];
  private readonly secrets: SecretKeys;
  private readonly changes = new Subject<ConfigChange<T>>();
  private snapshot: Readonly<T> | undefined;
  private currentVersion = '';
  /** The update being handled; the next one waits for it. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private reloadOnSignal: (() => void) | undefined;

  /** Every applied change, once, after `get()` returns the new configuration. */
  readonly changes$: Observable<ConfigChange<T>> = this.changes.asObservable();

  constructor(
    @Inject(DYNAMIC_CONFIG_OPTIONS) private readonly options: ResolvedDynamicConfigOptions,
    @Inject(DYNAMIC_CONFIG_SOURCES) sources: readonly ConfigSource[],
    @Inject(LIFECYCLE_PROCESS) private readonly process: LifecycleProcess,
    private readonly metrics: DynamicConfigMetrics,
    @Optional() @Inject(LIFECYCLE_OPTIONS) private readonly lifecycleOptions?: ResolvedLifecycleOptions,
  ) {
    this.layers = sources.map((source) => ({ source, document: undefined, failed: false }));
    this.secrets = new SecretKeys(options.secretKeys);
  }

  /** The configuration in force (validated, frozen), or the value of one of its keys: no copy, no parsing. */
  get(): Readonly<T>;
  get<K extends keyof T>(key: K): Readonly<T>[K];
  get<K extends keyof T>(key?: K): Readonly<T> | Readonly<T>[K] {
    const snapshot = this.snapshot;
    if (snapshot === undefined) throw new DynamicConfigNotLoadedError();
    return key === undefined ? snapshot : snapshot[key];
  }

  /** Short hash of the configuration in force, the same on every instance that runs it (`config_info{hash}`). */
  get version(): string {
    if (this.snapshot === undefined) throw new DynamicConfigNotLoadedError();
    return this.currentVersion;
  }

  /**
   * The value of `key` now, then its new value after each applied change that alters it. Unchanged
   * parts of the configuration keep their identity across changes, so a change elsewhere is not
   * emitted.
   */
  watch<K extends keyof T>(key: K): Observable<Readonly<T>[K]> {
    return defer(() =>
      this.changes.pipe(
        map((change) => change.current[key]),
        startWith(this.get(key)),
        distinctUntilChanged(),
      ),
    );
  }

  /**
   * Reads every source again and applies the merge if it is valid (what the reload signal does).
   * A source that cannot be read is logged and counted as failed, and its last good layer is used.
   * After the application closed, it reads nothing and reports the version in force as unchanged.
   */
  reload(): Promise<ConfigReloadResult> {
    return this.enqueue(async () => {
      if (this.snapshot === undefined && !this.closed) throw new DynamicConfigNotLoadedError();
      if (this.closed) return { result: 'unchanged', version: this.currentVersion };
      const updates = await Promise.all(this.layers.map((layer) => this.read(layer, () => layer.source.reload())));
      if (this.closed) return { result: 'unchanged', version: this.currentVersion };
      const documents = this.layers.map((layer, i) => {
        const update = updates[i];
        if (!update.ok) {
          this.sourceFailed(layer, update.error);
          return layer.document;
        }
        this.sourceRecovered(layer);
        return update.value;
      });
      return this.apply(documents, { source: RELOAD_SOURCE }, () => {
        this.layers.forEach((layer, i) => {
          if (updates[i].ok) layer.document = documents[i];
        });
      });
    });
  }

  async onModuleInit(): Promise<void> {
    await this.enqueue(() => this.load());
    this.listenForReloadSignal();
  }

  async onApplicationShutdown(): Promise<void> {
    const signal = this.options.reloadSignal;
    if (this.reloadOnSignal && signal) this.process.offSignal(signal, this.reloadOnSignal);
    this.reloadOnSignal = undefined;
    if (this.closed) return;
    this.closed = true;
    await this.stopSources();
    this.changes.complete();
  }

  private async load(): Promise<void> {
    const firsts = await Promise.all(
      this.layers.map((layer) => this.read(layer, () => layer.source.start((update) => this.onSourceUpdate(layer, update)))),
    );
    const documents = firsts.map((update) => (update.ok ? update.value : undefined));
    const problems: string[] = [];
    firsts.forEach((update, i) => {
      if (!update.ok) problems.push(namedBy(this.layers[i].source.location, this.redact(update.error.message, documents)));
    });
    // Problems of a merge that lacks a layer would be misleading; the missing layer is the problem.
    const validated = problems.length === 0 ? await this.validate(documents) : undefined;
    if (validated && !validated.ok) problems.push(...validated.problems);
    if (!validated?.ok) {
      // Nothing starts half-configured, and nothing keeps watching for an application that will not run.
      this.closed = true;
      await this.stopSources();
      this.changes.complete();
      throw new InvalidConfigError(problems, this.layers.map((layer) => layer.source.location).join(', '));
    }
    this.layers.forEach((layer, i) => (layer.document = documents[i]));
    const snapshot = deepFreeze(validated.value) as Readonly<T>;
    this.snapshot = snapshot;
    this.currentVersion = configVersion(snapshot);
    this.logger.log({
      event: DynamicConfigEvent.LOADED,
      version: this.currentVersion,
      sources: this.layers.map((layer) => layer.source.location),
      keys: isPlainObject(snapshot) ? Object.keys(snapshot).sort() : [],
    });
    this.metrics.succeeded(this.currentVersion);
  }

  /** A source's own update (its watch): queued behind the update being handled. */
  private onSourceUpdate(layer: Layer, update: ConfigSourceUpdate): void {
    if (this.closed) return;
    void this.enqueue(async () => {
      // Updates that arrive during the start-up wait for it; after a failed one there is nothing to update.
      if (this.closed || this.snapshot === undefined) return;
      const trigger = { source: layer.source.kind, location: layer.source.location };
      if (!update.ok) return this.sourceFailed(layer, update.error);
      this.sourceRecovered(layer);
      const documents = this.layers.map((other) => (other === layer ? update.value : other.document));
      await this.apply(documents, trigger, () => (layer.document = update.value));
    }).catch((error: unknown) => {
      // apply() does not throw; this is the last guard of "an update never takes the service down".
      this.logger.error({ event: DynamicConfigEvent.REJECTED, source: layer.source.kind, problems: [describeError(error).message] });
    });
  }

  /**
   * Validates the merge of `documents` and puts it in force if it is valid and differs from the
   * configuration in force; `commit` records the documents that took part in a valid configuration.
   */
  private async apply(documents: readonly unknown[], trigger: Trigger, commit: () => void): Promise<ConfigReloadResult> {
    const validated = await this.validate(documents);
    if (this.closed) return { result: 'unchanged', version: this.currentVersion };
    const previousVersion = this.currentVersion;
    if (!validated.ok) {
      this.logger.warn({ event: DynamicConfigEvent.REJECTED, ...trigger, version: previousVersion, problems: validated.problems });
      this.metrics.reload(trigger.source, 'rejected');
      return { result: 'rejected', version: previousVersion, problems: validated.problems };
    }
    commit();
    const previous = this.snapshot as Readonly<T>;
    const { value, changedKeys } = compareSnapshots(previous, validated.value);
    if (changedKeys.length === 0) {
      this.metrics.reload(trigger.source, 'unchanged');
      this.metrics.succeeded(previousVersion);
      return { result: 'unchanged', version: previousVersion };
    }
    const current = deepFreeze(value) as Readonly<T>;
    const version = configVersion(current);
    this.snapshot = current;
    this.currentVersion = version;
    this.logger.log({
      event: DynamicConfigEvent.APPLIED,
      version,
      previousVersion,
      ...trigger,
      changedKeys,
      values: Object.fromEntries(changedKeys.map((key) => [key, this.secrets.mask(key, valueAt(current, key))])),
    });
    this.metrics.reload(trigger.source, 'applied');
    this.metrics.succeeded(version);
    this.changes.next({ previous, current, version, changedKeys, source: trigger.source });
    return { result: 'applied', version, changedKeys };
  }

  private async validate(documents: readonly unknown[]): Promise<Validation> {
    const merged = mergeLayers(documents);
    const known = [merged, ...this.layers.map((layer) => layer.document)];
    let result: StandardSchemaV1.Result<unknown>;
    try {
      result = await this.options.schema['~standard'].validate(merged);
    } catch (error) {
      return { ok: false, problems: [this.redact(`the schema's validate threw: ${describeError(error).message}`, known)] };
    }
    if (!result.issues) return { ok: true, value: result.value };
    const problems = result.issues.map((issue) => this.redact(describeIssue(issue), known));
    return { ok: false, problems: problems.length > 0 ? problems : ['the schema rejected the configuration without naming a problem'] };
  }

  /** Starts or reloads a source; one that throws, against its contract, counts as unavailable. */
  private async read(layer: Layer, run: () => Promise<ConfigSourceUpdate>): Promise<ConfigSourceUpdate> {
    try {
      return await run();
    } catch (error) {
      const { location } = layer.source;
      return { ok: false, error: new ConfigSourceError('unavailable', location, namedBy(location, describeError(error).message)) };
    }
  }

  private sourceFailed(layer: Layer, error: ConfigSourceError): void {
    this.metrics.reload(layer.source.kind, 'failed');
    if (layer.failed) return;
    layer.failed = true;
    const known = this.layers.map((other) => other.document);
    this.logger.warn({
      event: DynamicConfigEvent.SOURCE_FAILED,
      source: layer.source.kind,
      location: layer.source.location,
      failure: error.failure,
      error: this.redact(error.message, known),
      // What stays in force meanwhile: the last good layer of this source, merged as before.
      version: this.currentVersion,
    });
  }

  private sourceRecovered(layer: Layer): void {
    if (!layer.failed) return;
    layer.failed = false;
    this.logger.log({ event: DynamicConfigEvent.SOURCE_RECOVERED, source: layer.source.kind, location: layer.source.location });
  }

  private listenForReloadSignal(): void {
    const signal = this.options.reloadSignal;
    if (signal === false || this.closed) return;
    if (this.lifecycleOptions?.signals.includes(signal)) {
      this.logger.warn({
        event: DynamicConfigEvent.RELOAD_SIGNAL_CONFLICT,
        signal,
        message: `${signal} is one of LifecycleModule's shutdown signals, so it does not reload the configuration; remove it from the lifecycle's signals, or set reloadSignal: false`,
      });
      return;
    }
    this.reloadOnSignal = () => {
      this.logger.log({ event: DynamicConfigEvent.RELOAD_SIGNAL, signal });
      this.reload().catch((error: unknown) =>
        this.logger.error({ event: DynamicConfigEvent.REJECTED, source: RELOAD_SOURCE, problems: [describeError(error).message] }),
      );
    };
    this.process.onSignal(signal, this.reloadOnSignal);
  }

  private async stopSources(): Promise<void> {
    const outcomes = await Promise.allSettled(this.layers.map((layer) => Promise.resolve().then(() => layer.source.stop())));
    outcomes.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') return;
      const { kind, location } = this.layers[i].source;
      this.logger.warn({ event: DynamicConfigEvent.SOURCE_STOP_FAILED, source: kind, location, error: describeError(outcome.reason) });
    });
  }

  private redact(text: string, documents: readonly unknown[]): string {
    return this.secrets.redact(text, documents);
  }

  private enqueue<R>(job: () => Promise<R>): Promise<R> {
    const run = this.queue.then(job);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** `path: message`, the path written as in option problems (`limits.rps`, `rules[1].header`). */
function describeIssue(issue: StandardSchemaV1.Issue): string {
  let path = '';
  for (const segment of issue.path ?? []) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    if (typeof key === 'number') path += `[${key}]`;
    else path += path ? `.${String(key)}` : String(key);
  }
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** A source's message, prefixed with where it reads unless it says so already. */
function namedBy(location: string, message: string): string {
  return message.includes(location) ? message : `${location}: ${message}`;
}

/** The value at a dot path of the snapshot (own keys only), `undefined` where there is none. */
function valueAt(root: unknown, path: string): unknown {
  if (path === '') return root;
  let node = root;
  for (const key of path.split('.')) {
    if (!isPlainObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}
