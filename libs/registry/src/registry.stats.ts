import { Injectable } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { RegistrationState, RegistryDriverKind } from './registry.types';

export type RegistryOperationKind = 'register' | 'deregister' | 'heartbeat' | 'anti_entropy' | 'discovery';
export type RegistryOperationResult = 'success' | 'failure' | 'timeout';

/** How current one discovery view is. */
export interface DiscoveryStatus {
  readonly service: string;
  readonly passingOnly: boolean;
  readonly instances: number;
  /** 0 while the feed is live; otherwise milliseconds since it last was (or since it started, if never). */
  readonly stalenessMs: number;
  readonly live: boolean;
  readonly keptLastKnown: boolean;
}

export interface RegistryOperationCount {
  readonly kind: RegistryOperationKind;
  readonly result: RegistryOperationResult;
  readonly count: number;
}

/** Everything a metrics exporter needs, read at scrape time. */
export interface RegistryStatsSnapshot {
  readonly driver: RegistryDriverKind;
  readonly state: RegistrationState;
  readonly registered: boolean;
  readonly operations: readonly RegistryOperationCount[];
  /** Entries the registry lost and that were registered again. */
  readonly registrationsLost: number;
  /** From DRAINING (or STOPPING, for app.close()) to the deregistration confirmed; undefined before it. */
  readonly lastDeregistrationMs: number | undefined;
  readonly discovery: readonly DiscoveryStatus[];
}

/** One event per finished registry call, and one per deregistration, for histograms. */
export type RegistryStatsEvent =
  | {
      readonly type: 'operation';
      readonly kind: RegistryOperationKind;
      readonly result: RegistryOperationResult;
      readonly durationMs: number;
    }
  | { readonly type: 'registration_lost' }
  | { readonly type: 'deregistered'; readonly sinceDrainingMs: number };

/**
 * Counters and gauges of the registry, as plain numbers and an event stream: the metrics module
 * (or anything else) reads them without this lib depending on it.
 */
@Injectable()
export class RegistryStats {
  private readonly counts = new Map<string, number>();
  private readonly events = new Subject<RegistryStatsEvent>();
  private driverKind: RegistryDriverKind = 'none';
  private registrationState: RegistrationState = RegistrationState.DISABLED;
  private lost = 0;
  private deregistrationMs: number | undefined;
  private discoverySource: () => readonly DiscoveryStatus[] = () => [];

  /** Every operation, loss and deregistration as it happens. */
  get events$(): Observable<RegistryStatsEvent> {
    return this.events.asObservable();
  }

  snapshot(): RegistryStatsSnapshot {
    const operations: RegistryOperationCount[] = [];
    for (const [key, count] of this.counts) {
      const [kind, result] = key.split('|') as [RegistryOperationKind, RegistryOperationResult];
      operations.push({ kind, result, count });
    }
    return {
      driver: this.driverKind,
      state: this.registrationState,
      registered: this.registrationState === RegistrationState.REGISTERED,
      operations,
      registrationsLost: this.lost,
      lastDeregistrationMs: this.deregistrationMs,
      discovery: this.discoverySource(),
    };
  }

  /** Count of one kind and result (0 when none happened). */
  count(kind: RegistryOperationKind, result: RegistryOperationResult): number {
    return this.counts.get(`${kind}|${result}`) ?? 0;
  }

  /** @internal */
  recordOperation(kind: RegistryOperationKind, result: RegistryOperationResult, durationMs: number): void {
    const key = `${kind}|${result}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.events.next({ type: 'operation', kind, result, durationMs });
  }

  /** @internal */
  recordLost(): void {
    this.lost += 1;
    this.events.next({ type: 'registration_lost' });
  }

  /** @internal */
  recordDeregistered(sinceDrainingMs: number): void {
    this.deregistrationMs = sinceDrainingMs;
    this.events.next({ type: 'deregistered', sinceDrainingMs });
  }

  /** @internal */
  setState(driver: RegistryDriverKind, state: RegistrationState): void {
    this.driverKind = driver;
    this.registrationState = state;
  }

  /** @internal */
  setDiscoverySource(source: () => readonly DiscoveryStatus[]): void {
    this.discoverySource = source;
  }
}
