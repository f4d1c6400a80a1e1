import 'reflect-metadata';
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  LoggerService,
  Module,
  OnModuleInit,
  ServiceUnavailableException,
  Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';
import { attachLifecycle, LifecycleModule, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { MetricsModule, MetricsService } from '@nest-rollout/metrics';
import {
  RegistrationState,
  RegistryClient,
  RegistryEvent,
  RegistryModule,
  RegistryModuleOptions,
  RegistryService,
  RegistryStats,
  ServiceInstancesChange,
} from '@nest-rollout/registry';
import { ConsulTestServer, ConsulTestServerOptions, selfSignedCertificate } from './support/consul-test-server';
import { EtcdServer } from './support/etcd';
import { parseExposition, valueOf } from './support/exposition';
import { accepts, freePort } from './support/ports';
import { delay } from './support/process';
import { waitUntil } from './support/wait';

/**
 * The registry end to end, on both drivers: a real etcd (Debian's etcd-server) and, since no Consul
 * binary can be installed here, the Consul-API test server in test/support driven through the real
 * `consul` npm client. Apps run in-process (a warm-up task the test releases decides when READY
 * comes); the kill -9 case runs a child process from the build. Timing assertions are generous
 * bounds that guard behaviour.
 */
const ROOT = join(__dirname, '..');

/** One registry to run the scenarios against. */
interface RegistryHandle {
  readonly url: string;
  start(): Promise<void>;
  /** Restart that loses every registration (etcd: wiped data dir; Consul: agent without its state). */
  restartWiped(): Promise<void>;
  /** Accepts connections, never answers. */
  freeze(): void;
  thaw(): void;
  /** Whether the registry holds this instance now (observed directly, not through the module). */
  holds(service: string, id: string): Promise<boolean>;
  /** The Consul test server behind the handle (Consul only), for what the agent did on its own. */
  readonly consul?: ConsulTestServer;
  destroy(): Promise<void>;
}

interface Backend {
  readonly name: 'etcd' | 'consul';
  /** A registry that is not running yet. */
  create(): Promise<RegistryHandle>;
  options(handle: RegistryHandle, overrides?: Partial<RegistryModuleOptions>): RegistryModuleOptions;
}

/** Fast timings, all bounded, for both drivers. */
const COMMON: RegistryModuleOptions = {
  address: '127.0.0.1',
  operationTimeoutMs: 1000,
  deregisterTimeoutMs: 1000,
  antiEntropyIntervalMs: 1000,
  retry: { initialDelayMs: 100, maxDelayMs: 800 },
  discovery: { waitMs: 5000, minQueryIntervalMs: 100 },
};

const etcdBackend: Backend = {
  name: 'etcd',
  async create() {
    const server = await EtcdServer.create();
    let observer: Etcd3 | undefined;
    return {
      url: server.url,
      start: () => server.start(),
      restartWiped: async () => {
        observer?.close();
        observer = undefined;
        await server.stop({ wipe: true });
        await server.start();
      },
      freeze: () => server.freeze(),
      thaw: () => server.thaw(),
      holds: async (service, id) => {
        observer ??= new Etcd3({ hosts: server.url });
        return (await observer.get(`/services/${service}/${id}`).string()) !== null;
      },
      destroy: async () => {
        observer?.close();
        await server.destroy();
      },
    };
  },
  options: (handle, overrides = {}) => ({ ...COMMON, driver: 'etcd', etcd: { endpoints: [handle.url], leaseTtlSeconds: 3 }, ...overrides }),
};

const consulBackend: Backend = {
  name: 'consul',
  async create() {
    // Reaping alone is scaled, by 0.05: the 30 s reaper runs every 1.5 s and the one-minute
    // DeregisterCriticalServiceAfter lasts 3 s. Checks, their intervals and timeouts run at full length.
    const server = new ConsulTestServer({ port: await freePort(), reapTimeScale: 0.05 });
    return {
      url: server.url,
      consul: server,
      start: () => server.listen(),
      restartWiped: () => server.restart(),
      freeze: () => server.freeze(),
      thaw: () => server.thaw(),
      holds: async (_service, id) => id in server.agentServices(),
      destroy: () => server.destroy(),
    };
  },
  options: (handle, overrides = {}) => ({
    ...COMMON,
    driver: 'consul',
    consul: { url: handle.url, check: { type: 'http', intervalMs: 1000, timeoutMs: 500 } },
    ...overrides,
  }),
};

// ---- in-process apps -------------------------------------------------------------------------

const GATE = 'TEST:WARMUP_GATE';

class Gate {
  readonly promise: Promise<void>;
  open!: () => void;
  constructor() {
    this.promise = new Promise<void>((resolve) => (this.open = resolve));
  }
}

@Injectable()
class WarmupGate implements OnModuleInit {
  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(GATE) private readonly gate: Gate,
  ) {}
  onModuleInit(): void {
    this.lifecycle.registerWarmupTask({ name: 'test.gate', run: () => this.gate.promise, timeoutMs: 60_000 });
  }
}

/** The readiness probe the Consul HTTP check points at. */
@Controller('health')
class ReadyController {
  constructor(private readonly lifecycle: LifecycleService) {}
  @Get('ready')
  ready(): { status: string } {
    if (!this.lifecycle.isReady()) throw new ServiceUnavailableException(this.lifecycle.state);
    return { status: 'ok' };
  }
}

interface LogLine {
  readonly level: string;
  readonly message: unknown;
}

/**
 * Nest routes every Logger of the process to the logger of the app created last, so one capture
 * serves every in-process app; each app's view filters the registry events by its service name.
 */
class CaptureLogger implements LoggerService {
  readonly lines: LogLine[] = [];
  log(message: unknown) {
    this.lines.push({ level: 'log', message });
  }
  warn(message: unknown) {
    this.lines.push({ level: 'warn', message });
  }
  error(message: unknown) {
    this.lines.push({ level: 'error', message });
  }
  debug() {}
  verbose() {}
  events(name: string, service?: string): Record<string, unknown>[] {
    return this.lines
      .map((l) => l.message as Record<string, unknown>)
      .filter((m) => m && typeof m === 'object' && m.event === name && (service === undefined || m.service === service));
  }
}

const LOGS = new CaptureLogger();

/** The registry events of one service. */
interface AppLogs {
  events(name: string): Record<string, unknown>[];
}

interface TestApp {
  readonly app: INestApplication;
  readonly port: number;
  readonly gate: Gate;
  readonly lifecycle: LifecycleService;
  readonly registry: RegistryService;
  readonly client: RegistryClient;
  readonly stats: RegistryStats;
  readonly logs: AppLogs;
  /** One scrape of the app's own metrics registry: `name{labels}` → value, or undefined. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  /** Graceful shutdown as on SIGTERM; resolves when STOPPED. */
  shutdown(): Promise<void>;
}

const apps: TestApp[] = [];

async function startApp(
  registry: RegistryModuleOptions,
  options: { openGate?: boolean; drainDelayMs?: number; httpsOptions?: { key: string; cert: string } } = {},
): Promise<TestApp> {
  const gate = new Gate();
  @Module({
    imports: [
      LifecycleModule.forRoot({
        minReadyDelayMs: 0,
        drainDelayMs: options.drainDelayMs ?? 300,
        shutdownTimeoutMs: 2000,
        exitOnShutdown: false,
      }),
      RegistryModule.forRoot(registry),
      // A registry of its own per app, so that the apps of one test do not share series.
      MetricsModule.forRoot({ registry: new Registry(), defaultMetrics: false }),
    ],
    controllers: [ReadyController],
    providers: [{ provide: GATE, useValue: gate }, WarmupGate],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule as Type<unknown>, {
    logger: LOGS,
    ...(options.httpsOptions ? { httpsOptions: options.httpsOptions } : {}),
  });
  attachLifecycle(app);
  await app.listen(0, '127.0.0.1');
  const lifecycle = app.get(LifecycleService);
  const testApp: TestApp = {
    app,
    port: (app.getHttpServer().address() as { port: number }).port,
    gate,
    lifecycle,
    registry: app.get(RegistryService),
    client: app.get(RegistryClient),
    stats: app.get(RegistryStats),
    logs: { events: (name) => LOGS.events(name, registry.service) },
    metric: async (name, labels) => valueOf(parseExposition((await app.get(MetricsService).metrics()).body), name, labels),
    shutdown: () => lifecycle.shutdown('test'),
  };
  apps.push(testApp);
  if (options.openGate !== false) gate.open();
  return testApp;
}

async function stopApps(): Promise<void> {
  await Promise.all(
    apps.splice(0).map(async (a) => {
      a.gate.open();
      if (a.lifecycle.state !== LifecycleState.STOPPED) await withTimeout(a.shutdown(), 15_000, 'app shutdown').catch(() => undefined);
    }),
  );
}

// ---- helpers -----------------------------------------------------------------------------------

/**
 * How long a warming-up instance is watched for an early registration. A register call issued at
 * boot lands on a loopback registry within milliseconds; the module's recorded states catch an early
 * start whatever its timing, so this only has to cover a write already on its way.
 */
const NO_EARLY_REGISTRATION_WINDOW_MS = 300;

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms))),
  ]);
}

/** Runs a registering app from the build in a child process; it prints its registration once registered. */
const CHILD_APP = `
require('reflect-metadata');
const { Controller, Get, Inject, Module, ServiceUnavailableException } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { LifecycleModule, LifecycleService, attachLifecycle } = require('@nest-rollout/lifecycle');
const { RegistryModule, RegistryService } = require('@nest-rollout/registry');
class Ready {
  constructor(lifecycle) { this.lifecycle = lifecycle; }
  ready() { if (!this.lifecycle.isReady()) throw new ServiceUnavailableException(); return { status: 'ok' }; }
}
Inject(LifecycleService)(Ready, undefined, 0);
Get('ready')(Ready.prototype, 'ready', Object.getOwnPropertyDescriptor(Ready.prototype, 'ready'));
Controller('health')(Ready);
class AppModule {}
Module({
  imports: [LifecycleModule.forRoot({ minReadyDelayMs: 0, drainDelayMs: 100 }), RegistryModule.forRoot(JSON.parse(process.env.REGISTRY_OPTIONS))],
  controllers: [Ready],
})(AppModule);
(async () => {
  const app = await NestFactory.create(AppModule, { logger: ['error'] });
  attachLifecycle(app);
  await app.listen(0, '127.0.0.1');
  const registry = app.get(RegistryService);
  registry.state$.subscribe((state) => {
    if (state === 'REGISTERED') process.stdout.write(JSON.stringify({ registered: registry.registration }) + '\\n');
  });
})().catch((e) => { console.error(e); process.exit(1); });
`;

function startChild(options: RegistryModuleOptions): {
  child: ChildProcess;
  registered: Promise<{ id: string; name: string; port: number }>;
} {
  const child = spawn(process.execPath, ['-e', CHILD_APP], {
    cwd: ROOT,
    env: { ...process.env, REGISTRY_OPTIONS: JSON.stringify(options) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const registered = new Promise<{ id: string; name: string; port: number }>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.startsWith('{"registered"'));
      if (line) resolve((JSON.parse(line) as { registered: { id: string; name: string; port: number } }).registered);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before registering:\n${output}`)));
  });
  registered.catch(() => undefined);
  return { child, registered };
}

beforeAll(() => {
  // The kill -9 scenario runs the build of the libs in a child process.
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'libs/registry/tsconfig.lib.json'], {
    cwd: ROOT,
    stdio: 'pipe',
  });
}, 120_000);

describe.each([etcdBackend, consulBackend])('registry with the $name driver', (backend) => {
  let registry: RegistryHandle;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    registry = await backend.create();
    await registry.start();
  }, 30_000);

  afterEach(async () => {
    child?.kill('SIGKILL');
    child = undefined;
    registry.thaw();
    await stopApps();
  }, 30_000);

  afterAll(async () => {
    await registry?.destroy();
  }, 30_000);

  it('registers only once READY, a discovery client in another app sees it, and it is deregistered before the listener closes', async () => {
    const service = `orders-${backend.name}-a`;
    const a = await startApp(backend.options(registry, { service, tags: ['green'] }), { openGate: false, drainDelayMs: 800 });
    // onEmpty 'accept': the last instance leaving must show as an empty set here (the other policy is below).
    const b = await startApp(backend.options(registry, { register: false, discovery: { ...COMMON.discovery, onEmpty: 'accept' } }));
    const id = `${service}-${hostname()}-${a.port}`;

    // Each state of the module (its current one first) with the lifecycle's state at that moment:
    // a registration started before READY shows here, however early it came.
    const registryStates: { registry: RegistrationState; lifecycle: LifecycleState }[] = [];
    a.registry.state$.subscribe((state) => registryStates.push({ registry: state, lifecycle: a.lifecycle.state }));

    // Warm-up holds the instance in WARMING_UP: nothing in the registry while it lasts.
    await waitUntil(() => a.lifecycle.state === LifecycleState.WARMING_UP, 'warm-up to begin', 5000);
    await delay(NO_EARLY_REGISTRATION_WINDOW_MS);
    expect(a.lifecycle.state).toBe(LifecycleState.WARMING_UP);
    expect(a.registry.state).toBe(RegistrationState.WAITING_FOR_READY);
    expect(await registry.holds(service, id)).toBe(false);

    let readyAt = 0;
    a.lifecycle.changes$.subscribe((c) => c.to === LifecycleState.READY && (readyAt = c.at));
    a.gate.open();
    const seenAt = await waitUntil(() => registry.holds(service, id), 'the registration', 5000);
    expect(readyAt).toBeGreaterThan(0);
    expect(seenAt).toBeGreaterThanOrEqual(readyAt);
    // The registry may hold the entry a moment before the module has read its answer.
    await waitUntil(() => a.registry.registered, 'the module to see its registration', 5000);
    expect(registryStates.slice(0, 3)).toEqual([
      { registry: RegistrationState.WAITING_FOR_READY, lifecycle: expect.any(String) },
      { registry: RegistrationState.REGISTERING, lifecycle: LifecycleState.READY },
      { registry: RegistrationState.REGISTERED, lifecycle: LifecycleState.READY },
    ]);
    expect(a.registry.registration).toMatchObject({ id, name: service, address: '127.0.0.1', port: a.port, tags: ['green'] });
    expect(a.registry.registration?.meta).toMatchObject({ track: 'stable', color: 'default' });
    expect(a.logs.events(RegistryEvent.REGISTERED)).toHaveLength(1);
    const driver = { driver: backend.name };
    expect(await a.metric('registry_registered', driver)).toBe(1);
    expect(await a.metric('registry_operations_total', { ...driver, operation: 'register', result: 'success' })).toBe(1);

    // Another app's client finds it (Consul: once its HTTP check passes, as passing-only is the default).
    const found = await b.client
      .ready(service, {}, 5000)
      .then(() => waitUntil(() => b.client.instances(service).length === 1, 'discovery', 5000));
    expect(found).toBeGreaterThan(0);
    expect(b.client.instances(service, { tags: ['green'] })[0]).toMatchObject({
      id,
      address: '127.0.0.1',
      port: a.port,
      health: 'passing',
    });
    expect(b.client.instances(service, { tags: ['blue'] })).toEqual([]);
    expect(b.client.pick(service, { meta: { track: 'stable' } })?.id).toBe(id);
    expect(await b.metric('registry_discovery_instances', { service, health: 'passing' })).toBe(1);
    // Live once the watch (etcd) or the first blocking query (Consul) is up, a moment after the first read.
    await waitUntil(() => b.client.status().every((s) => s.live), 'the discovery feed to be live', 5000);
    expect(await b.metric('registry_discovery_staleness_seconds', { service, health: 'passing' })).toBe(0);

    const changes: ServiceInstancesChange[] = [];
    b.client.changes$(service).subscribe((c) => changes.push(c));

    // SIGTERM's path: the entry must be gone while the listener still accepts connections.
    let goneAt = 0;
    let closedAt = 0;
    let scraped: { registered?: number; deregistrationSeconds?: number } = {};
    const watching = (async () => {
      while (!closedAt) {
        // What a scrape during the drain shows (the metrics leave with the application).
        if (a.lifecycle.state === LifecycleState.DRAINING) {
          scraped = {
            registered: await a.metric('registry_registered', driver),
            deregistrationSeconds: await a.metric('registry_deregistration_duration_seconds', driver),
          };
        }
        if (!goneAt && !(await registry.holds(service, id))) goneAt = Date.now();
        if (!(await accepts(a.port))) closedAt = Date.now();
        await delay(20);
      }
    })();
    const shutdown = a.shutdown();
    await withTimeout(shutdown, 10_000, 'shutdown');
    await withTimeout(watching, 3000, 'the listener closing');
    expect(goneAt).toBeGreaterThan(0);
    expect(goneAt).toBeLessThan(closedAt);
    expect(a.logs.events(RegistryEvent.DEREGISTERED)[0]).toMatchObject({ reason: 'draining' });
    expect(a.stats.snapshot().lastDeregistrationMs).toBeLessThan(800);
    expect(scraped.registered).toBe(0);
    expect(scraped.deregistrationSeconds).toBe(a.stats.snapshot().lastDeregistrationMs! / 1000);
    await waitUntil(() => b.client.instances(service).length === 0, 'the removal reaching the other client', 5000);
    expect(changes.at(-1)?.removed.map((i) => i.id)).toEqual([id]);
  }, 40_000);

  it('an instance killed with SIGKILL leaves the registry on its own (lease expiry / critical check reaped)', async () => {
    const service = `orders-${backend.name}-kill`;
    const observer = await startApp(backend.options(registry, { register: false, discovery: { ...COMMON.discovery, onEmpty: 'accept' } }));
    const started = startChild(
      backend.options(registry, {
        service,
        ...(backend.name === 'etcd' ? { etcd: { endpoints: [registry.url], leaseTtlSeconds: 2 } } : {}),
      }),
    );
    child = started.child;
    const registration = await withTimeout(started.registered, 15_000, 'the child registering');
    expect(await registry.holds(service, registration.id)).toBe(true);
    await waitUntil(() => observer.client.instances(service).length === 1, 'the child in discovery', 8000);

    const killedAt = Date.now();
    child.kill('SIGKILL');
    // Out of the healthy set: etcd when the 2 s lease expires; Consul once the HTTP check (every 1 s) fails.
    await waitUntil(() => observer.client.instances(service).length === 0, 'the killed instance leaving discovery', 8000);
    const consul = registry.consul;
    if (consul) {
      // Consul keeps a critical instance registered: only the reaper removes it, once its check has
      // been critical for DeregisterCriticalServiceAfter (default one minute, 3 s here).
      expect(await registry.holds(service, registration.id)).toBe(true);
    }
    // Gone from the registry entirely: the expired lease took the key; Consul's reaper removed it.
    await waitUntil(async () => !(await registry.holds(service, registration.id)), 'the entry to disappear', 20_000, 100);
    const goneAfterMs = Date.now() - killedAt;
    if (!consul) {
      expect(goneAfterMs).toBeGreaterThan(500);
      expect(goneAfterMs).toBeLessThan(9000);
      return;
    }
    // Consul's order of events: the check turns critical after the kill, the reaper removes the
    // instance only once that check has been critical for longer than the deregister delay.
    const checkId = `service:${registration.id}`;
    const criticalAt = consul.history.find(
      (e) => e.event === 'check' && e.checkId === checkId && e.status === 'critical' && e.at >= killedAt,
    )?.at;
    const reaped = consul.history.find((e) => e.event === 'reaped' && e.serviceId === registration.id);
    const deregisterAfterMs = consul.effectiveDeregisterAfterMs(60_000);
    expect(criticalAt).toBeDefined();
    expect(reaped).toMatchObject({ checkId, criticalForMs: expect.any(Number) });
    expect(reaped!.event === 'reaped' && reaped!.criticalForMs).toBeGreaterThan(deregisterAfterMs);
    expect(reaped!.at - criticalAt!).toBeGreaterThanOrEqual(deregisterAfterMs);
    // Bounded by one check interval and its timeout, the delay, one reaper period, and slack.
    expect(goneAfterMs).toBeLessThan(1000 + 500 + deregisterAfterMs + consul.reapIntervalMs + 3000);
  }, 40_000);

  it('starts and serves while the registry is down, and registers once it is up', async () => {
    const late = await backend.create();
    try {
      const service = `orders-${backend.name}-late`;
      const a = await startApp(backend.options(late, { service }));
      await waitUntil(() => a.lifecycle.state === LifecycleState.READY, 'READY', 5000);
      expect(await accepts(a.port)).toBe(true);
      await waitUntil(
        () => a.stats.count('register', 'failure') + a.stats.count('register', 'timeout') >= 2,
        'failed attempts to be counted',
        8000,
      );
      expect(a.registry.state).toBe(RegistrationState.REGISTERING);
      expect(a.logs.events(RegistryEvent.REGISTER_FAILED).length).toBeGreaterThanOrEqual(2);
      // Retries go on meanwhile: the scrape must lie between two readings of the stats.
      const failedSoFar = () => a.stats.count('register', 'failure') + a.stats.count('register', 'timeout');
      const failedMetric = async () => {
        const scrape = parseExposition((await a.app.get(MetricsService).metrics()).body);
        const labels = { driver: backend.name, operation: 'register' };
        return (
          (valueOf(scrape, 'registry_operations_total', { ...labels, result: 'failure' }) ?? 0) +
          (valueOf(scrape, 'registry_operations_total', { ...labels, result: 'timeout' }) ?? 0)
        );
      };
      const before = failedSoFar();
      const counted = await failedMetric();
      expect(counted).toBeGreaterThanOrEqual(before);
      expect(counted).toBeLessThanOrEqual(failedSoFar());
      expect(await a.metric('registry_registered', { driver: backend.name })).toBe(0);

      await late.start();
      await waitUntil(() => a.registry.registered, 'the registration after the registry started', 8000);
      expect(await late.holds(service, a.registry.registration!.id)).toBe(true);
      expect(a.logs.events(RegistryEvent.REGISTERED)[0].attempts).toBeGreaterThan(1);
      await a.shutdown();
    } finally {
      await late.destroy();
    }
  }, 40_000);

  it('restores its entry when the registry restarts without its data, and discovery keeps the last known set meanwhile', async () => {
    const service = `orders-${backend.name}-wiped`;
    const a = await startApp(backend.options(registry, { service }));
    const b = await startApp(backend.options(registry, { register: false }));
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    const id = a.registry.registration!.id;
    await waitUntil(() => b.client.instances(service).length === 1, 'discovery', 8000);
    const changes: ServiceInstancesChange[] = [];
    b.client.changes$(service).subscribe((c) => changes.push(c));

    await registry.restartWiped();
    await waitUntil(() => a.stats.snapshot().registrationsLost >= 1, 'the loss to be detected', 10_000);
    await waitUntil(() => registry.holds(service, id), 'the entry restored', 10_000, 100);
    expect(a.logs.events(RegistryEvent.REGISTRATION_LOST).length).toBeGreaterThanOrEqual(1);
    expect(await a.metric('registry_registrations_lost_total', { driver: backend.name })).toBe(a.stats.snapshot().registrationsLost);
    await waitUntil(() => b.client.status().every((s) => s.live), 'discovery to recover', 10_000);
    await waitUntil(() => b.client.instances(service).length === 1 && !changes.at(-1)?.keptLastKnown, 'discovery to see it again', 10_000);
    // The client never served an empty set for a service that had instances.
    expect(changes.every((c) => c.instances.length === 1)).toBe(true);
  }, 50_000);

  it('finishes the shutdown within the deregistration bound when the registry hangs', async () => {
    const service = `orders-${backend.name}-frozen`;
    const a = await startApp(backend.options(registry, { service }), { drainDelayMs: 200 });
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    registry.freeze();
    const started = Date.now();
    await withTimeout(a.shutdown(), 10_000, 'shutdown');
    const tookMs = Date.now() - started;
    registry.thaw();
    // deregisterTimeoutMs is 1000: once at DRAINING, once more in onApplicationShutdown.
    expect(tookMs).toBeLessThan(1000 + 1000 + 1500);
    const failures = a.logs.events(RegistryEvent.DEREGISTER_FAILED);
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures[0]).toMatchObject({ reason: 'draining', error: expect.objectContaining({ code: 'REGISTRY_TIMEOUT' }) });
    expect(a.stats.count('deregister', 'timeout')).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

describe('registry with the consul driver and a TTL check', () => {
  /** Heartbeats go every TTL / 3; 2 s keeps over a second of slack for a late one. */
  const TTL_MS = 2000;
  /** One TTL and a little: longer than the check lives without a heartbeat. */
  const NO_TTL_EXPIRY_WINDOW_MS = TTL_MS + 250;
  let consul: ConsulTestServer;
  beforeAll(async () => {
    // ACLs on, default deny: only this token may write (and so read) the service.
    consul = await ConsulTestServer.start({
      acl: { defaultPolicy: 'deny', tokens: { 'secret-token': { service_prefix: { 'orders-': 'write' }, node_prefix: { '': 'read' } } } },
    });
  });
  afterEach(() => stopApps(), 30_000);
  afterAll(() => consul?.destroy());

  it('finds a lost TTL check by its status code whatever the length of its service id', async () => {
    // Long enough that the HTTP client no longer repeats the agent's 404 message in its error.
    const instanceId = `orders-ttl-long-${'x'.repeat(100)}`;
    const a = await startApp({
      ...COMMON,
      driver: 'consul',
      service: 'orders-ttl-long',
      instanceId,
      consul: { url: consul.url, token: 'secret-token', check: { type: 'ttl', ttlMs: TTL_MS } },
      antiEntropyIntervalMs: 60_000,
    });
    await waitUntil(() => consul.checkStatus(`service:${instanceId}`) === 'passing', 'the first heartbeat', 5000);
    await consul.restart();
    await waitUntil(() => consul.checkStatus(`service:${instanceId}`) === 'passing', 'the entry restored by the heartbeat', 5000);
    expect(a.logs.events(RegistryEvent.REGISTRATION_LOST)).toEqual([expect.objectContaining({ detected_by: 'heartbeat' })]);
  }, 30_000);

  it('feeds the TTL with heartbeats (with the ACL token), and registers again when the agent forgets the check', async () => {
    const service = 'orders-ttl';
    const a = await startApp({
      ...COMMON,
      driver: 'consul',
      service,
      consul: { url: consul.url, token: 'secret-token', check: { type: 'ttl', ttlMs: TTL_MS } },
      antiEntropyIntervalMs: 60_000,
    });
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    const id = a.registry.registration!.id;
    const checkId = `service:${id}`;
    const heartbeatsSince = (since: number) =>
      consul.requests.filter((r) => r.at >= since && decodeURIComponent(r.path) === `/v1/agent/check/pass/${checkId}`).length;
    const firstPassAt = await waitUntil(() => consul.checkStatus(checkId) === 'passing', 'the first heartbeat', 3000);
    // Past one whole TTL since the first heartbeat, the check would have expired had no heartbeat
    // followed: it stays passing (watched all along) only because they keep coming.
    const statuses = new Set<string | undefined>();
    while (Date.now() - firstPassAt < NO_TTL_EXPIRY_WINDOW_MS) {
      statuses.add(consul.checkStatus(checkId));
      await delay(25);
    }
    statuses.add(consul.checkStatus(checkId));
    expect([...statuses]).toEqual(['passing']);
    expect(heartbeatsSince(firstPassAt)).toBeGreaterThanOrEqual(2);

    await consul.restart();
    // Anti-entropy is a minute away here: the heartbeat's 404 is what brings the entry back.
    await waitUntil(() => consul.checkStatus(`service:${id}`) === 'passing', 'the entry restored by the heartbeat', 5000);
    expect(a.logs.events(RegistryEvent.REGISTRATION_LOST)[0]).toMatchObject({ detected_by: 'heartbeat' });

    await a.shutdown();
    expect(consul.agentServices()).toEqual({});
  }, 30_000);
});

describe('registry with the consul driver, against what Consul does', () => {
  const servers: ConsulTestServer[] = [];
  async function startConsul(options: ConsulTestServerOptions = {}): Promise<ConsulTestServer> {
    const server = await ConsulTestServer.start(options);
    servers.push(server);
    return server;
  }
  afterEach(async () => {
    await stopApps();
    await Promise.all(servers.splice(0).map((s) => s.destroy()));
  }, 30_000);

  const consulOptions = (
    consul: ConsulTestServer,
    overrides: Partial<RegistryModuleOptions> & { consul?: object } = {},
  ): RegistryModuleOptions => ({
    ...COMMON,
    driver: 'consul',
    ...overrides,
    consul: { url: consul.url, check: { type: 'http', intervalMs: 1000, timeoutMs: 500 }, ...overrides.consul },
  });
  const put = (consul: ConsulTestServer, path: string, body: unknown) =>
    fetch(`${consul.url}${path}`, { method: 'PUT', body: JSON.stringify(body) }).then((r) => r.status);
  const requestsTo = (consul: ConsulTestServer, path: string, since = 0) =>
    consul.requests.filter((r) => r.at >= since && decodeURIComponent(r.path) === path);

  it('registers with replace-existing-checks: a stale check an earlier run left under its id no longer hides it', async () => {
    const consul = await startConsul();
    const service = 'orders-stale';
    const instanceId = 'orders-stale-1';
    // An earlier version of this instance registered a second check, which nothing feeds any more.
    const earlier = [
      { CheckID: `service:${instanceId}`, TTL: '30s' },
      { CheckID: 'orders-stale-warmup', TTL: '30s' },
    ];
    expect(
      await put(consul, '/v1/agent/service/register', { Name: service, ID: instanceId, Address: '127.0.0.1', Port: 1, Checks: earlier }),
    ).toBe(200);

    const a = await startApp(consulOptions(consul, { service, instanceId }));
    const b = await startApp(consulOptions(consul, { register: false }));
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    expect(requestsTo(consul, '/v1/agent/service/register').at(-1)?.search).toBe('?replace-existing-checks=true');
    expect(Object.keys(consul.serviceChecks(instanceId))).toEqual([`service:${instanceId}`]);
    // Passing-only discovery sees it once its one check passes.
    await waitUntil(() => b.client.instances(service).length === 1, 'the instance passing in discovery', 8000);
  }, 30_000);

  it('counts the deregistration of an entry the agent no longer holds as done (Consul answers 404)', async () => {
    const consul = await startConsul();
    const service = 'orders-gone';
    const a = await startApp(consulOptions(consul, { service, antiEntropyIntervalMs: 60_000 }));
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    const id = a.registry.registration!.id;
    // An operator (or the reaper) removed it meanwhile.
    expect(await put(consul, `/v1/agent/service/deregister/${encodeURIComponent(id)}`, {})).toBe(200);

    await withTimeout(a.shutdown(), 10_000, 'shutdown');
    expect(requestsTo(consul, `/v1/agent/service/deregister/${id}`).map((r) => r.status)).toEqual([200, 404]);
    expect(a.logs.events(RegistryEvent.DEREGISTERED)).toEqual([expect.objectContaining({ reason: 'draining' })]);
    expect(a.logs.events(RegistryEvent.DEREGISTER_FAILED)).toEqual([]);
  }, 30_000);

  it('discovers in the configured datacenter, and fails instead of finding nothing when the agent has no path to it', async () => {
    const consul = await startConsul({ datacenter: 'eu-1' });
    const service = 'orders-dc';
    const a = await startApp(consulOptions(consul, { service }));
    const inEu = await startApp(consulOptions(consul, { register: false, consul: { datacenter: 'eu-1' } }));
    const inUs = await startApp(consulOptions(consul, { register: false, consul: { datacenter: 'us-1' } }));
    await waitUntil(() => a.registry.registered, 'the registration', 5000);
    await waitUntil(() => inEu.client.instances(service).length === 1, 'discovery in eu-1', 8000);

    inUs.client.instances(service);
    await waitUntil(
      () =>
        LOGS.events(RegistryEvent.DISCOVERY_FAILED, service).filter((e) => JSON.stringify(e.error).includes('No path to datacenter'))
          .length >= 2,
      'discovery in us-1 to fail twice',
      8000,
    );
    expect(inUs.client.status().find((s) => s.service === service)).toMatchObject({ live: false, instances: 0 });
    expect(requestsTo(consul, `/v1/health/service/${service}`).every((r) => /dc=(eu|us)-1/.test(r.search))).toBe(true);
  }, 30_000);

  it('registers HTTPS readiness checks that run: verified against the agent CA, or not at all with tlsSkipVerify', async () => {
    const tls = selfSignedCertificate();
    const trusting = await startConsul({ checkCa: tls.cert });
    const plain = await startConsul();
    const https = (consul: ConsulTestServer, service: string, tlsSkipVerify: boolean) =>
      startApp(
        consulOptions(consul, {
          service,
          consul: { check: { type: 'http', scheme: 'https', tlsSkipVerify, intervalMs: 1000, timeoutMs: 500 } },
        }),
        {
          httpsOptions: tls,
        },
      );
    const verified = await https(trusting, 'orders-tls-verified', false);
    const skipped = await https(plain, 'orders-tls-skipped', true);
    const untrusted = await https(plain, 'orders-tls-untrusted', false);
    const checkOf = (consul: ConsulTestServer, app: TestApp) => consul.serviceChecks(app.registry.registration!.id);
    await waitUntil(() => [verified, skipped, untrusted].every((a) => a.registry.registered), 'the registrations', 5000);
    await waitUntil(
      () => trusting.checkStatus(`service:${verified.registry.registration!.id}`) === 'passing',
      'the verified check to pass',
      8000,
    );
    await waitUntil(
      () => plain.checkStatus(`service:${skipped.registry.registration!.id}`) === 'passing',
      'the unverified check to pass',
      8000,
    );
    const untrustedCheck = `service:${untrusted.registry.registration!.id}`;
    await waitUntil(() => plain.checkRuns(untrustedCheck) >= 2, 'the untrusted check to run twice', 8000);
    expect(Object.values(checkOf(plain, untrusted))[0]).toMatchObject({
      Status: 'critical',
      Output: expect.stringMatching(/certificate/i),
      Definition: expect.objectContaining({ HTTP: `https://127.0.0.1:${untrusted.port}/health/ready` }),
    });
  }, 30_000);

  describe('with ACLs (default deny)', () => {
    const service = 'orders-acl';
    const acl = {
      defaultPolicy: 'deny' as const,
      tokens: {
        writer: { service_prefix: { [service]: 'write' as const }, node_prefix: { '': 'read' as const } },
        'service-reader': { service_prefix: { [service]: 'read' as const } },
        reader: { service_prefix: { [service]: 'read' as const }, node_prefix: { '': 'read' as const } },
      },
    };
    const permissionProblems = (operation: string) =>
      LOGS.events(RegistryEvent.PERMISSION_DENIED, service).filter((e) => e.operation === operation);

    it('tells an answer the ACLs cut short from an empty service: one permission problem, no empty view, current once granted', async () => {
      const consul = await startConsul({ acl });
      const a = await startApp(consulOptions(consul, { service, consul: { token: 'writer' } }));
      await waitUntil(
        () => a.registry.registered && consul.checkStatus(`service:${a.registry.registration!.id}`) === 'passing',
        'a passing instance',
        8000,
      );
      const b = await startApp(consulOptions(consul, { register: false, consul: { token: 'service-reader' } }));
      b.client.instances(service);
      await waitUntil(
        () => requestsTo(consul, `/v1/health/service/${service}`).filter((r) => r.status === 200).length >= 3,
        'three answers',
        8000,
      );
      expect(permissionProblems('discovery')).toEqual([
        expect.objectContaining({
          error: expect.objectContaining({ code: 'REGISTRY_PERMISSION_DENIED', message: expect.stringContaining('node:read') }),
        }),
      ]);
      expect(b.client.status().find((s) => s.service === service)).toMatchObject({ live: false });
      expect(LOGS.events(RegistryEvent.DISCOVERY_EMPTY_ACCEPTED, service)).toEqual([]);
      expect(LOGS.events(RegistryEvent.DISCOVERY_FAILED, service)).toEqual([]);

      consul.setAclRules('service-reader', acl.tokens.reader);
      await waitUntil(() => b.client.instances(service).length === 1, 'discovery once node:read is granted', 8000);
    }, 30_000);

    it('logs a registration its token may not make once, retries at the backoff ceiling, and registers once granted', async () => {
      const consul = await startConsul({ acl });
      const a = await startApp(
        consulOptions(consul, { service, consul: { token: 'reader' }, retry: { initialDelayMs: 100, maxDelayMs: 1000 } }),
      );
      const register = () => requestsTo(consul, '/v1/agent/service/register');
      await waitUntil(() => register().filter((r) => r.status === 403).length >= 3, 'three refused registrations', 8000);
      expect(permissionProblems('register')).toEqual([
        expect.objectContaining({
          error: expect.objectContaining({ message: expect.stringContaining('needs service:write on "orders-acl"') }),
        }),
      ]);
      expect(a.logs.events(RegistryEvent.REGISTER_FAILED)).toEqual([]);
      // The ceiling (1000 ms, jitter 0.5) rather than 100, 200, 400 ms.
      const at = register().map((r) => r.at);
      for (let i = 1; i < at.length; i++) expect(at[i] - at[i - 1]).toBeGreaterThanOrEqual(450);

      consul.setAclRules('reader', acl.tokens.writer);
      await waitUntil(() => a.registry.registered, 'the registration once service:write is granted', 5000);
    }, 30_000);

    it('does not re-register when its token may no longer read its entry: one permission problem, the entry stays', async () => {
      const consul = await startConsul({ acl: { ...acl, tokens: { ...acl.tokens, revoked: acl.tokens.writer } } });
      const a = await startApp(consulOptions(consul, { service, consul: { token: 'revoked' } }));
      await waitUntil(() => a.registry.registered, 'the registration', 5000);
      const id = a.registry.registration!.id;

      consul.setAclRules('revoked', { service_prefix: { [service]: 'deny' }, node_prefix: { '': 'read' } });
      const since = Date.now();
      // Anti-entropy runs every second: three refused reads of its own entry.
      await waitUntil(
        () => requestsTo(consul, `/v1/agent/service/${id}`, since).filter((r) => r.status === 403).length >= 3,
        'three refused reads',
        8000,
      );
      expect(requestsTo(consul, '/v1/agent/service/register', since)).toEqual([]);
      expect(a.stats.snapshot().registrationsLost).toBe(0);
      expect(a.registry.registered).toBe(true);
      expect(Object.keys(consul.agentServices())).toEqual([id]);
      expect(permissionProblems('anti_entropy')).toEqual([
        expect.objectContaining({
          error: expect.objectContaining({ message: expect.stringContaining('needs service:read on "orders-acl"') }),
        }),
      ]);
    }, 30_000);
  });
});
