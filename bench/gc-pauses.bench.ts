import 'reflect-metadata';
import { Agent, createServer, request } from 'node:http';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Controller, Get, Module, Param, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { delay } from '../test/support/process';
import { forkServer, intEnv, stopForked, takeGcPauses, watchGcPauses, type GcPauses } from './support';

/**
 * Garbage-collection pauses of an HTTP server at a steady, moderate load, and the p99 they make:
 * what a request waits for when it arrives during one. No module of this project is loaded: the
 * figures belong to Node and the framework, and are the floor under every latency figure of the
 * other benches (a request forwarded by `@nest-rollout/canary` crosses two such servers).
 *
 * Servers, each in a child process of its own:
 * - node: `http.createServer` answering a small JSON object, nothing else;
 * - express, fastify: bare Nest 12 with `GET /orders/:id` returning the same object.
 *
 * Per server: BENCH_WARMUP_MS (3000) at the rate, then BENCH_DURATION_MS (8000) at BENCH_RATE
 * (250) requests/s, sent on schedule whether or not earlier ones were answered (open loop, from up
 * to 64 keep-alive connections), each timed from the moment it is sent to the end of its answer.
 * The server counts its pauses with a `PerformanceObserver` (entry type `gc`). BENCH_ROUNDS (3)
 * rounds, server order rotated; figures are medians over rounds.
 *
 *   npm run bench:gc-pauses
 *   BENCH_NODE=$(npx -y -p node@24 which node) npm run bench:gc-pauses    # the servers on Node 24
 *
 * Loopback only, bounded: rate × duration requests per server and round.
 */

const SERVERS = ['node', 'express', 'fastify'] as const;
type ServerName = (typeof SERVERS)[number];

const ORDER = { item: 'book', quantity: 1 };

async function serve(name: ServerName): Promise<void> {
  const gc = watchGcPauses();
  let port: number;
  if (name === 'node') {
    const server = createServer((req, res) => {
      const body = JSON.stringify({ id: '42', ...ORDER });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  } else {
    @Controller('orders')
    class OrdersController {
      @Get(':id')
      get(@Param('id') id: string) {
        return { id, ...ORDER };
      }
    }
    @Module({ controllers: [OrdersController] })
    class BareModule {}
    const app: INestApplication = await NestFactory.create(BareModule, name === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
      logger: false,
    });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as { port: number }).port;
  }
  process.on('message', () => process.send?.(gc.take()));
  process.send?.({ port });
  process.once('disconnect', () => process.exit(0));
}

interface Round {
  readonly p50: number;
  readonly p99: number;
  readonly gc: GcPauses;
}

/** Open loop at `rate` requests/s for `durationMs`; the latencies in ms. */
async function drive(port: number, rate: number, durationMs: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const sentAt = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/orders/42', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          latencies.push(performance.now() - sentAt);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  let next = started;
  try {
    while (next < started + durationMs) {
      while (next <= performance.now() && next < started + durationMs) {
        inFlight.push(one());
        next += 1000 / rate;
      }
      await delay(1);
    }
    await Promise.all(inFlight);
  } finally {
    agent.destroy();
  }
  return latencies;
}

async function main(): Promise<void> {
  const rate = intEnv('BENCH_RATE', 250);
  const warmupMs = intEnv('BENCH_WARMUP_MS', 3000);
  const durationMs = intEnv('BENCH_DURATION_MS', 8000);
  const rounds = intEnv('BENCH_ROUNDS', 3);
  const nodePath = process.env.BENCH_NODE || undefined;
  console.log(
    `gc pauses bench: GET /orders/42 at ${rate} req/s for ${durationMs} ms after ${warmupMs} ms, ${rounds} rounds, ` +
      `servers on ${nodePath ?? process.execPath}\nload average at start: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
  );
  const results = new Map<ServerName, Round[]>();
  for (let round = 0; round < rounds; round++) {
    for (const name of SERVERS.map((_, i) => SERVERS[(i + round) % SERVERS.length])) {
      const { child, port } = await forkServer(__filename, name, name, [], { nodePath });
      try {
        await drive(port, rate, warmupMs);
        await takeGcPauses([child]);
        const latencies = (await drive(port, rate, durationMs)).sort((a, b) => a - b);
        const figures: Round = { p50: rank(latencies, 50), p99: rank(latencies, 99), gc: await takeGcPauses([child]) };
        results.set(name, [...(results.get(name) ?? []), figures]);
        console.log(
          `  round ${round + 1} ${name}: p50 ${figures.p50.toFixed(2)} p99 ${figures.p99.toFixed(2)} ms, ${figures.gc.count} GC pauses, ` +
            `${figures.gc.totalMs.toFixed(1)} ms in all, longest ${figures.gc.longestMs.toFixed(1)} ms`,
        );
      } finally {
        await stopForked(child);
      }
    }
  }
  console.log(
    `load average at end: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log(`\nserver   p50 ms  p99 ms  GC pauses in ${durationMs / 1000} s  average ms  longest ms   (medians over ${rounds} rounds)`);
  for (const name of SERVERS) {
    const runs = results.get(name)!;
    const m = (f: (r: Round) => number) => median(runs.map(f));
    console.log(
      `${name.padEnd(8)} ${m((r) => r.p50)
        .toFixed(2)
        .padStart(6)}  ${m((r) => r.p99)
        .toFixed(2)
        .padStart(6)}  ` +
        `${String(m((r) => r.gc.count)).padStart(16)}  ${m((r) => (r.gc.count ? r.gc.totalMs / r.gc.count : 0))
          .toFixed(1)
          .padStart(10)}  ` +
        `${m((r) => r.gc.longestMs)
          .toFixed(1)
          .padStart(10)}`,
    );
  }
}

/** Nearest-rank percentile of sorted values. */
function rank(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3] as ServerName);
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
