import type { ConfigSourceError } from '../../config.errors';

/** What a source hands the dynamic configuration: a document, or why it has none right now. */
export type ConfigSourceUpdate =
  | {
      readonly ok: true;
      /** The parsed document (YAML or JSON), before validation. */
      readonly value: unknown;
    }
  | { readonly ok: false; readonly error: ConfigSourceError };

/**
 * One layer of the dynamic configuration: a file, an etcd key or prefix, a Consul KV key or prefix.
 * Layers are merged in order, later ones overriding earlier ones; the merge is validated as a whole.
 */
export interface ConfigSource {
  /** `file`, `etcd` or `consul`: the `source` label of `config_reloads_total`. */
  readonly kind: string;
  /** Where it reads from, for logs (`config/dynamic.yaml`, `etcd:/config/orders/`); never a secret. */
  readonly location: string;
  /**
   * Reads once, then watches. Resolves with the first read; every later change (or failure) goes
   * to `onUpdate`, already debounced. Never rejects because the backend is unreachable or the
   * document is broken: that is an update with `ok: false`, and the source keeps trying.
   */
  start(onUpdate: (update: ConfigSourceUpdate) => void): Promise<ConfigSourceUpdate>;
  /** Reads again now (SIGHUP, `DynamicConfigService.reload()`). */
  reload(): Promise<ConfigSourceUpdate>;
  /** Stops watching and releases what it holds (watchers, connections, timers). */
  stop(): Promise<void>;
}
