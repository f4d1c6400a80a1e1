import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  INestApplication,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost, ModuleRef, NestContainer } from '@nestjs/core';
import { BehaviorSubject, Observable, Subject } from 'rxjs';
import { describeError } from './abort';
import { ApplicationCloser, ContainerCloser } from './application-closer';
import { HttpServerTracker } from './http-server.tracker';
import { LIFECYCLE_CLOCK, LIFECYCLE_OPTIONS, LIFECYCLE_PROCESS, LifecycleEvent } from './lifecycle.constants';
import { LifecycleError, LifecyclePhaseError, ShutdownHooksConflictError } from './lifecycle.errors';
import type { ResolvedLifecycleOptions } from './lifecycle.options';
import type { LifecycleClock, LifecycleProcess } from './lifecycle.runtime';
import { nestShutdownHooksEnabled, nestSignalHandlerInstalled } from './nest-shutdown-hooks';
import { containShutdownHookErrors } from './shutdown-hook-errors';
import { hasReached, isLegalTransition, LifecycleState, LifecycleStateChange } from './lifecycle.state';

/** Work done at a phase boundary, bounded by a timeout; `signal` aborts when the timeout passes. */
export interface LifecycleTask {
  readonly name: string;
  run(signal: AbortSignal): Promise<unknown> | unknown;
  /** Overrides `warmupTimeoutMs` / `drainTaskTimeoutMs` for this task. */
  readonly timeoutMs?: number;
}

export interface WarmupTask extends LifecycleTask {
  /**
   * A critical task that fails or times out stops the instance (exit 1) instead of letting it turn
   * ready half-initialised.
   * @default true
   */
  readonly critical?: boolean;
}

/** Who this instance is, as logged on every lifecycle line. */
export interface InstanceIdentity {
  readonly instanceId: string;
  readonly version: string;
  readonly color: string;
}

export function newTraceId(): string {
  return randomBytes(16).toString('hex');
}

@Injectable()
export class LifecycleService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('Lifecycle');
  private readonly states: BehaviorSubject<LifecycleState>;
  private readonly changes = new Subject<LifecycleStateChange>();
  private readonly warmupTasks: WarmupTask[] = [];
  private readonly drainTasks: LifecycleTask[] = [];
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>();
  /** Aborts the boot sequence's settle delay when a shutdown begins. */
  private readonly shutdownBegun = new AbortController();
  /** Aborted by a second signal: what is left of the drain delay is skipped. */
  private readonly skipDrainDelay = new AbortController();
  private enteredAt: number;
  private currentTraceId = newTraceId();
  /** The application handed over by `attachLifecycle(app)`, if any. */
  private app: INestApplication | undefined;
  /** `app.close()`, or Nest's shutdown sequence over the container when no application was handed over. */
  private closer: ApplicationCloser | undefined;
  private tracker: HttpServerTracker | undefined;
  private signalsInstalled = false;
  private shutdownPromise: Promise<void> | undefined;

  readonly identity: InstanceIdentity;

  constructor(
    @Inject(LIFECYCLE_OPTIONS) readonly options: ResolvedLifecycleOptions,
    @Inject(LIFECYCLE_CLOCK) private readonly clock: LifecycleClock,
    @Inject(LIFECYCLE_PROCESS) private readonly proc: LifecycleProcess,
    private readonly discovery: DiscoveryService,
    private readonly adapterHost: HttpAdapterHost,
    private readonly moduleRef: ModuleRef,
  ) {
    this.states = new BehaviorSubject<LifecycleState>(LifecycleState.STARTING);
    this.enteredAt = clock.now();
    this.identity = { instanceId: options.instanceId, version: options.version, color: options.color };
  }

  get state(): LifecycleState {
    return this.states.value;
  }

  /** The current state, then every later one. */
  get state$(): Observable<LifecycleState> {
    return this.states.asObservable();
  }

  /** Every transition, with its timing and trace id. */
  get changes$(): Observable<LifecycleStateChange> {
    return this.changes.asObservable();
  }

  /** Trace id of the running boot or shutdown sequence; lines logged outside requests carry it. */
  get traceId(): string {
    return this.currentTraceId;
  }

  isReady(): boolean {
    return this.state === LifecycleState.READY;
  }

  /** True from DRAINING on: the instance is leaving and must not receive new traffic. */
  isShuttingDown(): boolean {
    return this.hasReached(LifecycleState.DRAINING);
  }

  /** True when the instance is in `target` or a later state (`hasReached(LifecycleState.READY)`: started). */
  hasReached(target: LifecycleState): boolean {
    return hasReached(this.state, target);
  }

  /** Requests the HTTP server is handling now (0 before `attachLifecycle`). */
  get inFlightRequests(): number {
    return this.tracker?.inFlight ?? 0;
  }

  /** Registers work that must finish before READY (pool connect, cache priming). Call it in `onModuleInit`. */
  registerWarmupTask(task: WarmupTask): void {
    if (this.state !== LifecycleState.STARTING) {
      throw new LifecyclePhaseError(
        `warm-up task "${task.name}" registered in state ${this.state}; register warm-up tasks in onModuleInit`,
      );
    }
    this.warmupTasks.push(task);
  }

  /** Registers work to run, in parallel with the drain delay, as soon as DRAINING begins (e.g. deregistration). */
  registerDrainTask(task: LifecycleTask): void {
    if (this.isShuttingDown()) {
      throw new LifecyclePhaseError(`drain task "${task.name}" registered in state ${this.state}, after the drain began`);
    }
    this.drainTasks.push(task);
  }

  /**
   * Hands the application object to the lifecycle, as `attachLifecycle(app)` does: optional, since
   * the module finds the HTTP server by itself. What it adds: the shutdown ends with `app.close()`,
   * which also closes microservices and WebSocket servers connected to the application, and an
   * application that never calls `app.init()` or `app.listen()` (a test that drives the raw server)
   * is tracked too.
   */
  attach(app: INestApplication): void {
    if (this.app === app) return;
    const server = app.getHttpServer() as Server;
    if (this.app || (this.tracker && !this.tracker.serves(server))) {
      throw new LifecycleError(
        'LIFECYCLE_ALREADY_ATTACHED',
        'attachLifecycle() was called with a second application; one LifecycleModule serves one application',
      );
    }
    if (nestShutdownHooksEnabled(app)) throw new ShutdownHooksConflictError();
    this.app = app;
    this.closer = { close: () => app.close() };
    if (!this.tracker) this.attachServer(server, app.getHttpAdapter().getType(), 'attachLifecycle');
  }

  /**
   * `LifecycleModule.forRoot()` is enough: when the application initialises, the lifecycle takes
   * the HTTP server from `HttpAdapterHost` and boots once it listens. An application without one
   * (a microservice, a standalone context) gets signals, warm-up and drain tasks all the same.
   */
  onApplicationBootstrap(): void {
    if (this.tracker || this.state !== LifecycleState.STARTING) return;
    if (nestSignalHandlerInstalled(this.options.signals)) throw new ShutdownHooksConflictError();
    this.closer ??= new ContainerCloser((this.moduleRef as unknown as { container: NestContainer }).container, this.adapterHost);
    const adapter = this.adapterHost.httpAdapter;
    const server = adapter?.getHttpServer() as Server | undefined;
    if (adapter && server && typeof server.prependListener === 'function') {
      this.attachServer(server, adapter.getType(), 'LifecycleModule');
      return;
    }
    this.containHookErrors();
    this.installSignalHandlers();
    this.logger.log({
      event: LifecycleEvent.NO_HTTP_SERVER,
      ...this.logFields(),
      signals: this.options.signals,
      message: 'no HTTP server to drain: signals, warm-up and drain tasks only',
    });
    // Other providers' onApplicationBootstrap hooks are still running; warm-up tasks are
    // registered in onModuleInit, before this point.
    setImmediate(() => void this.boot());
  }

  /**
   * In-flight tracking, keep-alive timeouts, `Connection: close` while draining, signal handling,
   * and warm-up once the server listens.
   */
  private attachServer(server: Server, adapter: string, by: 'attachLifecycle' | 'LifecycleModule'): void {
    this.tracker = new HttpServerTracker(server, () => this.clock.now());
    this.tracker.attach(this.options.keepAliveTimeoutMs, this.options.headersTimeoutMs);
    this.containHookErrors();
    this.installSignalHandlers();
    this.logger.log({ event: LifecycleEvent.ATTACHED, ...this.logFields(), adapter, by, signals: this.options.signals });
    if (server.listening) void this.boot();
    else server.once('listening', () => void this.boot());
  }

  private installSignalHandlers(): void {
    if (this.signalsInstalled) return;
    this.signalsInstalled = true;
    for (const signal of this.options.signals) {
      const handler = () => this.onSignal(signal);
      this.signalHandlers.set(signal, handler);
      this.proc.onSignal(signal, handler);
    }
  }

  private containHookErrors(): void {
    containShutdownHookErrors(this.discovery, this, (hook, provider, error) =>
      this.logger.error({ event: LifecycleEvent.HOOK_FAILED, ...this.logFields(), hook, provider, error: describeError(error) }),
    );
  }

  /**
   * Starts the graceful shutdown as a signal would (DRAINING, drain delay, STOPPING, Nest's hooks,
   * exit). Calling it again returns the same promise.
   */
  shutdown(reason = 'shutdown() called', exitCode = 0): Promise<void> {
    this.shutdownPromise ??= this.runShutdown(reason, exitCode);
    return this.shutdownPromise;
  }

  beforeApplicationShutdown(): void {
    // app.close() called directly (tests, scripts): no drain was asked for, but the state must say
    // the instance is going away before the server closes.
    if (!this.shutdownPromise && !this.isShuttingDown()) {
      this.shutdownBegun.abort();
      this.transition(LifecycleState.STOPPING, 'application closing');
    }
  }

  onApplicationShutdown(): void {
    for (const [signal, handler] of this.signalHandlers) this.proc.offSignal(signal, handler);
    this.signalHandlers.clear();
    this.tracker?.detach();
    if (!this.shutdownPromise && this.state === LifecycleState.STOPPING) {
      this.transition(LifecycleState.STOPPED, 'application closed');
    }
  }

  private onSignal(signal: NodeJS.Signals): void {
    if (this.shutdownPromise) {
      this.logger.warn({ event: LifecycleEvent.DRAIN_DELAY_SKIPPED, ...this.logFields(), signal, state: this.state });
      this.skipDrainDelay.abort();
      return;
    }
    this.logger.log({ event: LifecycleEvent.SIGNAL_RECEIVED, ...this.logFields(), signal });
    void this.shutdown(signal);
  }

  private async boot(): Promise<void> {
    if (this.state !== LifecycleState.STARTING) return;
    this.transition(LifecycleState.WARMING_UP, 'server listening');
    const ok = await this.runTasks('warmup', this.warmupTasks, this.options.warmupTimeoutMs);
    if (this.isShuttingDown()) return;
    if (!ok) {
      void this.shutdown('critical warm-up task failed', 1);
      return;
    }
    await this.clock.sleep(this.options.minReadyDelayMs, this.shutdownBegun.signal);
    if (!this.isShuttingDown()) this.transition(LifecycleState.READY, 'warm-up complete');
  }

  private async runShutdown(reason: string, exitCode: number): Promise<void> {
    this.currentTraceId = newTraceId();
    this.shutdownBegun.abort();
    const cancelDeadline = this.clock.setTimer(this.options.hardDeadlineMs, () => this.onDeadline());
    // An instance that never turned ready was never in a load balancer: there is nothing to drain.
    const wasReady = this.state === LifecycleState.READY;
    let code = exitCode;
    try {
      if (this.state !== LifecycleState.STOPPING) {
        this.transition(LifecycleState.DRAINING, reason);
        this.tracker?.startDraining();
        await Promise.all([
          this.runTasks('drain', this.drainTasks, this.options.drainTaskTimeoutMs),
          wasReady ? this.clock.sleep(this.options.drainDelayMs, this.skipDrainDelay.signal) : undefined,
        ]);
        this.transition(LifecycleState.STOPPING, 'drain over');
      }
      const cut = (await this.tracker?.stop(this.options.shutdownTimeoutMs, (ms, signal) => this.clock.sleep(ms, signal))) ?? [];
      if (cut.length > 0) {
        this.logger.warn({ event: LifecycleEvent.REQUESTS_CUT, ...this.logFields(), count: cut.length, requests: cut.slice(0, 50) });
      }
      await this.closer?.close();
    } catch (error) {
      code = 1;
      this.logger.error({ event: LifecycleEvent.SHUTDOWN_FAILED, ...this.logFields(), state: this.state, error: describeError(error) });
    }
    if (this.state === LifecycleState.STOPPING) this.transition(LifecycleState.STOPPED, 'shutdown complete');
    cancelDeadline();
    this.exit(code);
  }

  private onDeadline(): void {
    this.logger.error({
      event: LifecycleEvent.DEADLINE_EXCEEDED,
      ...this.logFields(),
      state: this.state,
      hard_deadline_ms: this.options.hardDeadlineMs,
      in_flight: this.inFlightRequests,
      active_resources: this.proc.activeResources(),
    });
    this.exit(1);
  }

  private exit(code: number): void {
    this.logger.log({ event: LifecycleEvent.EXIT, ...this.logFields(), code });
    if (this.options.exitOnShutdown) this.proc.exit(code);
  }

  /** Runs tasks in parallel, each bounded; false when a critical one failed. */
  private async runTasks(
    kind: 'warmup' | 'drain',
    tasks: readonly (LifecycleTask | WarmupTask)[],
    defaultTimeoutMs: number,
  ): Promise<boolean> {
    const results = await Promise.all(
      tasks.map(async (task) => {
        const started = this.clock.now();
        const timeoutMs = task.timeoutMs ?? defaultTimeoutMs;
        try {
          await this.runBounded(task, timeoutMs);
          this.logger.log({
            event: kind === 'warmup' ? LifecycleEvent.WARMUP_TASK_DONE : LifecycleEvent.DRAIN_TASK_DONE,
            ...this.logFields(),
            task: task.name,
            duration_ms: this.clock.now() - started,
          });
          return true;
        } catch (error) {
          const critical = kind === 'warmup' && (task as WarmupTask).critical !== false;
          this.logger.error({
            event: kind === 'warmup' ? LifecycleEvent.WARMUP_TASK_FAILED : LifecycleEvent.DRAIN_TASK_FAILED,
            ...this.logFields(),
            task: task.name,
            critical,
            duration_ms: this.clock.now() - started,
            error: describeError(error),
          });
          return !critical;
        }
      }),
    );
    return results.every(Boolean);
  }

  private runBounded(task: LifecycleTask, timeoutMs: number): Promise<void> {
    const abort = new AbortController();
    return new Promise<void>((resolve, reject) => {
      const cancel = this.clock.setTimer(timeoutMs, () => {
        abort.abort();
        reject(new LifecycleError('LIFECYCLE_TASK_TIMEOUT', `task "${task.name}" did not finish within ${timeoutMs} ms`));
      });
      Promise.resolve()
        .then(() => task.run(abort.signal))
        .then(
          () => {
            cancel();
            resolve();
          },
          (error: unknown) => {
            cancel();
            reject(error);
          },
        );
    });
  }

  /** The one place that changes state: checks the table, logs, times and emits. */
  private transition(to: LifecycleState, reason: string): void {
    const from = this.state;
    if (!isLegalTransition(from, to)) {
      throw new LifecycleError('LIFECYCLE_ILLEGAL_TRANSITION', `illegal lifecycle transition ${from} -> ${to} (${reason})`);
    }
    const at = this.clock.now();
    const change: LifecycleStateChange = { from, to, at, durationMs: at - this.enteredAt, traceId: this.currentTraceId, reason };
    this.enteredAt = at;
    this.logger.log({
      event: LifecycleEvent.STATE_CHANGED,
      ...this.logFields(),
      from,
      to,
      reason,
      duration_ms: change.durationMs,
    });
    this.states.next(to);
    this.changes.next(change);
  }

  private logFields() {
    return {
      instance_id: this.identity.instanceId,
      version: this.identity.version,
      color: this.identity.color,
      trace_id: this.currentTraceId,
    };
  }
}
