import 'reflect-metadata';
import type { ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { Controller, Get, Logger as NestLogger, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import { Logger, LoggingModule } from '@nest-rollout/logging';
import { forkServer, intEnv, serverCpuMicros } from './support';

/**
 * Per-request cost of @nest-rollout/logging: requests/s of one GET route on a bare Nest app and on
 * the same app with LoggingModule (trace context only; plus one handler line per request; plus
 * autoLogging), on Express and Fastify, each server in a child process of its own, in one run.
 * Lines go to /dev/null through the same buffered SonicBoom the module uses for standard output.
 *
 *   npm run build && npx tsc -p test/tsconfig.fixtures.json && node dist/bench/logging.bench.js
 *
 * Env: BENCH_DURATION_MS (default 3000 per measurement), BENCH_CONNECTIONS (32), BENCH_ROUNDS (2).
 * Only loopback is used; every server is stopped when its measurement ends.
 */
const ADAPTERS = ['express', 'fastify'] as const;
const VARIANTS = ['bare', 'logging', 'logging + 1 line/request', 'logging + autoLogging'] as const;
type AdapterName = (typeof ADAPTERS)[number];
type Variant = (typeof VARIANTS)[number];

async function serve(variant: Variant, adapter: AdapterName): Promise<void> {
  const logLine = variant === 'logging + 1 line/request';

  @Controller()
  class HelloController {
    private readonly logger = new NestLogger('Bench');

    @Get('hello')
    hello(): { hello: string } {
      if (logLine) this.logger.log({ event: 'bench.hello', user: 42 });
      return { hello: 'world' };
    }
  }

  const imports: DynamicModule[] =
    variant === 'bare'
      ? []
      : [
          LoggingModule.forRoot({
            destination: pino.destination({ dest: '/dev/null', sync: true, minLength: 4096 }),
            autoLogging: variant === 'logging + autoLogging',
          }),
        ];

  @Module({ imports, controllers: [HelloController] })
  class BenchModule {}

  const app = await NestFactory.create(BenchModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    bufferLogs: variant !== 'bare',
    logger: variant === 'bare' ? false : undefined,
  });
  if (variant !== 'bare') app.useLogger(app.get(Logger));
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  process.send?.({ port: address.port });
  // CPU time is the figure that survives a busy machine: other processes steal wall-clock time
  // (and so requests/s), not the server's own CPU per request.
  process.on('message', () => process.send?.({ cpuMicros: totalCpuMicros() }));
  process.once('disconnect', () => void app.close().then(() => process.exit(0)));
}

function totalCpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** `connections` keep-alive workers, one request after the other, for `durationMs`; completed requests per second. */
async function measure(port: number, durationMs: number, connections: number): Promise<{ rps: number; completed: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const endAt = Date.now() + durationMs;
  let completed = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/hello', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) completed++;
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < endAt) await one();
    }),
  );
  const elapsedMs = Date.now() - started;
  agent.destroy();
  return { rps: (completed * 1000) / elapsedMs, completed };
}

function startServer(variant: Variant, adapter: AdapterName): Promise<{ child: ChildProcess; port: number }> {
  return forkServer(__filename, variant, adapter);
}

async function main(): Promise<void> {
  const durationMs = intEnv('BENCH_DURATION_MS', 3000);
  const connections = intEnv('BENCH_CONNECTIONS', 32);
  const rounds = intEnv('BENCH_ROUNDS', 2);
  console.log(
    `logging bench: GET /hello, ${connections} keep-alive connections, ${durationMs} ms per measurement, best of ${rounds} rounds (highest req/s, lowest server CPU per request)`,
  );

  const best = new Map<string, { rps: number; cpuMicrosPerRequest: number }>();
  for (let round = 0; round < rounds; round++) {
    for (const adapter of ADAPTERS) {
      for (const variant of VARIANTS) {
        const { child, port } = await startServer(variant, adapter);
        try {
          await measure(port, Math.min(1000, durationMs), connections); // warm-up: JIT, connection pool
          const cpuBefore = await serverCpuMicros(child);
          const { rps, completed } = await measure(port, durationMs, connections);
          const cpuMicrosPerRequest = ((await serverCpuMicros(child)) - cpuBefore) / completed;
          const key = `${adapter}|${variant}`;
          const previous = best.get(key);
          best.set(key, {
            rps: Math.max(previous?.rps ?? 0, rps),
            cpuMicrosPerRequest: Math.min(previous?.cpuMicrosPerRequest ?? Infinity, cpuMicrosPerRequest),
          });
        } finally {
          child.disconnect();
          await new Promise((resolve) => child.once('exit', resolve));
        }
      }
    }
  }

  console.log('\nadapter  variant                      req/s  vs bare   server CPU µs/req  vs bare');
  for (const adapter of ADAPTERS) {
    const bare = best.get(`${adapter}|bare`)!;
    for (const variant of VARIANTS) {
      const { rps, cpuMicrosPerRequest: cpu } = best.get(`${adapter}|${variant}`)!;
      console.log(
        `${adapter.padEnd(8)} ${variant.padEnd(28)} ${Math.round(rps).toString().padStart(6)}  ${(rps / bare.rps).toFixed(3)}   ` +
          `${cpu.toFixed(1).padStart(17)}  ${(cpu / bare.cpuMicrosPerRequest).toFixed(3)}`,
      );
    }
  }
}

const [mode, variantArg, adapterArg] = process.argv.slice(2);
const run = mode === '--serve' ? serve(variantArg as Variant, adapterArg as AdapterName) : main();
run.catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
