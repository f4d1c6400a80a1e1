import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { BehaviorSubject, Observable, Subscription } from 'rxjs';
import {
  backoffDelayMs,
  bounded,
  describeError,
  hasReached,
  LifecycleClock,
  LifecycleService,
  LifecycleState,
} from '@nest-rollout/lifecycle';
import { defaultInstanceId, detectAdvertisedAddress } from './address';
import type { RegistryDriver } from './drivers/registry.driver';
import { REGISTRY_CLOCK, REGISTRY_DRIVER, REGISTRY_OPTIONS, REGISTRY_RANDOM, RegistryEvent } from './registry.constants';
import { RegistryPermissionError, RegistryTimeoutError, registryTimeouts } from './registry.errors';
import type { ResolvedRegistryOptions } from './registry.options';
import { RegistryOperationKind, RegistryStats } from './registry.stats';
import { RegistrationState, ServiceRegistration } from './registry.types';

/** A retry at the backoff ceiling (with its jitter), for failures that waiting longer will not make worse. */
export function ceilingDelayMs(policy: ResolvedRegistryOptions['retry'], random: () => number): number {
  return backoffDelayMs({ ...policy, initialDelayMs: policy.maxDelayMs }, 1, random);
}

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Keeps this instance in the registry exactly while it should receive traffic: registers at READY
 * (never before), retries with backoff while the registry is unreachable, feeds heartbeats, puts the
 * entry back when the registry lost it (anti-entropy), and deregisters at DRAINING (a drain task)
 * and again in onApplicationShutdown, each call bounded so that a dead registry never holds the
 * shutdown.
 */
@Injectable()
export class RegistryService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Registry');
  private readonly states = new BehaviorSubject<RegistrationState>(RegistrationState.DISABLED);
  private subscription: Subscription | undefined;
  private current: ServiceRegistration | undefined;
  private loop: AbortController | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private leavingAt: number | undefined;
  private deregistration: Promise<void> | undefined;
  /** A register call was cut off before it answered: it may still land, so no later deregistration is skipped. */
  private lateRegisterPossible = false;
  private deregisteredOk = false;
  private closed = false;
  /** Kinds of call whose permission problem is logged and not yet resolved: each is logged once. */
  private readonly denied = new Set<RegistryOperationKind>();

  constructor(
    @Inject(REGISTRY_OPTIONS) readonly options: ResolvedRegistryOptions,
    private readonly lifecycle: LifecycleService,
    @Inject(REGISTRY_DRIVER) private readonly driver: RegistryDriver,
    @Inject(REGISTRY_CLOCK) private readonly clock: LifecycleClock,
    @Inject(REGISTRY_RANDOM) private readonly random: () => number,
    private readonly stats: RegistryStats,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {}

  /** True when this instance registers at all (a driver other than `none`, and `register` on). */
  get enabled(): boolean {
    return this.options.driver !== 'none' && this.options.register;
  }

  get state(): RegistrationState {
    return this.states.value;
  }

  /** The current state, then every change. */
  get state$(): Observable<RegistrationState> {
    return this.states.asObservable();
  }

  get registered(): boolean {
    return this.state === RegistrationState.REGISTERED;
  }

  /** What was (or is being) put in the registry; undefined before READY. */
  get registration(): ServiceRegistration | undefined {
    return this.current;
  }

  onModuleInit(): void {
    if (!this.enabled) {
      this.setState(RegistrationState.DISABLED);
      this.logger.log({
        event: RegistryEvent.DISABLED,
        ...this.identityFields(),
        driver: this.options.driver,
        register: this.options.register,
      });
      return;
    }
    this.setState(RegistrationState.WAITING_FOR_READY);
    // Deregistration starts with DRAINING, in parallel with the drain delay, so the registry stops
    // sending callers here while the listener still serves them.
    this.lifecycle.registerDrainTask({
      name: 'registry.deregister',
      // Our own bound fires first and logs why; the lifecycle's is the backstop.
      timeoutMs: this.options.deregisterTimeoutMs + 1000,
      run: () => this.deregister('draining'),
    });
    this.subscription = this.lifecycle.state$.subscribe((state) => {
      if (state === LifecycleState.READY) this.start();
      else if (hasReached(state, LifecycleState.DRAINING)) {
        this.leavingAt ??= this.clock.now();
        this.stopLoop();
      }
    });
  }

  /**
   * Removes this instance from the registry (bounded by `deregisterTimeoutMs`). Called by the drain
   * task and by onApplicationShutdown; concurrent calls share one attempt, and a repeated call after
   * a confirmed deregistration is skipped unless a register call may still have landed since.
   */
  deregister(reason = 'requested'): Promise<void> {
    if (!this.enabled || !this.current) return Promise.resolve();
    this.leavingAt ??= this.clock.now();
    this.stopLoop();
    this.deregistration ??= this.runDeregistration(this.current, reason).finally(() => (this.deregistration = undefined));
    return this.deregistration;
  }

  async onApplicationShutdown(): Promise<void> {
    this.subscription?.unsubscribe();
    if (this.closed) return;
    this.closed = true;
    try {
      // The guarantee: whatever happened at DRAINING (no drain with app.close(), a timeout, a
      // register call that landed late), try once more before the process goes.
      await this.deregister('shutdown').catch(() => undefined);
    } finally {
      await this.driver.close().catch(() => undefined);
    }
  }

  private start(): void {
    if (this.loop || this.current) return;
    const registration = this.buildRegistration();
    if (!registration) return;
    this.current = registration;
    this.loop = new AbortController();
    this.loopDone = this.run(registration, this.loop.signal).catch((error: unknown) =>
      this.logger.error({ event: RegistryEvent.REGISTER_FAILED, ...this.fields(registration), error: describeError(error) }),
    );
  }

  private stopLoop(): void {
    this.loop?.abort();
  }

  /** Register, then keep registered: heartbeats, anti-entropy, re-registration after a loss. */
  private async run(registration: ServiceRegistration, signal: AbortSignal): Promise<void> {
    const heartbeatIntervalMs = this.driver.heartbeatIntervalMs;
    let registered = false;
    let attempt = 0;
    let lastHeartbeatOkAt = 0;
    let nextHeartbeatAt = 0;
    let nextAntiEntropyAt = 0;
    while (!signal.aborted) {
      if (!registered) {
        this.setState(RegistrationState.REGISTERING);
        const started = this.clock.now();
        const outcome = await this.operation(
          'register',
          this.options.operationTimeoutMs,
          (s) => this.driver.register(registration, s),
          signal,
        );
        if (signal.aborted) {
          // Cut off mid-call (the instance is leaving): the write may still land on the registry.
          this.lateRegisterPossible = true;
          return;
        }
        if (!outcome.ok && outcome.error instanceof RegistryPermissionError) {
          // Retrying at the normal pace cannot grant a permission: say so once, then try again at
          // the backoff ceiling, so that the registration follows soon after an operator fixes it.
          attempt += 1;
          const retryInMs = ceilingDelayMs(this.options.retry, this.random);
          this.reportDenied(registration, 'register', outcome.error, retryInMs);
          await this.clock.sleep(retryInMs, signal);
          continue;
        }
        if (!outcome.ok) {
          attempt += 1;
          const retryInMs = backoffDelayMs(this.options.retry, attempt, this.random);
          this.logger.warn({
            event: RegistryEvent.REGISTER_FAILED,
            ...this.fields(registration),
            attempt,
            retry_in_ms: retryInMs,
            error: describeError(outcome.error),
          });
          await this.clock.sleep(retryInMs, signal);
          continue;
        }
        registered = true;
        this.denied.delete('register');
        this.deregisteredOk = false;
        const now = this.clock.now();
        lastHeartbeatOkAt = now;
        nextHeartbeatAt = now;
        nextAntiEntropyAt = now + this.options.antiEntropyIntervalMs;
        this.setState(RegistrationState.REGISTERED);
        this.logger.log({
          event: RegistryEvent.REGISTERED,
          ...this.fields(registration),
          address: registration.address,
          port: registration.port,
          tags: registration.tags,
          meta: registration.meta,
          attempts: attempt + 1,
          duration_ms: now - started,
        });
        attempt = 0;
        continue;
      }

      const heartbeatDue = heartbeatIntervalMs === undefined ? Infinity : nextHeartbeatAt;
      const wait = Math.min(heartbeatDue, nextAntiEntropyAt) - this.clock.now();
      if (wait > 0) await this.clock.sleep(wait, signal);
      if (signal.aborted) return;
      const now = this.clock.now();

      if (heartbeatIntervalMs !== undefined && now >= nextHeartbeatAt) {
        nextHeartbeatAt = now + heartbeatIntervalMs;
        const healthy = await this.healthy();
        const outcome = await this.operation(
          'heartbeat',
          this.options.operationTimeoutMs,
          (s) => this.driver.heartbeat(registration, healthy, s),
          signal,
        );
        if (signal.aborted) return;
        if (outcome.ok && outcome.value === 'ok') {
          lastHeartbeatOkAt = this.clock.now();
          this.denied.delete('heartbeat');
        } else if (outcome.ok) {
          registered = this.lost(registration, 'heartbeat');
          continue;
        } else if (outcome.error instanceof RegistryPermissionError) {
          this.reportDenied(registration, 'heartbeat', outcome.error);
        } else {
          this.logger.warn({ event: RegistryEvent.HEARTBEAT_FAILED, ...this.fields(registration), error: describeError(outcome.error) });
          // No keep-alive for a whole TTL: the registry has dropped us for sure (etcd lease), even
          // if it has not said so (a half-open connection never answers).
          const expiresAfterMs = this.driver.expiresAfterMs;
          if (expiresAfterMs !== undefined && this.clock.now() - lastHeartbeatOkAt >= expiresAfterMs) {
            registered = this.lost(registration, 'heartbeat_expired');
            continue;
          }
        }
      }

      if (this.clock.now() >= nextAntiEntropyAt) {
        nextAntiEntropyAt = this.clock.now() + this.options.antiEntropyIntervalMs;
        const outcome = await this.operation(
          'anti_entropy',
          this.options.operationTimeoutMs,
          (s) => this.driver.isRegistered(registration, s),
          signal,
        );
        if (signal.aborted) return;
        if (outcome.ok && !outcome.value) {
          registered = this.lost(registration, 'anti_entropy');
        } else if (outcome.ok) {
          this.denied.delete('anti_entropy');
        } else if (outcome.error instanceof RegistryPermissionError) {
          // Not a loss: the registry may hold the entry and not show it to us. Registering again
          // would not help and, with a token that may not write either, would never end.
          this.reportDenied(registration, 'anti_entropy', outcome.error);
        } else {
          this.logger.warn({ event: RegistryEvent.ANTI_ENTROPY_FAILED, ...this.fields(registration), error: describeError(outcome.error) });
        }
      }
    }
  }

  /** Logs a permission problem of one kind of call, once until that kind of call succeeds again. */
  private reportDenied(registration: ServiceRegistration, operation: RegistryOperationKind, error: unknown, retryInMs?: number): void {
    if (this.denied.has(operation)) return;
    this.denied.add(operation);
    this.logger.error({
      event: RegistryEvent.PERMISSION_DENIED,
      ...this.fields(registration),
      operation,
      ...(retryInMs !== undefined ? { retry_in_ms: retryInMs } : {}),
      error: describeError(error),
    });
  }

  /** Logs and counts a lost registration; returns the new `registered` flag (false). */
  private lost(registration: ServiceRegistration, detectedBy: string): false {
    this.stats.recordLost();
    this.logger.warn({ event: RegistryEvent.REGISTRATION_LOST, ...this.fields(registration), detected_by: detectedBy });
    return false;
  }

  private async runDeregistration(registration: ServiceRegistration, reason: string): Promise<void> {
    // Let the loop notice the abort (its calls are cut off at once), so that no register call of
    // ours starts after the deregistration.
    await this.loopDone;
    if (this.deregisteredOk && !this.lateRegisterPossible) return;
    this.setState(RegistrationState.DEREGISTERING);
    const started = this.clock.now();
    const outcome = await this.operation('deregister', this.options.deregisterTimeoutMs, (s) => this.driver.deregister(registration, s));
    const now = this.clock.now();
    if (outcome.ok) {
      this.deregisteredOk = true;
      this.setState(RegistrationState.DEREGISTERED);
      const sinceLeavingMs = now - (this.leavingAt ?? started);
      this.stats.recordDeregistered(sinceLeavingMs);
      this.logger.log({
        event: RegistryEvent.DEREGISTERED,
        ...this.fields(registration),
        reason,
        duration_ms: now - started,
        since_draining_ms: sinceLeavingMs,
      });
      return;
    }
    this.logger.error({
      event: RegistryEvent.DEREGISTER_FAILED,
      ...this.fields(registration),
      reason,
      duration_ms: now - started,
      timeout_ms: this.options.deregisterTimeoutMs,
      error: describeError(outcome.error),
    });
    throw outcome.error;
  }

  /** One bounded driver call, counted by kind and result. */
  private async operation<T>(
    kind: RegistryOperationKind,
    timeoutMs: number,
    fn: (signal: AbortSignal) => Promise<T>,
    outer?: AbortSignal,
  ): Promise<Outcome<T>> {
    const started = this.clock.now();
    try {
      const value = await bounded(this.clock, timeoutMs, fn, { signal: outer, ...registryTimeouts(kind, timeoutMs) });
      this.stats.recordOperation(kind, 'success', this.clock.now() - started);
      return { ok: true, value };
    } catch (error) {
      if (!outer?.aborted)
        this.stats.recordOperation(kind, error instanceof RegistryTimeoutError ? 'timeout' : 'failure', this.clock.now() - started);
      return { ok: false, error };
    }
  }

  /** TTL heartbeats report pass only while the lifecycle is READY and the user's condition agrees. */
  private async healthy(): Promise<boolean> {
    if (!this.lifecycle.isReady()) return false;
    const isHealthy = this.options.driver === 'consul' ? this.options.consul.check.isHealthy : undefined;
    if (!isHealthy) return true;
    try {
      return (await isHealthy()) === true;
    } catch {
      return false;
    }
  }

  private buildRegistration(): ServiceRegistration | undefined {
    const service = this.options.service!;
    const port = this.options.port ?? this.serverPort();
    if (port === undefined) {
      this.logger.error({
        event: RegistryEvent.PORT_UNKNOWN,
        ...this.identityFields(),
        service,
        error: { message: 'the HTTP server is not listening on a TCP port; set the port option of RegistryModule' },
      });
      return undefined;
    }
    let address = this.options.address ?? detectAdvertisedAddress(networkInterfaces());
    if (address === undefined) {
      address = '127.0.0.1';
      this.logger.warn({
        event: RegistryEvent.ADDRESS_FALLBACK,
        ...this.identityFields(),
        service,
        address,
        error: { message: 'no non-loopback IPv4 address found; only callers on this host can reach 127.0.0.1, set the address option' },
      });
    }
    const { version, color } = this.lifecycle.identity;
    return Object.freeze({
      id: this.options.instanceId ?? defaultInstanceId(service, hostname(), port),
      name: service,
      address,
      port,
      tags: Object.freeze([...this.options.tags]),
      meta: Object.freeze({ ...this.options.meta, version, color, track: this.options.track }),
    });
  }

  private serverPort(): number | undefined {
    try {
      const server = this.adapterHost?.httpAdapter?.getHttpServer() as { address?: () => AddressInfo | string | null } | undefined;
      const address = server?.address?.();
      return address && typeof address === 'object' && address.port > 0 ? address.port : undefined;
    } catch {
      return undefined;
    }
  }

  private setState(state: RegistrationState): void {
    this.stats.setState(this.options.driver, state);
    if (this.states.value !== state) this.states.next(state);
  }

  private fields(registration: ServiceRegistration) {
    return {
      ...this.identityFields(),
      service: registration.name,
      registry_instance_id: registration.id,
      driver: this.driver.kind,
      target: this.driver.target,
    };
  }

  private identityFields() {
    const { instanceId, version, color } = this.lifecycle.identity;
    return { instance_id: instanceId, version, color, trace_id: this.lifecycle.traceId };
  }
}
