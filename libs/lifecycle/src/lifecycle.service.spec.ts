import { Agent, IncomingHttpHeaders, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BeforeApplicationShutdown,
  Controller,
  Get,
  Inject,
  Injectable,
  INestApplication,
  Logger,
  OnApplicationShutdown,
  OnModuleDestroy,
  OnModuleInit,
  Provider,
} from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { attachLifecycle } from './attach-lifecycle';
import { LIFECYCLE_CLOCK, LIFECYCLE_PROCESS, LifecycleEvent } from './lifecycle.constants';
import { LifecycleError, LifecyclePhaseError, ShutdownHooksConflictError } from './lifecycle.errors';
import { LifecycleModule } from './lifecycle.module';
import type { LifecycleModuleOptions } from './lifecycle.options';
import { LifecycleService, LifecycleTask, WarmupTask } from './lifecycle.service';
import { LifecycleState, LifecycleStateChange } from './lifecycle.state';
import { Deferred, ManualClock, ManualProcess, settle, waitFor } from './testing/fake-runtime.spec-helper';

const { STARTING, WARMING_UP, READY, DRAINING, STOPPING, STOPPED } = LifecycleState;

// ---------------------------------------------------------------------------------------------
// Test application
// ---------------------------------------------------------------------------------------------

/** Requests to /slow wait here until the test releases them. */
@Injectable()
class Gates {
  readonly pending: Deferred[] = [];

  wait(): Promise<void> {
    const gate = new Deferred();
    this.pending.push(gate);
    return gate.promise;
  }

  releaseAll(): void {
    for (const gate of this.pending) gate.resolve();
  }
}

@Controller()
class TestController {
  constructor(@Inject(Gates) private readonly gates: Gates) {}

  @Get('ping')
  ping() {
    return { pong: true };
  }

  @Get('slow')
  async slow() {
    await this.gates.wait();
    return { slow: true };
  }
}

const TEST_TASKS = 'TEST:TASKS';

interface TestTasks {
  warmup: WarmupTask[];
  drain: LifecycleTask[];
}

/** Registers the test's tasks the way a real provider would: in onModuleInit. */
@Injectable()
class TaskRegistrar implements OnModuleInit {
  constructor(
    @Inject(LifecycleService) private readonly lifecycle: LifecycleService,
    @Inject(TEST_TASKS) private readonly tasks: TestTasks,
  ) {}

  onModuleInit(): void {
    for (const task of this.tasks.warmup) this.lifecycle.registerWarmupTask(task);
    for (const task of this.tasks.drain) this.lifecycle.registerDrainTask(task);
  }
}

/** A task whose outcome the test decides; records when it started and the abort signal it got. */
interface ControlledTask extends WarmupTask {
  started: boolean;
  signal: AbortSignal | undefined;
  readonly outcome: Deferred;
}

function controlledTask(name: string, extra: { critical?: boolean; timeoutMs?: number } = {}): ControlledTask {
  const outcome = new Deferred();
  const task: ControlledTask = {
    name,
    ...extra,
    started: false,
    signal: undefined,
    outcome,
    run(signal: AbortSignal) {
      task.started = true;
      task.signal = signal;
      return outcome.promise;
    },
  };
  return task;
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

interface LoggedEvent {
  level: 'log' | 'warn' | 'error';
  event: string;
  [field: string]: unknown;
}

/** Records the structured lifecycle events passed to any Nest Logger. */
function captureEvents(): LoggedEvent[] {
  const events: LoggedEvent[] = [];
  for (const level of ['log', 'warn', 'error'] as const) {
    jest.spyOn(Logger.prototype, level).mockImplementation((message: any, ..._rest: any[]) => {
      if (message && typeof message === 'object' && typeof message.event === 'string') events.push({ level, ...message });
    });
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function httpGet(port: number, path: string, agent: Agent | false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Bootstrap helper, shared by both adapters
// ---------------------------------------------------------------------------------------------

type AdapterName = 'express' | 'fastify';

interface HarnessSetup {
  options?: LifecycleModuleOptions;
  warmupTasks?: WarmupTask[];
  drainTasks?: LifecycleTask[];
  providers?: Provider[];
}

interface Harness {
  app: INestApplication;
  server: Server;
  lifecycle: LifecycleService;
  clock: ManualClock;
  proc: ManualProcess;
  gates: Gates;
  /** Every change emitted on changes$ since the module was compiled. */
  changes: LifecycleStateChange[];
  /**
   * app.listen(0, '127.0.0.1'), after attachLifecycle(app) unless `attach` is false (then the module
   * finds the server by itself); returns the port.
   */
  start(attach?: boolean): Promise<number>;
  /** start(), then past warm-up and the settle delay to READY. */
  startReady(): Promise<number>;
  /** GET on a keep-alive agent (as a load balancer would hold connections). */
  get(path: string): Promise<Reply>;
  /** GET on a new connection. */
  getFresh(path: string): Promise<Reply>;
  exited(): Promise<void>;
  dispose(): Promise<void>;
}

async function bootstrap(adapter: AdapterName, setup: HarnessSetup = {}): Promise<Harness> {
  const clock = new ManualClock();
  const proc = new ManualProcess(['TCPSocketWrap', 'FakeHangingHook']);
  const moduleRef = await Test.createTestingModule({
    imports: [LifecycleModule.forRoot({ minReadyDelayMs: 0, ...setup.options })],
    controllers: [TestController],
    providers: [
      Gates,
      TaskRegistrar,
      { provide: TEST_TASKS, useValue: { warmup: setup.warmupTasks ?? [], drain: setup.drainTasks ?? [] } satisfies TestTasks },
      ...(setup.providers ?? []),
    ],
  })
    .overrideProvider(LIFECYCLE_CLOCK)
    .useValue(clock)
    .overrideProvider(LIFECYCLE_PROCESS)
    .useValue(proc)
    .compile();
  const app = moduleRef.createNestApplication(adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
  const lifecycle = app.get(LifecycleService);
  const changes: LifecycleStateChange[] = [];
  const subscription = lifecycle.changes$.subscribe((change) => changes.push(change));
  const agent = new Agent({ keepAlive: true });
  let port = 0;

  const harness: Harness = {
    app,
    server: app.getHttpServer() as Server,
    lifecycle,
    clock,
    proc,
    gates: app.get(Gates),
    changes,
    async start(attach = true) {
      if (attach) attachLifecycle(app);
      await app.listen(0, '127.0.0.1');
      port = (harness.server.address() as AddressInfo).port;
      return port;
    },
    async startReady() {
      await harness.start();
      await clock.advance(lifecycle.options.minReadyDelayMs);
      expect(lifecycle.state).toBe(READY);
      return port;
    },
    get: (path) => httpGet(port, path, agent),
    getFresh: (path) => httpGet(port, path, false),
    exited: () => waitFor(() => proc.exitCodes.length > 0, 'the process facade to exit'),
    async dispose() {
      harness.gates.releaseAll();
      if (lifecycle.isShuttingDown() && lifecycle.state !== STOPPED) {
        // A shutdown sequence is under way: let every timer of it run out.
        await clock.advance(600_000);
        await waitFor(() => lifecycle.state === STOPPED, 'the running shutdown to finish');
      } else if (lifecycle.state !== STOPPED) {
        await app.close();
      }
      subscription.unsubscribe();
      agent.destroy();
    },
  };
  return harness;
}

function changeTo(h: Harness, to: LifecycleState): LifecycleStateChange {
  const change = h.changes.find((c) => c.to === to);
  if (!change) throw new Error(`no change to ${to} in ${h.changes.map((c) => `${c.from}->${c.to}`).join(', ')}`);
  return change;
}

// ---------------------------------------------------------------------------------------------
// Specs
// ---------------------------------------------------------------------------------------------

describe.each<AdapterName>(['express', 'fastify'])('LifecycleService on %s', (adapter) => {
  let h: Harness | undefined;
  let events: LoggedEvent[];
  const cleanups: (() => unknown)[] = [];

  const boot = async (setup?: HarnessSetup) => (h = await bootstrap(adapter, setup));
  const eventsNamed = (name: string) => events.filter((e) => e.event === name);

  beforeEach(() => {
    events = captureEvents();
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
    await h?.dispose();
    h = undefined;
    jest.restoreAllMocks();
  });

  describe('start-up', () => {
    it('stays STARTING until the server listens, then warms up and turns READY after minReadyDelayMs', async () => {
      const primeCache = controlledTask('prime-cache');
      const { app, lifecycle, clock } = await boot({ options: { minReadyDelayMs: 500 }, warmupTasks: [primeCache] });

      await app.init();
      attachLifecycle(app);
      await settle();
      expect(lifecycle.state).toBe(STARTING);
      expect(primeCache.started).toBe(false);

      await app.listen(0, '127.0.0.1');
      expect(lifecycle.state).toBe(WARMING_UP);
      await settle();
      expect(primeCache.started).toBe(true);

      primeCache.outcome.resolve();
      await clock.advance(499);
      expect(lifecycle.state).toBe(WARMING_UP);
      expect(lifecycle.isReady()).toBe(false);
      await clock.advance(1);
      expect(lifecycle.state).toBe(READY);
      expect(lifecycle.isReady()).toBe(true);
      expect(eventsNamed(LifecycleEvent.WARMUP_TASK_DONE)).toEqual([expect.objectContaining({ task: 'prime-cache' })]);
    });

    it('needs no attachLifecycle: LifecycleModule.forRoot() finds the server and boots once it listens', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({ options: { minReadyDelayMs: 200 }, warmupTasks: [primeCache] });
      await h!.app.init();
      expect(h!.lifecycle.state).toBe(STARTING);

      await h!.start(false);
      expect(h!.lifecycle.state).toBe(WARMING_UP);
      await settle();
      primeCache.outcome.resolve();
      await h!.clock.advance(200);
      expect(h!.lifecycle.state).toBe(READY);
      expect(h!.server.keepAliveTimeout).toBe(h!.lifecycle.options.keepAliveTimeoutMs);
      expect(eventsNamed(LifecycleEvent.ATTACHED)).toEqual([expect.objectContaining({ adapter, by: 'LifecycleModule' })]);
      expect(h!.proc.listenerCount('SIGTERM')).toBe(1);
      expect(h!.proc.listenerCount('SIGINT')).toBe(1);
    });

    it('accepts attachLifecycle(app) after the module attached itself, without a second attachment', async () => {
      await boot({ options: { minReadyDelayMs: 200 } });
      await h!.start(false);
      expect(h!.lifecycle.state).toBe(WARMING_UP);

      attachLifecycle(h!.app);
      expect(h!.proc.listenerCount('SIGTERM')).toBe(1);
      await h!.clock.advance(200);
      expect(h!.lifecycle.state).toBe(READY);
      expect(eventsNamed(LifecycleEvent.ATTACHED)).toHaveLength(1);
    });

    it('fails at start-up when app.enableShutdownHooks() is used without attachLifecycle', async () => {
      await boot();
      const sigtermListeners = process.listenerCount('SIGTERM');
      h!.app.enableShutdownHooks();
      await expect(h!.app.listen(0, '127.0.0.1')).rejects.toThrow(ShutdownHooksConflictError);
      expect(h!.proc.listenerCount()).toBe(0);

      await h!.app.close();
      expect(process.listenerCount('SIGTERM')).toBe(sigtermListeners);
    });

    it('never turns READY when app.close() is called during warm-up', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({ options: { minReadyDelayMs: 300 }, warmupTasks: [primeCache] });
      await h!.start();
      await h!.app.close();
      expect(h!.lifecycle.state).toBe(STOPPED);

      primeCache.outcome.resolve();
      await h!.clock.advance(1_000);
      expect(h!.lifecycle.state).toBe(STOPPED);
      expect(h!.changes.map((c) => c.to)).toEqual([WARMING_UP, STOPPING, STOPPED]);
      expect(h!.proc.exitCodes).toEqual([]);
    });

    it('serves HTTP while warming up (liveness passes before READY)', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({ warmupTasks: [primeCache] });
      await h!.start();
      const reply = await h!.get('/ping');
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ pong: true });
      expect(h!.lifecycle.state).toBe(WARMING_UP);
      primeCache.outcome.resolve();
    });

    it('exits with code 1 and never turns READY when a critical warm-up task fails', async () => {
      const connectDb = controlledTask('connect-db');
      await boot({ warmupTasks: [connectDb] });
      await h!.start();
      await settle();

      connectDb.outcome.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
      await h!.exited();

      expect(h!.proc.exitCodes).toEqual([1]);
      expect(h!.changes.map((c) => c.to)).not.toContain(READY);
      expect(h!.changes.map((c) => c.to)).toEqual([WARMING_UP, DRAINING, STOPPING, STOPPED]);
      expect(eventsNamed(LifecycleEvent.WARMUP_TASK_FAILED)).toEqual([
        expect.objectContaining({
          level: 'error',
          task: 'connect-db',
          critical: true,
          error: expect.objectContaining({ message: 'connect ECONNREFUSED 127.0.0.1:5432' }),
        }),
      ]);
    });

    it('exits with code 1 and never turns READY when a critical warm-up task times out', async () => {
      const connectDb = controlledTask('connect-db');
      await boot({ options: { warmupTimeoutMs: 1_000 }, warmupTasks: [connectDb] });
      await h!.start();

      await h!.clock.advance(999);
      expect(h!.lifecycle.state).toBe(WARMING_UP);
      expect(connectDb.signal?.aborted).toBe(false);

      await h!.clock.advance(1);
      expect(connectDb.signal?.aborted).toBe(true);
      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([1]);
      expect(h!.changes.map((c) => c.to)).not.toContain(READY);
      expect(eventsNamed(LifecycleEvent.WARMUP_TASK_FAILED)).toEqual([
        expect.objectContaining({
          task: 'connect-db',
          critical: true,
          duration_ms: 1_000,
          error: expect.objectContaining({ code: 'LIFECYCLE_TASK_TIMEOUT' }),
        }),
      ]);
    });

    it('bounds a warm-up task by its own timeoutMs over warmupTimeoutMs', async () => {
      const slowPing = controlledTask('slow-ping', { timeoutMs: 200 });
      await boot({ options: { warmupTimeoutMs: 30_000 }, warmupTasks: [slowPing] });
      await h!.start();
      await h!.clock.advance(200);
      expect(slowPing.signal?.aborted).toBe(true);
      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([1]);
    });

    it('still turns READY when a non-critical warm-up task fails', async () => {
      const primeCache = controlledTask('prime-cache', { critical: false });
      const connectDb = controlledTask('connect-db');
      await boot({ options: { minReadyDelayMs: 100 }, warmupTasks: [primeCache, connectDb] });
      await h!.start();
      await settle();
      expect(primeCache.started && connectDb.started).toBe(true);

      primeCache.outcome.reject(new Error('cache cold'));
      connectDb.outcome.resolve();
      await h!.clock.advance(100);

      expect(h!.lifecycle.state).toBe(READY);
      expect(h!.proc.exitCodes).toEqual([]);
      expect(eventsNamed(LifecycleEvent.WARMUP_TASK_FAILED)).toEqual([expect.objectContaining({ task: 'prime-cache', critical: false })]);
    });

    it('rejects a warm-up task registered after boot with LifecyclePhaseError', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({ warmupTasks: [primeCache] });
      await h!.start();
      const late = { name: 'late-task', run: () => undefined };

      expect(() => h!.lifecycle.registerWarmupTask(late)).toThrow(LifecyclePhaseError);
      primeCache.outcome.resolve();
      await h!.clock.advance(0);
      expect(h!.lifecycle.state).toBe(READY);
      let error: unknown;
      try {
        h!.lifecycle.registerWarmupTask(late);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(LifecyclePhaseError);
      expect(error).toMatchObject({
        code: 'LIFECYCLE_PHASE_PASSED',
        message: expect.stringContaining('"late-task" registered in state READY'),
      });
    });

    it('sets keepAliveTimeout and headersTimeout on the HTTP server', async () => {
      await boot({ options: { keepAliveTimeoutMs: 70_000 } });
      await h!.startReady();
      expect(h!.server.keepAliveTimeout).toBe(70_000);
      expect(h!.server.headersTimeout).toBe(71_000);
      // Node announces the keep-alive timeout to clients in seconds.
      expect((await h!.get('/ping')).headers['keep-alive']).toBe('timeout=70');
    });

    it('throws ShutdownHooksConflictError when app.enableShutdownHooks() was called first', async () => {
      await boot();
      const sigtermListeners = process.listenerCount('SIGTERM');
      h!.app.enableShutdownHooks();
      expect(process.listenerCount('SIGTERM')).toBe(sigtermListeners + 1);

      expect(() => attachLifecycle(h!.app)).toThrow(ShutdownHooksConflictError);
      expect(() => attachLifecycle(h!.app)).toThrow(expect.objectContaining({ code: 'LIFECYCLE_SHUTDOWN_HOOKS_CONFLICT' }));
      expect(h!.proc.listenerCount()).toBe(0);

      await h!.app.close();
      expect(process.listenerCount('SIGTERM')).toBe(sigtermListeners);
    });

    it('refuses to attach a second application', async () => {
      await boot();
      attachLifecycle(h!.app);
      expect(() => attachLifecycle(h!.app)).not.toThrow();
      const other = await bootstrap(adapter);
      cleanups.push(() => other.dispose());
      expect(() => h!.lifecycle.attach(other.app)).toThrow(LifecycleError);
      expect(() => h!.lifecycle.attach(other.app)).toThrow(expect.objectContaining({ code: 'LIFECYCLE_ALREADY_ATTACHED' }));
    });

    it('listens only to the configured signals', async () => {
      await boot({ options: { signals: ['SIGHUP'] } });
      await h!.startReady();
      expect(h!.proc.listenerCount('SIGTERM')).toBe(0);
      h!.proc.emit('SIGTERM');
      expect(h!.lifecycle.state).toBe(READY);
      h!.proc.emit('SIGHUP');
      expect(h!.lifecycle.state).toBe(DRAINING);
    });
  });

  describe('graceful shutdown', () => {
    it('turns DRAINING at once on SIGTERM', async () => {
      await boot();
      await h!.startReady();
      const seen: LifecycleState[] = [];
      const subscription = h!.lifecycle.state$.subscribe((state) => seen.push(state));
      cleanups.push(() => subscription.unsubscribe());

      h!.proc.emit('SIGTERM');

      expect(h!.lifecycle.state).toBe(DRAINING);
      expect(h!.lifecycle.isShuttingDown()).toBe(true);
      expect(h!.lifecycle.isReady()).toBe(false);
      expect(seen).toEqual([READY, DRAINING]);
      expect(eventsNamed(LifecycleEvent.SIGNAL_RECEIVED)).toEqual([expect.objectContaining({ signal: 'SIGTERM' })]);
    });

    it('keeps serving during the drain delay, with Connection: close on every response', async () => {
      await boot({ options: { drainDelayMs: 5_000 } });
      await h!.startReady();
      const before = await h!.get('/ping');
      expect(before.headers.connection).toBe('keep-alive');

      h!.proc.emit('SIGINT');
      await h!.clock.advance(4_000);
      const during = await h!.get('/ping');
      expect(during.status).toBe(200);
      expect(JSON.parse(during.body)).toEqual({ pong: true });
      expect(during.headers.connection).toBe('close');

      await h!.clock.advance(999);
      expect(h!.lifecycle.state).toBe(DRAINING);
      const late = await h!.get('/ping');
      expect(late.status).toBe(200);
      expect(late.headers.connection).toBe('close');
    });

    it('runs drain tasks at DRAINING in parallel, each bounded by its timeout', async () => {
      const deregister = controlledTask('deregister');
      const flushQueue = controlledTask('flush-queue');
      await boot({ options: { drainDelayMs: 1_000, drainTaskTimeoutMs: 3_000 }, drainTasks: [deregister, flushQueue] });
      await h!.startReady();
      await settle();
      expect(deregister.started || flushQueue.started).toBe(false);

      h!.proc.emit('SIGTERM');
      await settle();
      // Both started before either finished.
      expect(deregister.started && flushQueue.started).toBe(true);

      deregister.outcome.resolve();
      await h!.clock.advance(1_000);
      // The drain delay is over, but STOPPING waits for the drain tasks.
      expect(h!.lifecycle.state).toBe(DRAINING);
      await h!.clock.advance(1_999);
      expect(h!.lifecycle.state).toBe(DRAINING);
      expect(flushQueue.signal?.aborted).toBe(false);

      await h!.clock.advance(1);
      expect(flushQueue.signal?.aborted).toBe(true);
      expect(changeTo(h!, STOPPING).durationMs).toBe(3_000);
      expect(eventsNamed(LifecycleEvent.DRAIN_TASK_DONE)).toEqual([expect.objectContaining({ task: 'deregister', duration_ms: 0 })]);
      expect(eventsNamed(LifecycleEvent.DRAIN_TASK_FAILED)).toEqual([
        expect.objectContaining({
          task: 'flush-queue',
          critical: false,
          error: expect.objectContaining({ code: 'LIFECYCLE_TASK_TIMEOUT' }),
        }),
      ]);
      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
    });

    it('rejects a drain task registered after the drain began', async () => {
      await boot();
      await h!.startReady();
      expect(() => h!.lifecycle.registerDrainTask({ name: 'early', run: () => undefined })).not.toThrow();
      h!.proc.emit('SIGTERM');
      expect(() => h!.lifecycle.registerDrainTask({ name: 'late', run: () => undefined })).toThrow(LifecyclePhaseError);
    });

    it('turns STOPPING when the drain delay is over, then STOPPED, and exits 0', async () => {
      await boot({ options: { drainDelayMs: 2_000 } });
      await h!.startReady();
      h!.proc.emit('SIGTERM');

      await h!.clock.advance(1_999);
      expect(h!.lifecycle.state).toBe(DRAINING);
      await h!.clock.advance(1);
      expect(changeTo(h!, STOPPING)).toMatchObject({ from: DRAINING, durationMs: 2_000, reason: 'drain over' });

      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
      expect(h!.lifecycle.state).toBe(STOPPED);
      expect(h!.server.listening).toBe(false);
      expect(h!.proc.listenerCount()).toBe(0);
      expect(eventsNamed(LifecycleEvent.EXIT)).toEqual([expect.objectContaining({ code: 0 })]);
      expect(eventsNamed(LifecycleEvent.REQUESTS_CUT)).toEqual([]);
    });

    it('cancels the hard deadline after a clean shutdown', async () => {
      await boot({ options: { drainDelayMs: 100 } });
      await h!.startReady();
      h!.proc.emit('SIGTERM');
      await h!.clock.advance(100);
      await h!.exited();

      expect(h!.clock.pendingTimers()).toEqual([]);
      await h!.clock.advance(h!.lifecycle.options.hardDeadlineMs * 2);
      expect(h!.proc.exitCodes).toEqual([0]);
    });

    it('lets an in-flight request finish before the server closes', async () => {
      const recorder = new ShutdownRecorder();
      await boot({
        options: { drainDelayMs: 1_000, shutdownTimeoutMs: 5_000 },
        providers: [{ provide: ShutdownRecorder, useValue: recorder }],
      });
      recorder.server = h!.server;
      await h!.startReady();
      const slow = h!.get('/slow');
      await waitFor(() => h!.gates.pending.length === 1, 'the slow request to reach its handler');
      expect(h!.lifecycle.inFlightRequests).toBe(1);

      h!.proc.emit('SIGTERM');
      await h!.clock.advance(1_000);
      expect(h!.lifecycle.state).toBe(STOPPING);
      // The listener is closed: new connections are refused while the old request runs on.
      expect(h!.server.listening).toBe(false);
      await expect(h!.getFresh('/ping')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await settle(20);
      expect(h!.proc.exitCodes).toEqual([]);
      expect(recorder.calls).toEqual([]);

      h!.gates.releaseAll();
      const reply = await slow;
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body)).toEqual({ slow: true });
      expect(reply.headers.connection).toBe('close');

      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
      // Nest's hooks (databases close here) run only after the server is closed and drained.
      expect(recorder.calls).toEqual(['onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown']);
      expect(eventsNamed(LifecycleEvent.REQUESTS_CUT)).toEqual([]);
    });

    it("drains and closes the application in Nest's order without attachLifecycle, and app.close() later runs no hook twice", async () => {
      const recorder = new ShutdownRecorder();
      await boot({ options: { drainDelayMs: 1_000 }, providers: [{ provide: ShutdownRecorder, useValue: recorder }] });
      recorder.server = h!.server;
      await h!.start(false);
      await h!.clock.advance(h!.lifecycle.options.minReadyDelayMs);
      expect(h!.lifecycle.state).toBe(READY);
      const slow = h!.get('/slow');
      await waitFor(() => h!.gates.pending.length === 1, 'the slow request to reach its handler');

      h!.proc.emit('SIGTERM');
      expect(h!.lifecycle.state).toBe(DRAINING);
      const during = await h!.getFresh('/ping');
      expect(during.status).toBe(200);
      expect(during.headers.connection).toBe('close');
      await h!.clock.advance(1_000);
      expect(h!.lifecycle.state).toBe(STOPPING);
      h!.gates.releaseAll();
      expect((await slow).status).toBe(200);

      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
      expect(h!.lifecycle.state).toBe(STOPPED);
      expect(recorder.calls).toEqual(['onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown']);
      expect(h!.proc.listenerCount()).toBe(0);

      await h!.app.close();
      expect(recorder.calls).toHaveLength(3);
    });

    it('cuts a request still running after shutdownTimeoutMs, logs it, and exits 0', async () => {
      await boot({ options: { drainDelayMs: 1_000, shutdownTimeoutMs: 2_000 } });
      await h!.startReady();
      const slow = h!.get('/slow').catch((error: unknown) => error);
      await waitFor(() => h!.gates.pending.length === 1, 'the slow request to reach its handler');
      await h!.clock.advance(500);

      h!.proc.emit('SIGTERM');
      await h!.clock.advance(1_000);
      expect(h!.lifecycle.state).toBe(STOPPING);
      await h!.clock.advance(1_999);
      expect(eventsNamed(LifecycleEvent.REQUESTS_CUT)).toEqual([]);
      expect(h!.proc.exitCodes).toEqual([]);

      await h!.clock.advance(1);
      expect(eventsNamed(LifecycleEvent.REQUESTS_CUT)).toEqual([
        expect.objectContaining({ level: 'warn', count: 1, requests: [{ method: 'GET', url: '/slow', runningMs: 3_500 }] }),
      ]);
      expect(await slow).toMatchObject({ code: 'ECONNRESET' });
      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
    });

    it('skips what is left of the drain delay on a second signal', async () => {
      await boot({ options: { drainDelayMs: 5_000 } });
      await h!.startReady();
      h!.proc.emit('SIGTERM');
      await h!.clock.advance(1_000);
      expect(h!.lifecycle.state).toBe(DRAINING);

      h!.proc.emit('SIGINT');
      await waitFor(() => h!.lifecycle.state !== DRAINING, 'the drain to end without the clock moving');

      expect(changeTo(h!, STOPPING).durationMs).toBe(1_000);
      expect(eventsNamed(LifecycleEvent.DRAIN_DELAY_SKIPPED)).toEqual([expect.objectContaining({ level: 'warn', signal: 'SIGINT' })]);
      expect(eventsNamed(LifecycleEvent.SIGNAL_RECEIVED)).toHaveLength(1);
      await h!.exited();
      expect(h!.proc.exitCodes).toEqual([0]);
    });

    it('does not wait for the drain delay when the signal comes before READY', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({ options: { drainDelayMs: 5_000 }, warmupTasks: [primeCache] });
      await h!.start();
      h!.proc.emit('SIGTERM');
      expect(h!.lifecycle.state).toBe(DRAINING);
      await h!.exited();

      primeCache.outcome.resolve();
      await h!.clock.advance(0);
      expect(h!.proc.exitCodes).toEqual([0]);
      expect(h!.changes.map((c) => c.to)).toEqual([WARMING_UP, DRAINING, STOPPING, STOPPED]);
    });

    it('logs a shutdown hook that throws, still runs the other hooks, and exits 0', async () => {
      const recorder = new ShutdownRecorder();
      await boot({
        options: { drainDelayMs: 0 },
        providers: [BrokenCache, BrokenQueue, { provide: ShutdownRecorder, useValue: recorder }],
      });
      await h!.startReady();
      h!.proc.emit('SIGTERM');
      await h!.exited();

      expect(h!.proc.exitCodes).toEqual([0]);
      expect(h!.lifecycle.state).toBe(STOPPED);
      expect(recorder.calls).toEqual(['onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown']);
      expect(eventsNamed(LifecycleEvent.HOOK_FAILED)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            level: 'error',
            hook: 'onModuleDestroy',
            provider: 'BrokenCache',
            error: expect.objectContaining({ message: 'cache already gone' }),
          }),
          expect.objectContaining({
            level: 'error',
            hook: 'beforeApplicationShutdown',
            provider: 'BrokenQueue',
            error: expect.objectContaining({ message: 'queue unreachable' }),
          }),
        ]),
      );
      expect(eventsNamed(LifecycleEvent.HOOK_FAILED)).toHaveLength(2);
      expect(eventsNamed(LifecycleEvent.SHUTDOWN_FAILED)).toEqual([]);
    });

    it('exits with code 1 at the hard deadline when a hook hangs', async () => {
      const pool = new HangingPool();
      // Hard deadline: max(1000, 1000) + 1000 + 1000 + 3000 = 6000 ms from the signal.
      await boot({
        options: { drainDelayMs: 1_000, drainTaskTimeoutMs: 1_000, shutdownTimeoutMs: 1_000, hookTimeoutMs: 1_000 },
        providers: [{ provide: HangingPool, useValue: pool }],
      });
      cleanups.push(() => pool.release.resolve());
      await h!.startReady();
      expect(h!.lifecycle.options.hardDeadlineMs).toBe(6_000);

      h!.proc.emit('SIGTERM');
      await h!.clock.advance(1_000);
      await waitFor(() => pool.entered, 'the hanging hook to be called');
      await h!.clock.advance(4_999);
      expect(h!.proc.exitCodes).toEqual([]);

      await h!.clock.advance(1);
      expect(h!.proc.exitCodes).toEqual([1]);
      expect(eventsNamed(LifecycleEvent.DEADLINE_EXCEEDED)).toEqual([
        expect.objectContaining({
          level: 'error',
          state: STOPPING,
          hard_deadline_ms: 6_000,
          active_resources: ['TCPSocketWrap', 'FakeHangingHook'],
        }),
      ]);
    });

    it('does not exit when exitOnShutdown is false', async () => {
      await boot({ options: { drainDelayMs: 0, exitOnShutdown: false } });
      await h!.startReady();
      h!.proc.emit('SIGTERM');
      await waitFor(() => h!.lifecycle.state === STOPPED, 'the shutdown to finish');
      await settle();
      expect(h!.proc.exitCodes).toEqual([]);
      expect(eventsNamed(LifecycleEvent.EXIT)).toEqual([expect.objectContaining({ code: 0 })]);
    });

    it('goes STOPPING then STOPPED without exiting when app.close() is called directly', async () => {
      await boot({ options: { drainDelayMs: 5_000 } });
      await h!.startReady();

      await h!.app.close();

      expect(h!.changes.slice(-2)).toEqual([
        expect.objectContaining({ from: READY, to: STOPPING, reason: 'application closing' }),
        expect.objectContaining({ from: STOPPING, to: STOPPED, reason: 'application closed' }),
      ]);
      expect(h!.changes.map((c) => c.to)).not.toContain(DRAINING);
      expect(h!.proc.exitCodes).toEqual([]);
      expect(h!.proc.listenerCount()).toBe(0);
      expect(h!.server.listening).toBe(false);
    });
  });

  describe('changes$', () => {
    it('emits from, to, durationMs and traceId for every transition, with a new traceId for the shutdown', async () => {
      const primeCache = controlledTask('prime-cache');
      await boot({
        options: { minReadyDelayMs: 500, drainDelayMs: 2_000, instanceId: 'orders-1', version: '1.4.2', color: 'green' },
        warmupTasks: [primeCache],
      });
      const t0 = h!.clock.now();
      await h!.clock.advance(100);
      await h!.start();
      await h!.clock.advance(250);
      primeCache.outcome.resolve();
      await h!.clock.advance(500);
      expect(h!.lifecycle.state).toBe(READY);
      const bootTraceId = h!.lifecycle.traceId;

      await h!.clock.advance(1_000);
      h!.proc.emit('SIGTERM');
      const shutdownTraceId = h!.lifecycle.traceId;
      await h!.clock.advance(2_000);
      await h!.exited();

      expect(bootTraceId).toMatch(/^[0-9a-f]{32}$/);
      expect(shutdownTraceId).toMatch(/^[0-9a-f]{32}$/);
      expect(shutdownTraceId).not.toBe(bootTraceId);
      expect(h!.changes).toEqual([
        { from: STARTING, to: WARMING_UP, at: t0 + 100, durationMs: 100, traceId: bootTraceId, reason: 'server listening' },
        { from: WARMING_UP, to: READY, at: t0 + 850, durationMs: 750, traceId: bootTraceId, reason: 'warm-up complete' },
        { from: READY, to: DRAINING, at: t0 + 1_850, durationMs: 1_000, traceId: shutdownTraceId, reason: 'SIGTERM' },
        { from: DRAINING, to: STOPPING, at: t0 + 3_850, durationMs: 2_000, traceId: shutdownTraceId, reason: 'drain over' },
        { from: STOPPING, to: STOPPED, at: t0 + 3_850, durationMs: 0, traceId: shutdownTraceId, reason: 'shutdown complete' },
      ]);
      // Every transition is also logged, with who this instance is.
      expect(eventsNamed(LifecycleEvent.STATE_CHANGED)).toEqual(
        h!.changes.map((c) =>
          expect.objectContaining({
            from: c.from,
            to: c.to,
            duration_ms: c.durationMs,
            trace_id: c.traceId,
            instance_id: 'orders-1',
            version: '1.4.2',
            color: 'green',
          }),
        ),
      );
    });
  });
});

describe('LifecycleService without an HTTP server (a microservice or standalone context)', () => {
  it('handles signals, runs warm-up and drain tasks, closes the modules and says there is no server to drain', async () => {
    const events = captureEvents();
    const clock = new ManualClock();
    const proc = new ManualProcess();
    const recorder = new ShutdownRecorder();
    const warmup = controlledTask('connect-broker');
    const drained: string[] = [];
    const moduleRef = await Test.createTestingModule({
      imports: [LifecycleModule.forRoot({ minReadyDelayMs: 100, drainDelayMs: 1_000 })],
      providers: [
        TaskRegistrar,
        { provide: ShutdownRecorder, useValue: recorder },
        {
          provide: TEST_TASKS,
          useValue: {
            warmup: [warmup],
            drain: [{ name: 'pause-consumer', run: () => void drained.push('pause-consumer') }],
          } satisfies TestTasks,
        },
      ],
    })
      .overrideProvider(LIFECYCLE_CLOCK)
      .useValue(clock)
      .overrideProvider(LIFECYCLE_PROCESS)
      .useValue(proc)
      .compile();
    const lifecycle = moduleRef.get(LifecycleService);
    try {
      await moduleRef.init();
      expect(events.filter((e) => e.event === LifecycleEvent.NO_HTTP_SERVER)).toHaveLength(1);
      expect(proc.listenerCount('SIGTERM')).toBe(1);
      await waitFor(() => warmup.started, 'the warm-up task to start');
      expect(lifecycle.state).toBe(WARMING_UP);
      warmup.outcome.resolve();
      await settle();
      await clock.advance(100);
      expect(lifecycle.state).toBe(READY);

      proc.emit('SIGTERM');
      expect(lifecycle.state).toBe(DRAINING);
      await settle();
      expect(drained).toEqual(['pause-consumer']);
      await clock.advance(1_000);
      await waitFor(() => proc.exitCodes.length > 0, 'the process facade to exit');
      expect(proc.exitCodes).toEqual([0]);
      expect(lifecycle.state).toBe(STOPPED);
      expect(recorder.calls).toEqual(['onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown']);
    } finally {
      await moduleRef.close();
      jest.restoreAllMocks();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Providers with shutdown hooks
// ---------------------------------------------------------------------------------------------

/** Stands in for a database pool: records its hooks and whether the server still listened then. */
class ShutdownRecorder implements OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown {
  readonly calls: string[] = [];
  server: Server | undefined;

  onModuleDestroy(): void {
    this.record('onModuleDestroy');
  }

  beforeApplicationShutdown(): void {
    this.record('beforeApplicationShutdown');
  }

  onApplicationShutdown(): void {
    this.record('onApplicationShutdown');
  }

  private record(hook: string): void {
    this.calls.push(this.server?.listening ? `${hook} (server listening)` : hook);
  }
}

@Injectable()
class BrokenCache implements OnModuleDestroy {
  onModuleDestroy(): void {
    throw new Error('cache already gone');
  }
}

@Injectable()
class BrokenQueue implements BeforeApplicationShutdown {
  async beforeApplicationShutdown(): Promise<void> {
    throw new Error('queue unreachable');
  }
}

class HangingPool implements OnModuleDestroy {
  entered = false;
  readonly release = new Deferred();

  onModuleDestroy(): Promise<void> {
    this.entered = true;
    return this.release.promise;
  }
}
