import type { Observable } from 'rxjs';

/** One applied change of the dynamic configuration. */
export interface ConfigChange<T> {
  readonly previous: Readonly<T>;
  readonly current: Readonly<T>;
  /** Short hash of the applied configuration (also `config_info{hash}`). */
  readonly version: string;
  /**
   * The deepest keys whose values changed, added or removed, as sorted dot paths
   * (`degrade.orders_list`, `limits`); an array is one value (`rules`, never `rules.0`).
   */
  readonly changedKeys: readonly string[];
  /** The source whose update caused the change (`file`, `etcd`, `consul`, or `reload`). */
  readonly source: string;
}

/** The outcome of one reload attempt. */
export type ConfigReloadResult =
  | { readonly result: 'applied'; readonly version: string; readonly changedKeys: readonly string[] }
  | { readonly result: 'unchanged'; readonly version: string }
  | { readonly result: 'rejected'; readonly version: string; readonly problems: readonly string[] };

/**
 * The public face of the dynamic configuration (implemented by `DynamicConfigService`).
 * `get()` returns the current snapshot: validated, frozen, replaced as a whole on each applied
 * change, so reading it on the hot path costs a property access.
 */
export interface DynamicConfig<T> {
  get(): Readonly<T>;
  get<K extends keyof T>(key: K): Readonly<T>[K];
  /** Hash of the configuration in force. */
  readonly version: string;
  /** Every applied change. */
  readonly changes$: Observable<ConfigChange<T>>;
  /**
   * The value of `key` now, then each time an applied change alters it. Parts of the configuration
   * that a change leaves alone keep their identity, so `===` tells whether a value changed.
   */
  watch<K extends keyof T>(key: K): Observable<Readonly<T>[K]>;
  /** Reads every source again and applies the result if it is valid (what SIGHUP does). */
  reload(): Promise<ConfigReloadResult>;
}
