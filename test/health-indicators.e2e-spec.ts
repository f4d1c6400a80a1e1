import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { INestApplication } from '@nestjs/common';
import { Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  customCheck,
  diskCheck,
  GrpcServingStatus,
  grpcCheck,
  HEALTH_GRPC_PACKAGE,
  HEALTH_GRPC_PROTO_PATH,
  HealthCheckDefinition,
  HealthCheckReport,
  HealthModule,
  httpCheck,
  memoryCheck,
  postgresCheck,
  ReadinessService,
  redisCheck,
  typeOrmCheck,
} from '@nest-rollout/health';
import { attachLifecycle, LifecycleModule, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { freePort } from './support/ports';
import { PostgresInstance, startPostgres } from './support/postgres';
import { delay } from './support/process';
import { RedisInstance, startRedis } from './support/redis';

/**
 * Every indicator against the real thing, in process: PostgreSQL (a `pg` pool and TypeORM), Redis
 * (ioredis), an HTTP upstream, a gRPC upstream that is this package's own grpc.health.v1 service in
 * a Nest microservice, memory and disk. Each check runs once through HealthModule, with the real
 * scheduler and clock.
 */
const PG_POOL = 'TEST:PG_POOL';

let pool: Pool | undefined;

/**
 * Runs `check` once in an application of its own (HealthModule, with the real scheduler, clock and
 * timeout) and closes it; the report says how it went. The application never listens, so the
 * lifecycle stays STARTING and the check runs exactly once (READY would run a failed check again).
 */
async function checkOnce(check: HealthCheckDefinition, timeoutMs = 1000): Promise<HealthCheckReport> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      LifecycleModule.forRoot({ exitOnShutdown: false }),
      HealthModule.forRoot({ readiness: [check], timeoutMs, intervalMs: 60_000 }),
    ],
    // The provider stands for the application's pool, created later in this file.
    providers: [{ provide: PG_POOL, useValue: { connect: () => pool!.connect() } }],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
    const readiness = app.get(ReadinessService);
    const deadline = Date.now() + timeoutMs + 5000;
    while (readiness.checks()[0].observed === 'pending' && Date.now() < deadline) await delay(5);
    return readiness.checks()[0];
  } finally {
    await app.close();
  }
}

describe('PostgreSQL indicators on a real server', () => {
  let postgres: PostgresInstance | undefined;
  let dataSource: DataSource | undefined;

  beforeAll(async () => {
    postgres = await startPostgres();
    pool = new Pool({ connectionString: postgres.url, max: 5, connectionTimeoutMillis: 2000 });
    // Idle connections see the server go away as an error event; the pool drops them.
    pool.on('error', () => undefined);
    dataSource = await new DataSource({ type: 'postgres', url: postgres.url, connectTimeoutMS: 2000 }).initialize();
  }, 60_000);

  afterAll(async () => {
    postgres?.resume();
    await Promise.allSettled([pool?.end(), dataSource?.destroy()]);
    await postgres?.destroy();
  }, 60_000);

  it('checks through the application’s pool, borrowing one of its connections instead of opening new ones', async () => {
    for (let i = 0; i < 10; i++)
      expect(await checkOnce(postgresCheck('database', { pool: pool! }))).toMatchObject({ status: 'up', dependency: 'postgres' });
    expect(pool!.totalCount).toBe(1);
    expect(pool!.idleCount).toBe(1);
  });

  it('finds the pool by its provider token', async () => {
    expect(await checkOnce(postgresCheck('database', { pool: PG_POOL }))).toMatchObject({ status: 'up' });
  });

  it('reports a hung server down at the timeout and gives no hung connection back to the pool', async () => {
    postgres!.pause();
    try {
      const report = await checkOnce(postgresCheck('database', { pool: pool! }), 300);
      expect(report).toMatchObject({ status: 'down', kind: 'timeout' });
      expect(report.durationMs).toBeLessThan(1500);
      // The borrowed connection, stuck behind a query that will never answer, was destroyed.
      expect(pool!.totalCount).toBe(0);
    } finally {
      postgres!.resume();
    }
    expect(await checkOnce(postgresCheck('database', { pool: pool! }))).toMatchObject({ status: 'up' });
  });

  it('reports a stopped server down with the kind of failure, and up again once it is back', async () => {
    await postgres!.stop();
    try {
      const report = await checkOnce(postgresCheck('database', { pool: pool! }));
      expect(report).toMatchObject({ status: 'down', kind: expect.stringMatching(/^(connection_refused|connection_reset)$/) });
      expect(report.message).not.toContain(postgres!.password);
    } finally {
      await postgres!.start();
    }
    expect(await checkOnce(postgresCheck('database', { pool: pool! }))).toMatchObject({ status: 'up' });
  }, 30_000);

  it('checks a TypeORM DataSource through terminus’ TypeOrmHealthIndicator', async () => {
    // The DataSource's pool may hold connections the restart above closed; its next query replaces them.
    await dataSource!.query('SELECT 1').catch(() => undefined);
    expect(await checkOnce(typeOrmCheck('database', { dataSource: dataSource!, dependency: 'postgres' }))).toMatchObject({
      status: 'up',
      dependency: 'postgres',
    });
    postgres!.pause();
    try {
      expect(await checkOnce(typeOrmCheck('database', { dataSource: dataSource! }), 300)).toMatchObject({
        status: 'down',
        kind: 'timeout',
        dependency: 'database',
      });
    } finally {
      postgres!.resume();
    }
  });
});

describe('the Redis indicator on a real server', () => {
  let redis: RedisInstance | undefined;
  let client: Redis | undefined;

  const waitForClient = async (status: string) => {
    const deadline = Date.now() + 10_000;
    while (client!.status !== status && Date.now() < deadline) await delay(20);
    expect(client!.status).toBe(status);
  };

  beforeAll(async () => {
    redis = await startRedis();
    client = new Redis(redis.url, { enableOfflineQueue: false, retryStrategy: () => 50, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    await waitForClient('ready');
  }, 30_000);

  afterAll(async () => {
    redis?.resume();
    client?.disconnect();
    await redis?.destroy();
  }, 30_000);

  it('PINGs on the application’s client and opens no connection of its own', async () => {
    const clientsBefore = await redis!.command(['INFO', 'clients']);
    for (let i = 0; i < 10; i++)
      expect(await checkOnce(redisCheck('cache', { client: client! }))).toMatchObject({ status: 'up', dependency: 'redis' });
    const connected = (info: string) => info.match(/connected_clients:(\d+)/)![1];
    expect(connected(await redis!.command(['INFO', 'clients']))).toBe(connected(clientsBefore));
  });

  it('reports a hung server down at the timeout', async () => {
    redis!.pause();
    try {
      expect(await checkOnce(redisCheck('cache', { client: client! }), 300)).toMatchObject({ status: 'down', kind: 'timeout' });
    } finally {
      redis!.resume();
    }
  });

  it('reports a disconnected client at once, without queueing a PING, and up again after it reconnects', async () => {
    await redis!.stop();
    await waitForClient('reconnecting');
    const report = await checkOnce(redisCheck('cache', { client: client! }));
    expect(report).toMatchObject({ status: 'down', kind: 'not_connected' });
    // The run itself, not the application around it: a queued PING would wait for the 1 s timeout.
    expect(report.durationMs).toBeLessThan(200);
    await redis!.start();
    await waitForClient('ready');
    expect(await checkOnce(redisCheck('cache', { client: client! }))).toMatchObject({ status: 'up' });
  }, 30_000);
});

describe('the HTTP indicator on a real upstream', () => {
  let upstream: Server;
  let port: number;
  let answer = 200;
  let lastAuthorization: string | undefined;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      lastAuthorization = req.headers.authorization;
      res.writeHead(answer).end('{}');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    port = (upstream.address() as AddressInfo).port;
  });

  afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

  it('is up on a 2xx answer and reports the status code', async () => {
    answer = 204;
    expect(await checkOnce(httpCheck('search', `http://127.0.0.1:${port}/health`))).toMatchObject({
      status: 'up',
      dependency: 'http',
      details: { statusCode: 204 },
    });
  });

  it('is down on a 5xx answer, naming the upstream without its credentials or query, which travel as basic auth', async () => {
    answer = 503;
    const report = await checkOnce(httpCheck('search', `http://svc:s3cret-pw@127.0.0.1:${port}/health?token=abc123`));
    expect(report).toMatchObject({ status: 'down', kind: 'unhealthy', message: `http://127.0.0.1:${port}/health answered HTTP 503` });
    expect(lastAuthorization).toBe(`Basic ${Buffer.from('svc:s3cret-pw').toString('base64')}`);
  });

  it('is down with connection_refused when nothing listens', async () => {
    const closedPort = await freePort();
    expect(await checkOnce(httpCheck('search', `http://127.0.0.1:${closedPort}/health`))).toMatchObject({
      status: 'down',
      kind: 'connection_refused',
    });
  });
});

describe('grpc.health.v1: this package’s service in a Nest microservice, checked by the gRPC indicator', () => {
  let app: INestApplication | undefined;
  let url: string;
  const dependency = { up: true };
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  const waitForReadiness = async (ready: boolean) => {
    const readiness = app!.get(ReadinessService);
    const deadline = Date.now() + 5000;
    while (readiness.isReady() !== ready && Date.now() < deadline) await delay(10);
    expect(readiness.isReady()).toBe(ready);
  };

  const check = (service: string) =>
    new Promise<{ status: string }>((resolve, reject) =>
      client.Check({ service }, (error: grpc.ServiceError | null, response: { status: string }) =>
        error ? reject(error) : resolve(response),
      ),
    );

  beforeAll(async () => {
    const port = await freePort();
    url = `127.0.0.1:${port}`;
    const moduleRef = await Test.createTestingModule({
      imports: [
        LifecycleModule.forRoot({ minReadyDelayMs: 0, drainDelayMs: 0, exitOnShutdown: false }),
        HealthModule.forRoot({
          grpc: true,
          grpcServices: ['orders.v1.Orders'],
          intervalMs: 50,
          timeoutMs: 100,
          readiness: [
            customCheck('dependency', () => {
              if (!dependency.up) throw new Error('down');
            }),
          ],
        }),
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.connectMicroservice({
      transport: Transport.GRPC,
      options: { package: HEALTH_GRPC_PACKAGE, protoPath: HEALTH_GRPC_PROTO_PATH, url },
    });
    await app.startAllMicroservices();
    attachLifecycle(app);
    await app.listen(0, '127.0.0.1');
    const lifecycle = app.get(LifecycleService);
    const deadline = Date.now() + 5000;
    while (lifecycle.state !== LifecycleState.READY && Date.now() < deadline) await delay(10);
    const definition = protoLoader.loadSync(HEALTH_GRPC_PROTO_PATH, { keepCase: true, enums: String, defaults: true });
    const Health = (
      grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } }
    ).grpc.health.v1.Health;
    client = new Health(url, grpc.credentials.createInsecure()) as unknown as typeof client;
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await app?.close();
  }, 30_000);

  it('answers Check from the readiness state, for "" and the declared services', async () => {
    dependency.up = true;
    await waitForReadiness(true);
    expect(await check('')).toEqual({ status: 'SERVING' });
    expect(await check('orders.v1.Orders')).toEqual({ status: 'SERVING' });
    expect(await checkOnce(grpcCheck('upstream', { url }))).toMatchObject({
      status: 'up',
      dependency: 'grpc',
      details: { servingStatus: 'SERVING' },
    });
  });

  it('turns NOT_SERVING when a critical check fails, while liveness stays SERVING, and the gRPC indicator reports it down', async () => {
    dependency.up = false;
    await waitForReadiness(false);
    try {
      expect(await check('readiness')).toEqual({ status: 'NOT_SERVING' });
      expect(await check('liveness')).toEqual({ status: 'SERVING' });
      expect(await check('startup')).toEqual({ status: 'SERVING' });
      expect(await checkOnce(grpcCheck('upstream', { url }))).toMatchObject({ status: 'down', kind: 'unhealthy' });
    } finally {
      dependency.up = true;
    }
  });

  it('answers NOT_FOUND for a service it does not know', async () => {
    await expect(check('no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('streams every change on Watch, starting with the current status', async () => {
    dependency.up = true;
    await waitForReadiness(true);
    const statuses: string[] = [];
    const call = client.Watch({ service: '' }) as grpc.ClientReadableStream<{ status: string }>;
    call.on('data', (message) => statuses.push(message.status));
    call.on('error', () => undefined);
    try {
      const until = async (n: number) => {
        const deadline = Date.now() + 5000;
        while (statuses.length < n && Date.now() < deadline) await delay(10);
      };
      await until(1);
      dependency.up = false;
      await until(2);
      dependency.up = true;
      await until(3);
      expect(statuses).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']);
      expect(GrpcServingStatus.SERVING).toBe(1);
    } finally {
      call.cancel();
    }
  });
});

describe('memory and disk indicators through terminus', () => {
  it('is up under generous thresholds', async () => {
    expect(await checkOnce(memoryCheck('memory', { maxHeapBytes: 8 * 1024 ** 3, maxRssBytes: 16 * 1024 ** 3 }))).toMatchObject({
      status: 'up',
      dependency: 'memory',
    });
    expect(await checkOnce(diskCheck('disk', { path: tmpdir(), thresholdPercent: 1 }))).toMatchObject({ status: 'up', dependency: 'disk' });
  });

  it('is down, as unhealthy, past a threshold', async () => {
    expect(await checkOnce(memoryCheck('memory', { maxHeapBytes: 1 }))).toMatchObject({ status: 'down', kind: 'unhealthy' });
    expect(await checkOnce(diskCheck('disk', { path: tmpdir(), thresholdBytes: 1 }))).toMatchObject({ status: 'down', kind: 'unhealthy' });
  });
});
