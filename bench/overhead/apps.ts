import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import type { AbstractHttpAdapter } from '@nestjs/core';
import type { DynamicModule, ExecutionContext, INestApplication, LoggerService, LogLevel, Provider, Type } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { answerServerQueries } from '../support';

/** The adapters the bench runs on. */
export const ADAPTERS = ['express', 'fastify'] as const;
export type AdapterName = (typeof ADAPTERS)[number];

/**
 * The variants, each an app of its own in a process of its own, all serving the same
 * GET /orders/:id:
 *
 * - bare: no module of ours;
 * - als: bare, in a process where an AsyncLocalStorage is in use (entered once at start): what any
 *   per-request context costs on its own (LoggingModule's trace ids, @Canary()'s decision,
 *   nestjs-cls, OpenTelemetry). On Node 20 an AsyncLocalStorage runs a hook for every promise; from
 *   Node 24 it rides V8's continuation data and costs next to nothing;
 * - lifecycle: LifecycleModule.forRoot();
 * - health: HealthModule.forRoot() with the LifecycleModule it requires;
 * - metrics: MetricsModule.forRoot() with the LifecycleModule it requires (its instance metrics
 *   read the lifecycle);
 * - logging: LoggingModule.forRoot(), no access line (its default);
 * - logging+access: LoggingModule.forRoot({ autoLogging: true }), one access line per request;
 * - canary: CanaryModule.forRoot() with header rules, the route under @Canary(), requests without
 *   the header (every one stable, `no_match`);
 * - stack: lifecycle + health + metrics + logging (no access line) + canary on the route;
 * - stack+access: the same with the access line;
 * - peer: what users wire by hand: nestjs-pino's LoggerModule.forRoot() (pino-http, one access line
 *   per request, its default), a global interceptor recording a prom-client Histogram
 *   (method, route, status_code) with prom-client's default metrics and /metrics, and an
 *   @nestjs/terminus health endpoint (a heap check, no I/O), as each of their READMEs shows.
 *
 * Logs of every variant go to standard output, level info (the access line is an info line).
 */
export const VARIANTS = [
  'bare',
  'als',
  'lifecycle',
  'health',
  'metrics',
  'logging',
  'logging+access',
  'canary',
  'stack',
  'stack+access',
  'peer',
] as const;
export type Variant = (typeof VARIANTS)[number];

/** What each variant has of ours (the peer: none). */
export const MODULES_OF: Record<Variant, readonly ('lifecycle' | 'health' | 'metrics' | 'logging' | 'access' | 'canary')[]> = {
  bare: [],
  als: [],
  lifecycle: ['lifecycle'],
  health: ['lifecycle', 'health'],
  metrics: ['lifecycle', 'metrics'],
  logging: ['logging'],
  'logging+access': ['logging', 'access'],
  canary: ['canary'],
  stack: ['lifecycle', 'health', 'metrics', 'logging', 'canary'],
  'stack+access': ['lifecycle', 'health', 'metrics', 'logging', 'access', 'canary'],
  peer: [],
};

/** The routes a variant answers besides GET /orders/:id, checked by the parent before and after the load. */
export function probesOf(variant: Variant): { readiness?: string; metrics?: string } {
  const modules = MODULES_OF[variant];
  if (variant === 'peer') return { readiness: '/health', metrics: '/metrics' };
  return {
    readiness: modules.includes('health') ? '/health/ready' : undefined,
    metrics: modules.includes('metrics') ? '/metrics' : undefined,
  };
}

/** What a server reports over IPC once it is READY (times: ms since the epoch, sub-ms, comparable across processes). */
export interface ServerHello {
  readonly port: number;
  /** When the module loading began: this file's first line ran. */
  readonly startedAt: number;
  /** When `app.listen()` resolved. */
  readonly listeningAt: number;
  /** When the server saw itself READY (see `serve`). */
  readonly readyAt: number;
  /** RSS once READY, before any load: the footprint of the code and state the variant carries. */
  readonly rssAtReadyBytes: number;
  /** What READY means for this variant, for the report. */
  readonly readyMeans: string;
}

/** Milliseconds since the epoch with sub-millisecond precision: Node's time origin (wall clock at start) plus the monotonic clock since. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

const STARTED_AT = epochMs();

interface HttpRequestLike {
  method: string;
  route?: { path?: string };
  routeOptions?: { url?: string };
}

/**
 * The server: builds the variant's app, listens on a free loopback port, waits for READY and then
 * reports `ServerHello`; answers the parent's CPU and RSS queries; exits when the parent
 * disconnects. Packages are loaded here, per variant, so that a process holds only the code its
 * variant uses (its RSS and its time to READY count nothing else).
 *
 * READY: with HealthModule, `ReadinessService.ready$` turning true (the moment /health/ready
 * answers 200); with LifecycleModule alone, `LifecycleService.state$` reaching READY (after the
 * warm-up and `minReadyDelayMs`, 500 ms by default); otherwise `app.listen()` resolved, after which
 * the route answers.
 */
export async function serve(variant: Variant, adapterName: AdapterName): Promise<void> {
  const { Controller, Get, Module, Param } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const modules = MODULES_OF[variant];
  const has = (module: (typeof modules)[number]) => modules.includes(module);

  const imports: (DynamicModule | Type)[] = [];
  const providers: Provider[] = [];
  const controllers: Type[] = [];
  let routeDecorator: MethodDecorator = () => undefined;
  let useLogger: ((app: INestApplication) => LoggerService) | undefined;
  let waitReady: ((app: INestApplication) => Promise<void>) | undefined;
  let readyMeans = 'listening';

  if (variant === 'als') {
    const { AsyncLocalStorage } = await import('node:async_hooks');
    new AsyncLocalStorage<object>().enterWith({});
  }
  if (has('lifecycle')) {
    const { LifecycleModule, LifecycleService, LifecycleState } = await import('@nest-rollout/lifecycle');
    imports.push(LifecycleModule.forRoot());
    readyMeans = 'LifecycleService READY';
    waitReady = (app) => firstMatch(app.get(LifecycleService).state$, (state) => state === LifecycleState.READY);
  }
  if (has('health')) {
    const { HealthModule, ReadinessService } = await import('@nest-rollout/health');
    imports.push(HealthModule.forRoot());
    readyMeans = 'ReadinessService ready (/health/ready 200)';
    waitReady = (app) => firstMatch(app.get(ReadinessService).ready$, (ready) => ready);
  }
  if (has('metrics')) {
    const { MetricsModule } = await import('@nest-rollout/metrics');
    imports.push(MetricsModule.forRoot());
  }
  if (has('logging')) {
    const { Logger, LoggingModule } = await import('@nest-rollout/logging');
    imports.push(LoggingModule.forRoot({ level: 'info', autoLogging: has('access') }));
    useLogger = (app) => app.get(Logger);
  }
  if (has('canary')) {
    const { Canary, CanaryModule } = await import('@nest-rollout/canary');
    imports.push(CanaryModule.forRoot({ rules: { header: { 'x-env': 'canary' } } }));
    routeDecorator = Canary();
  }
  if (variant === 'peer') {
    const peer = await peerParts(adapterName);
    imports.push(...peer.imports);
    providers.push(...peer.providers);
    controllers.push(...peer.controllers);
    useLogger = peer.useLogger;
  }

  @Controller('orders')
  class OrdersController {
    @Get(':id')
    @routeDecorator
    get(@Param('id') id: string): { id: string; item: string; quantity: number } {
      return { id, item: 'book', quantity: 1 };
    }
  }

  @Module({ imports, providers, controllers: [OrdersController, ...controllers] })
  class BenchModule {}

  const adapter: AbstractHttpAdapter =
    adapterName === 'fastify'
      ? new (await import('@nestjs/platform-fastify')).FastifyAdapter()
      : new (await import('@nestjs/platform-express')).ExpressAdapter();
  // Nest's own lines go to the variant's logger, as its README says; the others keep Nest's, at
  // info like the rest (Nest's default would also print the debug lines, CanaryModule's
  // `canary.decision` among them, one per request).
  const app = await NestFactory.create(
    BenchModule,
    adapter,
    useLogger ? { bufferLogs: true } : { logger: ['fatal', 'error', 'warn', 'log'] satisfies LogLevel[] },
  );
  if (useLogger) app.useLogger(useLogger(app));
  await app.listen(0, '127.0.0.1');
  const listeningAt = epochMs();
  if (waitReady) await waitReady(app);
  const readyAt = epochMs();
  answerServerQueries();
  const hello: ServerHello = {
    port: (app.getHttpServer().address() as { port: number }).port,
    startedAt: STARTED_AT,
    listeningAt,
    readyAt,
    rssAtReadyBytes: process.memoryUsage().rss,
    readyMeans,
  };
  process.send?.(hello);
  // Not app.close(): LifecycleModule owns the shutdown (with a drain delay); the parent only needs the process gone.
  process.once('disconnect', () => process.exit(0));
}

function firstMatch<T>(values: Observable<T>, match: (value: T) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const subscription = values.subscribe({
      next: (value) => {
        if (!match(value)) return;
        resolve();
        queueMicrotask(() => subscription.unsubscribe());
      },
      error: reject,
    });
  });
}

/** The peer's modules, providers and controllers, wired as nestjs-pino's, prom-client's and @nestjs/terminus' READMEs show. */
async function peerParts(adapter: AdapterName): Promise<{
  imports: (DynamicModule | Type)[];
  providers: Provider[];
  controllers: Type[];
  useLogger: (app: INestApplication) => LoggerService;
}> {
  const { Controller, Get, Header, Inject, Injectable, RequestMethod } = await import('@nestjs/common');
  const { APP_INTERCEPTOR } = await import('@nestjs/core');
  const { Logger, LoggerModule } = await import('nestjs-pino');
  const { collectDefaultMetrics, Histogram, register } = await import('prom-client');
  const { HealthCheck, HealthCheckService, MemoryHealthIndicator, TerminusModule } = await import('@nestjs/terminus');
  const { tap } = await import('rxjs');

  collectDefaultMetrics();
  const histogram = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests in seconds.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  @Injectable()
  class MetricsInterceptor {
    intercept(context: ExecutionContext, next: { handle(): Observable<unknown> }): Observable<unknown> {
      const end = histogram.startTimer();
      const http = context.switchToHttp();
      const req = http.getRequest<HttpRequestLike>();
      const res = http.getResponse<{ statusCode: number; raw?: { statusCode: number } }>();
      const done = () =>
        end({ method: req.method, route: req.route?.path ?? req.routeOptions?.url ?? 'unknown', status_code: (res.raw ?? res).statusCode });
      return next.handle().pipe(tap({ complete: done, error: done }));
    }
  }

  @Controller('metrics')
  class MetricsController {
    @Get()
    @Header('Content-Type', register.contentType)
    metrics(): Promise<string> {
      return register.metrics();
    }
  }

  @Controller('health')
  class HealthController {
    constructor(
      @Inject(HealthCheckService) private readonly health: InstanceType<typeof HealthCheckService>,
      @Inject(MemoryHealthIndicator) private readonly memory: InstanceType<typeof MemoryHealthIndicator>,
    ) {}

    @Get()
    @HealthCheck()
    check(): Promise<unknown> {
      return this.health.check([() => this.memory.checkHeap('memory_heap', 150 * 1024 * 1024)]);
    }
  }

  return {
    // On Fastify, nestjs-pino's default route (`{/*splat}`) is registered but its middleware never
    // runs (no access line at all), so the route every request matches is given explicitly there.
    imports: [
      LoggerModule.forRoot({
        pinoHttp: { level: 'info' },
        ...(adapter === 'fastify' ? { forRoutes: [{ path: '*path', method: RequestMethod.ALL }] } : {}),
      }),
      TerminusModule,
    ],
    providers: [{ provide: APP_INTERCEPTOR, useClass: MetricsInterceptor }],
    controllers: [MetricsController, HealthController],
    useLogger: (app) => app.get(Logger),
  };
}
