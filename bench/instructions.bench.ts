import { fork, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VARIANTS, type AdapterName, type Variant } from './overhead/apps';
import { intEnv, stopForked } from './support';

/**
 * Machine instructions per request of the whole-stack variants (bench/overhead/apps.ts), counted
 * by valgrind's callgrind: the one figure of cost that does not move with the load on the machine
 * or its speed from second to second, so that a change of a few hundred instructions shows, where
 * requests/s on a shared 2-core machine move by ±30 % between runs. Instructions are not time (a
 * cache miss costs more than an addition), so this complements `bench:overhead`, not replaces it.
 *
 * Per adapter and variant: the overhead bench's server for that variant runs under
 * `valgrind --tool=callgrind` (`node --single-threaded`, so that V8's compiler and collector work
 * on the thread that is counted); BENCH_WARMUP (2000) keep-alive requests `GET /orders/42` from 8
 * connections let the JIT settle; the counters are zeroed (`callgrind_control -z`); BENCH_REQUESTS
 * (2000) more are sent; the counters are dumped and divided by BENCH_REQUESTS. Under valgrind the
 * server runs about 50 times slower, so work driven by timers rather than by requests (a metrics
 * collector's interval, a log flush timer) counts 50 times more per request than it costs in real
 * time. Garbage collection is counted where it happens: on Express, whose requests allocate
 * several times more, collections falling in or out of the window move a figure by up to ±6 %;
 * on Fastify repeated counts agree within 0.3 % for most variants. BENCH_PARALLEL (2) servers
 * are counted at once, each alone; what runs beside them only slows them, which adds to the
 * timer-driven share above.
 *
 *   npm run bench:instructions
 *   BENCH_ADAPTERS=express BENCH_VARIANTS=bare,stack npm run bench:instructions
 *
 * Needs valgrind (Debian's `valgrind` package). Loopback only; BENCH_WARMUP + BENCH_REQUESTS
 * requests per server.
 */

interface Counted {
  readonly adapter: AdapterName;
  readonly variant: Variant;
  readonly perRequest: number;
}

const OVERHEAD_SCRIPT = join(__dirname, 'overhead.bench.js');

async function count(adapter: AdapterName, variant: Variant, warmup: number, requests: number): Promise<Counted> {
  const dir = mkdtempSync(join(tmpdir(), 'nest-rollout-callgrind-'));
  const out = join(dir, 'callgrind.out');
  const child: ChildProcess = fork(OVERHEAD_SCRIPT, ['--serve', variant, adapter], {
    execPath: 'valgrind',
    execArgv: [
      '--tool=callgrind',
      `--callgrind-out-file=${out}`,
      '--dump-instr=no',
      '--collect-jumps=no',
      '--collect-atstart=yes',
      process.execPath,
      '--single-threaded',
    ],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (hello) => resolve((hello as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`${adapter}/${variant} under callgrind exited with ${code}\n${stderr}`)));
    });
    await send(port, warmup);
    execFileSync('callgrind_control', ['-z', String(child.pid)], { stdio: 'ignore' });
    await send(port, requests);
    execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
    const dump = readdirSync(dir).find((name) => name !== 'callgrind.out' && name.startsWith('callgrind.out'));
    if (dump === undefined) throw new Error(`${adapter}/${variant}: callgrind wrote no dump\n${stderr}`);
    const totals = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(join(dir, dump), 'utf8'));
    if (!totals) throw new Error(`${adapter}/${variant}: no totals in the callgrind dump`);
    return { adapter, variant, perRequest: Number(totals[1]) / requests };
  } finally {
    await stopForked(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `n` keep-alive requests from 8 connections; any answer but 200 fails the count. */
async function send(port: number, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let sent = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/orders/42', agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET /orders/42 answered ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  try {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (sent < n) {
          sent++;
          await one();
        }
      }),
    );
  } finally {
    agent.destroy();
  }
}

function pick<T extends string>(name: string, all: readonly T[], fallback: readonly T[]): T[] {
  const raw = process.env[name];
  if (!raw) return [...fallback];
  const picked = raw.split(',').map((value) => value.trim());
  const unknown = picked.filter((value) => !all.includes(value as T));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')} (known: ${all.join(', ')})`);
  return picked as T[];
}

async function main(): Promise<void> {
  const adapters = pick<AdapterName>('BENCH_ADAPTERS', ['express', 'fastify'], ['fastify']);
  const variants = pick<Variant>('BENCH_VARIANTS', VARIANTS, VARIANTS);
  if (!variants.includes('bare')) variants.unshift('bare');
  const warmup = intEnv('BENCH_WARMUP', 2000);
  const requests = intEnv('BENCH_REQUESTS', 2000);
  const parallel = intEnv('BENCH_PARALLEL', 2);
  console.log(
    `instructions bench: GET /orders/42, ${warmup} requests to warm up, then ${requests} counted by callgrind, ` +
      `${adapters.join(' and ')}: ${variants.join(', ')}; node ${process.version}`,
  );
  const jobs = adapters.flatMap((adapter) => variants.map((variant) => ({ adapter, variant })));
  const results: Counted[] = [];
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: Math.min(parallel, jobs.length) }, async () => {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        const counted = await count(job.adapter, job.variant, warmup, requests);
        console.log(`  ${job.adapter}/${job.variant}: ${Math.round(counted.perRequest)} instructions a request`);
        results.push(counted);
      }
    }),
  );
  console.log('\nadapter  variant          instructions/req  added over bare  vs bare');
  for (const adapter of adapters) {
    const bare = results.find((r) => r.adapter === adapter && r.variant === 'bare')!.perRequest;
    for (const variant of variants) {
      const { perRequest } = results.find((r) => r.adapter === adapter && r.variant === variant)!;
      const added = perRequest - bare;
      console.log(
        `${adapter.padEnd(8)} ${variant.padEnd(16)} ${String(Math.round(perRequest)).padStart(16)}  ` +
          `${((added >= 0 ? '+' : '') + Math.round(added)).padStart(15)}  ${(perRequest / bare).toFixed(2).padStart(6)}x`,
      );
    }
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
