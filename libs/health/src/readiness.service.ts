import {
  Inject,
  Injectable,
  InjectionToken,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleDestroy,
  OnModuleInit,
  Type,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { hasReached, LifecycleService, untilAborted, LifecycleState } from '@nest-rollout/lifecycle';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { BehaviorSubject, distinctUntilChanged, Observable, Subject, Subscription } from 'rxjs';
import { CheckScheduler } from './check.scheduler';
import type { HealthCheckContext, HealthCheckReport, ReadinessChange, ResolvedHealthCheck } from './health.check';
import { HEALTH_CLOCK, HEALTH_OPTIONS, HealthEvent } from './health.constants';
import type { ResolvedHealthOptions } from './health.options';

/** What the probes answer from: one evaluation, so a body never mixes two moments. */
export interface ReadinessSnapshot {
  readonly ready: boolean;
  readonly lifecycleState: LifecycleState;
  readonly checks: readonly HealthCheckReport[];
}

/** Extra time the warm-up waits for the first round beyond the slowest check's timeout. */
const FIRST_ROUND_MARGIN_MS = 1_000;

/**
 * The instance's readiness: lifecycle READY and every critical check up. Runs the checks in the
 * background (from bootstrap until the lifecycle reaches STOPPING), logs each change once, and
 * publishes it on `changes$` for other modules (a registry deregistering, metrics counting).
 */
@Injectable()
export class ReadinessService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy, OnApplicationShutdown {
  private readonly logger = new Logger('Health');
  private readonly scheduler: CheckScheduler;
  private readonly readyState = new BehaviorSubject<boolean>(false);
  private readonly readinessChanges = new Subject<ReadinessChange>();
  /** Terminus indicators resolved for the checks; transient providers, so each is resolved once here. */
  private readonly terminusIndicators = new Map<Type<unknown>, Promise<unknown>>();
  private lifecycleSubscription: Subscription | undefined;

  constructor(
    @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
    @Inject(HEALTH_CLOCK) private readonly clock: LifecycleClock,
    private readonly lifecycle: LifecycleService,
    private readonly moduleRef: ModuleRef,
  ) {
    this.scheduler = new CheckScheduler(options.readiness, clock, {
      context: (check, signal) => this.context(check, signal),
      onStatusChange: (report, previous) => this.onCheckChanged(report, previous),
      secrets: options.redact,
    });
  }

  /** True when the lifecycle is READY and every critical check is up and fresh. */
  isReady(): boolean {
    return this.snapshot().ready;
  }

  /** The current readiness, then every change. */
  get ready$(): Observable<boolean> {
    return this.readyState.pipe(distinctUntilChanged());
  }

  /** Every change of readiness, with its reason and the failing checks. */
  get changes$(): Observable<ReadinessChange> {
    return this.readinessChanges.asObservable();
  }

  /** The state of every readiness check now. */
  checks(): HealthCheckReport[] {
    return this.scheduler.reports();
  }

  /** Evaluates readiness now (and publishes a change if the `maxAgeMs` rule just flipped it). */
  snapshot(): ReadinessSnapshot {
    return this.evaluate('latest results too old');
  }

  onModuleInit(): void {
    this.lifecycleSubscription = this.lifecycle.state$.subscribe((state) => {
      // Dependencies close in Nest's shutdown hooks: checking them then would only log noise.
      if (hasReached(state, LifecycleState.STOPPING)) this.scheduler.stop();
      // Clients connect in warm-up tasks, which run alongside the first checks: a check that found
      // its client still connecting is run again at READY rather than one interval later.
      if (state === LifecycleState.READY) this.scheduler.refresh((report) => report.status !== 'up');
      this.evaluate(`lifecycle ${state}`);
    });
    if (this.options.readiness.length > 0 && this.lifecycle.state === LifecycleState.STARTING) {
      // READY waits for the first results, so the instance never reports ready on checks it has
      // not run. Not critical: a dependency down at boot keeps the instance unready, not dead.
      const slowest = Math.max(...this.options.readiness.map((c) => c.timeoutMs));
      this.lifecycle.registerWarmupTask({
        name: 'health.first_checks',
        critical: false,
        timeoutMs: slowest + FIRST_ROUND_MARGIN_MS,
        run: (signal) => untilAborted(this.scheduler.firstRound, signal),
      });
    }
  }

  onApplicationBootstrap(): void {
    if (!this.lifecycle.hasReached(LifecycleState.STOPPING)) this.scheduler.start();
  }

  onModuleDestroy(): void {
    this.scheduler.stop();
    this.lifecycleSubscription?.unsubscribe();
  }

  async onApplicationShutdown(): Promise<void> {
    // Indicators that hold clients (terminus' gRPC one keeps a channel per key) close them here.
    const indicators = await Promise.allSettled(this.terminusIndicators.values());
    for (const result of indicators) {
      const instance = result.status === 'fulfilled' ? (result.value as { onApplicationShutdown?: () => unknown }) : undefined;
      try {
        await instance?.onApplicationShutdown?.();
      } catch {
        // A failing close must not stop the other hooks; the process is leaving anyway.
      }
    }
    this.terminusIndicators.clear();
  }

  private context(check: ResolvedHealthCheck, signal: AbortSignal): HealthCheckContext {
    return {
      signal,
      timeoutMs: check.timeoutMs,
      get: <T>(token: InjectionToken<T>): T => this.moduleRef.get<T>(token as Type<T>, { strict: false }),
      terminus: <T>(indicator: Type<T>): Promise<T> => {
        let instance = this.terminusIndicators.get(indicator);
        if (!instance) {
          instance = this.moduleRef.resolve(indicator, undefined, { strict: false });
          this.terminusIndicators.set(indicator, instance);
        }
        return instance as Promise<T>;
      },
    };
  }

  private onCheckChanged(report: HealthCheckReport, previous: 'pending' | 'up' | 'down'): void {
    const fields = {
      event: HealthEvent.CHECK_CHANGED,
      ...this.identity(),
      check: report.name,
      dependency: report.dependency,
      critical: report.critical,
      from: previous,
      to: report.status,
      ...(report.kind ? { kind: report.kind, error: report.message } : {}),
      consecutive_failures: report.consecutiveFailures,
    };
    // Before the instance has started, a dependency still coming up is expected (the warm-up is
    // waiting for it): logged, but not as a warning that alerts would count.
    if (report.status === 'down' && this.lifecycle.hasReached(LifecycleState.READY)) this.logger.warn(fields);
    else this.logger.log(fields);
    this.evaluate(`check ${report.name} ${report.status}${report.status === 'down' && report.kind ? ` (${report.kind})` : ''}`);
  }

  /** The one place readiness is computed; logs and emits when it changed. */
  private evaluate(reason: string): ReadinessSnapshot {
    const checks = this.scheduler.reports();
    const lifecycleState = this.lifecycle.state;
    const failing = checks.filter((c) => c.critical && c.status === 'down').map((c) => c.name);
    const ready = lifecycleState === LifecycleState.READY && failing.length === 0;
    if (ready !== this.readyState.value) {
      const change: ReadinessChange = { ready, at: this.clock.now(), reason, failing, lifecycleState };
      const fields = { event: HealthEvent.READINESS_CHANGED, ...this.identity(), ready, reason, lifecycle_state: lifecycleState, failing };
      // Unready while the lifecycle says READY means a dependency failed: worth a warning.
      if (!ready && lifecycleState === LifecycleState.READY) this.logger.warn(fields);
      else this.logger.log(fields);
      this.readyState.next(ready);
      this.readinessChanges.next(change);
    }
    return { ready, lifecycleState, checks };
  }

  private identity() {
    const { instanceId, version, color } = this.lifecycle.identity;
    return { instance_id: instanceId, version, color, trace_id: this.lifecycle.traceId };
  }
}
