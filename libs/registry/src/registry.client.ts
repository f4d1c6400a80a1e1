import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { backoffDelayMs, describeError } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import type { DiscoverySink, RegistryDriver } from './drivers/registry.driver';
import { REGISTRY_CLOCK, REGISTRY_DRIVER, REGISTRY_OPTIONS, REGISTRY_RANDOM, RegistryEvent } from './registry.constants';
import { RegistryPermissionError, RegistryTimeoutError } from './registry.errors';
import type { ResolvedRegistryOptions } from './registry.options';
import { ceilingDelayMs } from './registry.service';
import { DiscoveryStatus, RegistryStats } from './registry.stats';
import type { InstanceQuery, ServiceInstance, ServiceInstancesChange } from './registry.types';

/**
 * Discovery: the healthy instances of a service, kept current by Consul blocking queries or an
 * etcd watch and served from memory, so a caller on the hot path never waits for the registry.
 * A service is followed from the first time it is asked for until the module closes.
 */
@Injectable()
export class RegistryClient implements OnModuleDestroy {
  private readonly logger = new Logger('Registry');
  private readonly feeds = new Map<string, DiscoveryFeed>();
  private readonly cursors = new Map<string, number>();
  private closed = false;

  constructor(
    @Inject(REGISTRY_OPTIONS) private readonly options: ResolvedRegistryOptions,
    @Inject(REGISTRY_DRIVER) private readonly driver: RegistryDriver,
    @Inject(REGISTRY_CLOCK) private readonly clock: LifecycleClock,
    @Inject(REGISTRY_RANDOM) private readonly random: () => number,
    private readonly stats: RegistryStats,
  ) {
    stats.setDiscoverySource(() => this.status());
  }

  /** The instances of `service` matching `query`, from memory; empty until the first answer arrives. */
  instances(service: string, query: InstanceQuery = {}): readonly ServiceInstance[] {
    return matching(this.feed(service, query).instances, query);
  }

  /** Resolves with the matching instances once the registry has answered once (at once if it has). */
  async ready(
    service: string,
    query: InstanceQuery = {},
    timeoutMs = this.options.operationTimeoutMs,
  ): Promise<readonly ServiceInstance[]> {
    const feed = this.feed(service, query);
    if (!feed.synced) {
      await new Promise<void>((resolve, reject) => {
        const cancel = this.clock.setTimer(timeoutMs, () => {
          feed.offSynced(done);
          reject(new RegistryTimeoutError(`discovery of "${service}"`, timeoutMs));
        });
        const done = () => {
          cancel();
          resolve();
        };
        feed.onSynced(done);
      });
    }
    return matching(feed.instances, query);
  }

  /**
   * Round-robin over the matching instances; undefined when there is none. The rotation is per
   * service and query, so two callers with different filters do not skew each other.
   */
  pick(service: string, query: InstanceQuery = {}): ServiceInstance | undefined {
    const instances = this.instances(service, query);
    if (instances.length === 0) return undefined;
    const key = `${this.feedKey(service, query)}|${queryKey(query)}`;
    const cursor = this.cursors.get(key) ?? 0;
    this.cursors.set(key, (cursor + 1) % 1_000_000_007);
    return instances[cursor % instances.length];
  }

  /** The matching instances now (once known), then every change of them. */
  changes$(service: string, query: InstanceQuery = {}): Observable<ServiceInstancesChange> {
    return new Observable<ServiceInstancesChange>((subscriber) => {
      const feed = this.feed(service, query);
      let previous: readonly ServiceInstance[] | undefined;
      let previousKept = false;
      const emit = () => {
        const instances = matching(feed.instances, query);
        if (previous && signature(previous) === signature(instances) && previousKept === feed.keptLastKnown) return;
        const before = new Map((previous ?? []).map((i) => [i.id, i]));
        const after = new Map(instances.map((i) => [i.id, i]));
        subscriber.next({
          service,
          instances,
          added: instances.filter((i) => !before.has(i.id)),
          removed: (previous ?? []).filter((i) => !after.has(i.id)),
          at: this.clock.now(),
          keptLastKnown: feed.keptLastKnown,
        });
        previous = instances;
        previousKept = feed.keptLastKnown;
      };
      if (feed.synced) emit();
      const subscription = feed.changes.subscribe(emit);
      return () => subscription.unsubscribe();
    });
  }

  /** How current each followed service's view is. */
  status(): DiscoveryStatus[] {
    return [...this.feeds.values()].map((feed) => feed.status());
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.feeds.values()].map((feed) => feed.stop()));
  }

  private feed(service: string, query: InstanceQuery): DiscoveryFeed {
    const key = this.feedKey(service, query);
    let feed = this.feeds.get(key);
    if (!feed) {
      feed = new DiscoveryFeed(
        service,
        query.passingOnly ?? this.options.discovery.passingOnly,
        this.options,
        this.driver,
        this.clock,
        this.random,
        this.stats,
        this.logger,
      );
      this.feeds.set(key, feed);
      if (!this.closed) feed.start();
    }
    return feed;
  }

  private feedKey(service: string, query: InstanceQuery): string {
    return `${service}|${query.passingOnly ?? this.options.discovery.passingOnly}`;
  }
}

/** One followed service: the feed loop, the view, and its empty-result policy. */
class DiscoveryFeed implements DiscoverySink {
  readonly changes = new Subject<void>();
  instances: readonly ServiceInstance[] = [];
  synced = false;
  keptLastKnown = false;
  private lastGood: readonly ServiceInstance[] = [];
  private isLive = false;
  private readonly startedAt: number;
  private lastLiveAt: number | undefined;
  private failures = 0;
  /** A permission problem has been logged since the feed was last live. */
  private deniedLogged = false;
  private cancelKeep: (() => void) | undefined;
  private readonly syncWaiters = new Set<() => void>();
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();

  constructor(
    readonly service: string,
    readonly passingOnly: boolean,
    private readonly options: ResolvedRegistryOptions,
    private readonly driver: RegistryDriver,
    private readonly clock: LifecycleClock,
    private readonly random: () => number,
    private readonly stats: RegistryStats,
    private readonly logger: Logger,
  ) {
    this.startedAt = clock.now();
  }

  start(): void {
    this.logger.log({
      event: RegistryEvent.DISCOVERY_STARTED,
      service: this.service,
      passing_only: this.passingOnly,
      driver: this.driver.kind,
      target: this.driver.target,
    });
    this.done = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.cancelKeep?.();
    await this.done;
    this.changes.complete();
  }

  onSynced(waiter: () => void): void {
    this.syncWaiters.add(waiter);
  }

  offSynced(waiter: () => void): void {
    this.syncWaiters.delete(waiter);
  }

  status(): DiscoveryStatus {
    return {
      service: this.service,
      passingOnly: this.passingOnly,
      instances: this.instances.length,
      stalenessMs: this.stalenessMs(),
      live: this.isLive,
      keptLastKnown: this.keptLastKnown,
    };
  }

  stalenessMs(): number {
    return this.isLive ? 0 : this.clock.now() - (this.lastLiveAt ?? this.startedAt);
  }

  /**
   * Runs the driver's feed, and starts it again with backoff whenever it breaks: node-consul's
   * Watch, by contrast, ends for good on some errors and leaves a caller with a frozen view.
   */
  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        await this.driver.watch({ service: this.service, passingOnly: this.passingOnly }, this, signal);
      } catch (error) {
        if (signal.aborted) return;
        if (this.isLive) this.lastLiveAt = this.clock.now();
        this.isLive = false;
        this.failures += 1;
        this.stats.recordOperation('discovery', 'failure', 0);
        if (error instanceof RegistryPermissionError) {
          // An answer the ACLs cut short is not the service's state, and asking again at the normal
          // pace will not grant the permission: say so once, keep the last known view, retry at the
          // backoff ceiling.
          const retryInMs = ceilingDelayMs(this.options.retry, this.random);
          if (!this.deniedLogged) {
            this.deniedLogged = true;
            this.logger.error({
              event: RegistryEvent.PERMISSION_DENIED,
              service: this.service,
              operation: 'discovery',
              retry_in_ms: retryInMs,
              staleness_ms: this.stalenessMs(),
              error: describeError(error),
            });
          }
          await this.clock.sleep(retryInMs, signal);
          continue;
        }
        const retryInMs = backoffDelayMs(this.options.retry, this.failures, this.random);
        this.logger.warn({
          event: RegistryEvent.DISCOVERY_FAILED,
          service: this.service,
          attempt: this.failures,
          retry_in_ms: retryInMs,
          staleness_ms: this.stalenessMs(),
          error: describeError(error),
        });
        await this.clock.sleep(retryInMs, signal);
      }
    }
  }

  live(): void {
    this.stats.recordOperation('discovery', 'success', 0);
    if (this.failures > 0) {
      this.logger.log({
        event: RegistryEvent.DISCOVERY_RECOVERED,
        service: this.service,
        after_failures: this.failures,
        staleness_ms: this.stalenessMs(),
      });
      this.failures = 0;
    }
    this.deniedLogged = false;
    this.isLive = true;
    this.lastLiveAt = this.clock.now();
  }

  update(instances: readonly ServiceInstance[]): void {
    const sorted = [...instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (sorted.length === 0 && this.lastGood.length > 0 && this.options.discovery.onEmpty === 'keep-last-known') {
      // Every instance gone at once is more often the registry's problem (a restart that lost its
      // state, an ACL change) than the service's: keep routing to the last known set for a while.
      if (!this.keptLastKnown) {
        this.keptLastKnown = true;
        this.logger.warn({
          event: RegistryEvent.DISCOVERY_EMPTY_KEPT,
          service: this.service,
          kept: this.lastGood.length,
          keep_max_ms: this.options.discovery.keepLastKnownMaxMs,
        });
        this.cancelKeep = this.clock.setTimer(this.options.discovery.keepLastKnownMaxMs, () => this.acceptEmpty());
        this.changes.next();
      }
      this.markSynced();
      return;
    }
    const wasKept = this.keptLastKnown;
    if (wasKept) {
      this.keptLastKnown = false;
      this.cancelKeep?.();
      this.cancelKeep = undefined;
    }
    // Leaving the kept state is news to subscribers even when the set is the same as the kept one.
    this.apply(sorted, wasKept);
  }

  private acceptEmpty(): void {
    if (!this.keptLastKnown) return;
    this.keptLastKnown = false;
    this.cancelKeep = undefined;
    this.lastGood = [];
    this.logger.warn({
      event: RegistryEvent.DISCOVERY_EMPTY_ACCEPTED,
      service: this.service,
      kept_ms: this.options.discovery.keepLastKnownMaxMs,
    });
    this.apply([]);
  }

  private apply(instances: readonly ServiceInstance[], notify = false): void {
    const changed = signature(instances) !== signature(this.instances) || !this.synced;
    const before = new Set(this.instances.map((i) => i.id));
    const after = new Set(instances.map((i) => i.id));
    this.instances = instances;
    if (instances.length > 0) this.lastGood = instances;
    this.markSynced();
    if (!changed) {
      if (notify) this.changes.next();
      return;
    }
    this.logger.log({
      event: RegistryEvent.DISCOVERY_CHANGED,
      service: this.service,
      count: instances.length,
      added: [...after].filter((id) => !before.has(id)),
      removed: [...before].filter((id) => !after.has(id)),
    });
    this.changes.next();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    for (const waiter of [...this.syncWaiters]) waiter();
    this.syncWaiters.clear();
  }
}

function matching(instances: readonly ServiceInstance[], query: InstanceQuery): readonly ServiceInstance[] {
  const tags = query.tags ?? [];
  const meta = Object.entries(query.meta ?? {});
  if (tags.length === 0 && meta.length === 0) return instances;
  return instances.filter((i) => tags.every((t) => i.tags.includes(t)) && meta.every(([k, v]) => i.meta[k] === v));
}

function signature(instances: readonly ServiceInstance[]): string {
  return JSON.stringify(instances.map((i) => [i.id, i.address, i.port, i.health, i.tags, Object.entries(i.meta).sort()]));
}

function queryKey(query: InstanceQuery): string {
  return JSON.stringify([[...(query.tags ?? [])].sort(), Object.entries(query.meta ?? {}).sort()]);
}
