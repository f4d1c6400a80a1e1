import type { EventEmitter } from 'node:events';
import { bounded, etcdClientOptions, untilAborted } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { registryTimeouts } from '../registry.errors';
import type { ResolvedEtcdOptions, ResolvedRegistryOptions } from '../registry.options';
import type { ServiceInstance, ServiceRegistration } from '../registry.types';
import type { DiscoveryFeedQuery, DiscoverySink, HeartbeatResult, RegistryDriver } from './registry.driver';

/** The part of etcd3 (npm `etcd3` v1) this driver uses. */
interface EtcdCallOptions {
  deadline?: Date;
}
interface EtcdKeyValue {
  key: Buffer;
  value: Buffer;
  lease: string;
}
interface EtcdRangeResponse {
  header: { revision: string };
  kvs: EtcdKeyValue[];
}
interface EtcdLease {
  grant(): Promise<string>;
  keepaliveOnce(options?: EtcdCallOptions): Promise<{ TTL: string }>;
  revoke(options?: EtcdCallOptions): Promise<void>;
  release(): void;
  on(event: 'lost', handler: (error: Error) => void): unknown;
}
interface EtcdWatcher extends EventEmitter {
  cancel(): Promise<void>;
}
interface EtcdClient {
  lease(ttl: number, options?: { autoKeepAlive?: boolean }): EtcdLease;
  put(key: string): { value(value: string): { lease(id: string): { exec(): Promise<unknown> } } };
  get(key: string): { exec(): Promise<EtcdRangeResponse> };
  getAll(): { prefix(prefix: string): { exec(): Promise<EtcdRangeResponse> } };
  delete(): { key(key: string): { exec(): Promise<unknown> } };
  watch(): { prefix(prefix: string): { startRevision(revision: string): { create(): Promise<EtcdWatcher> } } };
  close(): void;
}
export type EtcdClientConstructor = new (options: Record<string, unknown>) => EtcdClient;

/** What an instance's key holds. */
interface EtcdInstanceValue {
  id: string;
  service: string;
  address: string;
  port: number;
  tags: string[];
  meta: Record<string, string>;
}

export function etcdInstanceKey(options: ResolvedEtcdOptions, service: string, id: string): string {
  return `${options.keyPrefix}${service}/${id}`;
}

export function etcdInstanceValue(registration: ServiceRegistration): string {
  const value: EtcdInstanceValue = {
    id: registration.id,
    service: registration.name,
    address: registration.address,
    port: registration.port,
    tags: [...registration.tags],
    meta: { ...registration.meta },
  };
  return JSON.stringify(value);
}

export function instanceFromEtcdValue(raw: string): ServiceInstance | undefined {
  try {
    const v = JSON.parse(raw) as Partial<EtcdInstanceValue>;
    if (typeof v.id !== 'string' || typeof v.service !== 'string' || typeof v.address !== 'string' || typeof v.port !== 'number')
      return undefined;
    return {
      id: v.id,
      service: v.service,
      address: v.address,
      port: v.port,
      tags: Array.isArray(v.tags) ? v.tags.filter((t): t is string => typeof t === 'string') : [],
      meta: v.meta && typeof v.meta === 'object' ? { ...v.meta } : {},
      // A key exists only while its lease is kept alive: present means alive.
      health: 'passing',
    };
  } catch {
    return undefined;
  }
}

/** Registers a key under a lease kept alive by heartbeats; discovers with a range read plus a watch. */
export class EtcdDriver implements RegistryDriver {
  readonly kind = 'etcd' as const;
  readonly target: string;
  readonly expiresAfterMs: number;
  readonly heartbeatIntervalMs: number;
  private readonly client: EtcdClient;
  private readonly etcd: ResolvedEtcdOptions;
  private lease: EtcdLease | undefined;
  private leaseId: string | undefined;

  constructor(
    private readonly options: ResolvedRegistryOptions,
    private readonly clock: LifecycleClock,
    Etcd3: EtcdClientConstructor,
  ) {
    this.etcd = options.etcd;
    this.target = this.etcd.endpoints.join(',');
    this.expiresAfterMs = this.etcd.leaseTtlSeconds * 1000;
    // Three keep-alives per TTL, as etcd's own Go client does.
    this.heartbeatIntervalMs = Math.floor(this.expiresAfterMs / 3);
    // etcd3 retries nothing itself: RegistryService retries with backoff and bounds every call.
    this.client = new Etcd3(
      etcdClientOptions({
        endpoints: this.etcd.endpoints,
        auth: this.etcd.auth,
        tls: this.etcd.tls,
        operationTimeoutMs: options.operationTimeoutMs,
        maxRetryDelayMs: options.retry.maxDelayMs,
      }),
    );
  }

  async register(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    try {
      if (!this.lease || this.leaseId === undefined) {
        const lease = this.client.lease(this.etcd.leaseTtlSeconds, { autoKeepAlive: false });
        // etcd3 emits `lost` when a call finds the lease gone; the heartbeat reports it to us anyway.
        lease.on('lost', () => undefined);
        this.lease = lease;
        this.leaseId = await untilAborted(lease.grant(), signal);
      }
      const key = etcdInstanceKey(this.etcd, registration.name, registration.id);
      await untilAborted(this.client.put(key).value(etcdInstanceValue(registration)).lease(this.leaseId).exec(), signal);
    } catch (error) {
      // The next attempt grants a fresh lease; an orphaned one expires with its TTL.
      this.dropLease();
      throw error;
    }
  }

  async deregister(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    // The key first: it is what callers see. Revoking the lease then frees it on the server.
    await untilAborted(
      this.client
        .delete()
        .key(etcdInstanceKey(this.etcd, registration.name, registration.id))
        .exec(),
      signal,
    );
    if (lease) {
      await untilAborted(lease.revoke({ deadline: new Date(Date.now() + this.options.deregisterTimeoutMs) }), signal).catch(() =>
        lease.release(),
      );
    }
  }

  async heartbeat(_registration: ServiceRegistration, _healthy: boolean, signal: AbortSignal): Promise<HeartbeatResult> {
    const lease = this.lease;
    if (!lease) return 'lost';
    try {
      // One keep-alive on a fresh stream with a deadline: a stream that hangs half-open ends at the
      // deadline instead of silently letting the lease run out.
      await untilAborted(lease.keepaliveOnce({ deadline: new Date(Date.now() + this.options.operationTimeoutMs) }), signal);
      return 'ok';
    } catch (error) {
      // etcd answered TTL 0: the lease expired or etcd lost it (restart with a wiped data dir).
      if (
        (error as Error)?.name === 'EtcdLeaseInvalidError' ||
        /lease.*(not found|expired|invalid)/i.test((error as Error)?.message ?? '')
      ) {
        this.dropLease();
        return 'lost';
      }
      throw error;
    }
  }

  async isRegistered(registration: ServiceRegistration, signal: AbortSignal): Promise<boolean> {
    const response = await untilAborted(this.client.get(etcdInstanceKey(this.etcd, registration.name, registration.id)).exec(), signal);
    const kv = response.kvs[0];
    if (!kv) return false;
    // Our key, but under another lease (one we lost): it would vanish when that lease expires.
    if (this.leaseId !== undefined && kv.lease !== this.leaseId) return false;
    return kv.value.toString() === etcdInstanceValue(registration);
  }

  async watch(query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void> {
    const prefix = `${this.etcd.keyPrefix}${query.service}/`;
    const timeoutMs = this.options.operationTimeoutMs;
    const listed = await untilAborted(this.client.getAll().prefix(prefix).exec(), signal);
    const instances = new Map<string, ServiceInstance>();
    for (const kv of listed.kvs) {
      const instance = instanceFromEtcdValue(kv.value.toString());
      if (instance) instances.set(kv.key.toString(), instance);
    }
    sink.update([...instances.values()]);
    // Watch from the revision just read, so that no change between the read and the watch is lost.
    // After any disconnect the whole read + watch starts again rather than letting etcd3 resume from
    // its last revision: an etcd restarted with a wiped data dir starts over at a lower revision,
    // and a resumed watch would wait, silent, for revisions that already mean something else.
    const from = (BigInt(listed.header.revision) + 1n).toString();
    const creating = this.client.watch().prefix(prefix).startRevision(from).create();
    const watcher = await bounded(this.clock, timeoutMs, () => creating, {
      signal,
      ...registryTimeouts('discovery watch', timeoutMs),
    }).catch((error: unknown) => {
      // A watcher that connects after we gave up on it would otherwise live on, reconnecting by itself.
      creating.then((late) => late.cancel()).catch(() => undefined);
      throw error;
    });
    try {
      sink.live();
      await new Promise<void>((resolve, reject) => {
        if (signal.aborted) return resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
        watcher.on('put', (kv: EtcdKeyValue) => {
          const instance = instanceFromEtcdValue(kv.value.toString());
          if (instance) instances.set(kv.key.toString(), instance);
          else instances.delete(kv.key.toString());
          sink.update([...instances.values()]);
        });
        watcher.on('delete', (kv: EtcdKeyValue) => {
          instances.delete(kv.key.toString());
          sink.update([...instances.values()]);
        });
        watcher.on('disconnected', (error: Error) => reject(error ?? new Error('etcd watch disconnected')));
        watcher.on('error', (error: Error) => reject(error));
      });
    } finally {
      watcher.removeAllListeners('put');
      watcher.removeAllListeners('delete');
      // A watcher left behind would reconnect by itself; an error from cancelling a broken one is moot.
      watcher.on('error', () => undefined);
      void watcher.cancel().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.lease?.release();
    this.client.close();
  }

  private dropLease(): void {
    this.lease?.release();
    this.lease = undefined;
    this.leaseId = undefined;
  }
}
