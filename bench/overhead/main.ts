import { spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { forkServer, intEnv, serverCpuMicros, serverRssBytes, stopForked } from '../support';
import { assertNoWrkErrors, assertWrkInstalled, pinning, runWrk, WRK, type WrkResult } from '../wrk';
import { ADAPTERS, epochMs, probesOf, serve, VARIANTS, type AdapterName, type ServerHello, type Variant } from './apps';

/** One (adapter, variant) measurement of one round. */
interface Measurement {
  readonly rps: number;
  readonly cpuMicrosPerRequest: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly rssMB: number;
  /** RSS once READY, before the load (the process's, so the same in every round). */
  readonly rssAtReadyMB: number;
  /** Fork to READY, fork to listening, fork to the first line of the bench's code. */
  readonly readyMs: number;
  readonly listeningMs: number;
  readonly startedMs: number;
  readonly readyMeans: string;
}

/** Goals on requests/s, as ratios to `bare` of the same adapter in the same round. */
const RPS_GOALS: readonly { variant: Variant; adapter: AdapterName; atLeast: number }[] = [
  { variant: 'stack+access', adapter: 'express', atLeast: 0.85 },
  { variant: 'stack+access', adapter: 'fastify', atLeast: 0.7 },
  { variant: 'stack', adapter: 'express', atLeast: 0.9 },
  { variant: 'stack', adapter: 'fastify', atLeast: 0.9 },
];
const RSS_GOAL_MB = 20;
const WARMUP_MS = 1000;

interface Settings {
  readonly rounds: number;
  readonly durationMs: number;
  readonly connections: number;
  readonly adapters: readonly AdapterName[];
  readonly variants: readonly Variant[];
  /** taskset CPU lists, when pinned. */
  readonly serverCpus?: string;
  readonly wrkCpus?: string;
  /** The Node binary the servers run on (BENCH_NODE), and its version. */
  readonly nodePath: string;
  readonly nodeVersion: string;
}

function settings(): Settings {
  const pick = <T extends string>(name: string, all: readonly T[]): T[] => {
    const raw = process.env[name];
    if (!raw) return [...all];
    const chosen = raw.split(',').map((s) => s.trim()) as T[];
    const unknown = chosen.filter((c) => !all.includes(c));
    if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')} (one of ${all.join(', ')})`);
    return all.filter((a) => chosen.includes(a));
  };
  const variants = pick<Variant>('BENCH_VARIANTS', VARIANTS);
  // Every ratio is to `bare` of the same round: it always runs.
  if (!variants.includes('bare')) variants.unshift('bare');
  const nodePath = process.env.BENCH_NODE || process.execPath;
  return {
    rounds: intEnv('BENCH_ROUNDS', 15),
    durationMs: intEnv('BENCH_DURATION_MS', 1000),
    connections: intEnv('BENCH_CONNECTIONS', 64),
    adapters: pick<AdapterName>('BENCH_ADAPTERS', ADAPTERS),
    variants,
    ...pinning(),
    nodePath,
    nodeVersion: spawnSync(nodePath, ['--version'], { encoding: 'utf8' }).stdout.trim() || 'unknown',
  };
}

/** One variant's server, alive for all the rounds of its adapter. */
interface Server {
  readonly variant: Variant;
  readonly child: ChildProcess;
  readonly port: number;
  readonly what: string;
  readonly readyMs: number;
  readonly listeningMs: number;
  readonly startedMs: number;
  readonly readyMeans: string;
  readonly rssAtReadyMB: number;
}

/** Forks the variant's server, waits for READY, checks its routes and warms it up (JIT, connections). */
async function startServer(adapter: AdapterName, variant: Variant, s: Settings): Promise<Server> {
  const forkedAt = epochMs();
  const { child, port, hello } = await forkServer(__filename, variant, adapter, [], { cpus: s.serverCpus, nodePath: s.nodePath });
  const { listeningAt, readyAt, startedAt, readyMeans, rssAtReadyBytes } = hello as unknown as ServerHello;
  const server: Server = {
    variant,
    child,
    port,
    what: `${adapter}/${variant}`,
    readyMs: readyAt - forkedAt,
    listeningMs: listeningAt - forkedAt,
    startedMs: startedAt - forkedAt,
    readyMeans,
    rssAtReadyMB: rssAtReadyBytes / 1024 / 1024,
  };
  const probes = probesOf(variant);
  await expectOk(port, '/orders/42', server.what, (body) => body.includes('"item":"book"'));
  if (probes.readiness) await expectOk(port, probes.readiness, server.what);
  assertNoWrkErrors(await loadServer(server, s, WARMUP_MS), `${server.what} warm-up`);
  return server;
}

function loadServer(server: Server, s: Settings, durationMs: number): Promise<WrkResult> {
  return runWrk({ url: `http://127.0.0.1:${server.port}/orders/42`, connections: s.connections, durationMs, threads: 1, cpus: s.wrkCpus });
}

/** One measured wrk run against a live server. */
async function measure(server: Server, s: Settings): Promise<Measurement> {
  const cpuBefore = await serverCpuMicros(server.child);
  const result = await loadServer(server, s, s.durationMs);
  const cpuMicros = (await serverCpuMicros(server.child)) - cpuBefore;
  assertNoWrkErrors(result, server.what);
  const rssBytes = await serverRssBytes(server.child);
  return {
    rps: result.rps,
    cpuMicrosPerRequest: cpuMicros / result.requests,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    rssMB: rssBytes / 1024 / 1024,
    readyMs: server.readyMs,
    listeningMs: server.listeningMs,
    startedMs: server.startedMs,
    readyMeans: server.readyMeans,
    rssAtReadyMB: server.rssAtReadyMB,
  };
}

/** After the rounds: the requests were recorded where the variant says they are; then the server stops. */
async function stopServer(server: Server): Promise<void> {
  try {
    const { metrics } = probesOf(server.variant);
    if (metrics) {
      await expectOk(server.port, metrics, server.what, (body) =>
        /^http_request_duration_seconds_count\{[^}]*route="\/orders\/:id"/m.test(body),
      );
    }
  } finally {
    await stopForked(server.child);
  }
}

/** GET `path` must answer 200 (and `check` its body), else the measurement fails. */
async function expectOk(port: number, path: string, what: string, check: (body: string) => boolean = () => true): Promise<void> {
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end();
  });
  if (status !== 200 || !check(body)) throw new Error(`${what}: GET ${path} answered ${status}: ${body.slice(0, 300)}`);
}

function machine(s: Settings): string {
  const list = cpus();
  const wrkVersion = spawnSync(WRK, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0].trim();
  return `${list.length} × ${list[0]?.model.trim() ?? 'unknown CPU'}, servers on node ${s.nodeVersion}, ${wrkVersion || 'wrk'}`;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  assertWrkInstalled();
  const s = settings();
  console.log(`overhead bench on ${machine(s)}; load average ${load()}`);
  if (loadavg()[0] >= cpus().length / 2) {
    console.log(
      `warning: the machine is busy (load average ${loadavg()[0].toFixed(2)} on ${cpus().length} CPUs): another process on the ` +
        "server's CPU takes its time, requests/s most of all; re-run on a quiet machine for figures to keep",
    );
  }
  console.log(
    `GET /orders/:id, wrk -t1 -c${s.connections}; per adapter, one server per variant, all started (one after the other) and warmed ` +
      `up for ${WARMUP_MS} ms, then ${s.rounds} rounds of one ${Math.max(1, Math.round(s.durationMs / 1000))} s run per server, variant order ` +
      'rotated each round; every ratio is the median over rounds of the ratio to `bare` of the same adapter in the same round',
  );
  console.log(
    s.serverCpus === undefined
      ? 'not pinned (needs taskset and at least 2 CPUs): server and wrk share the CPUs'
      : `pinned: server on CPU ${s.serverCpus}, wrk on CPU ${s.wrkCpus} (taskset -c)`,
  );

  const results = new Map<string, Measurement[]>();
  const key = (adapter: AdapterName, variant: Variant) => `${adapter}|${variant}`;
  for (const adapter of s.adapters) {
    const servers: Server[] = [];
    try {
      // Started one after the other, so that each boot (time to READY) has the CPU to itself.
      for (const variant of s.variants) servers.push(await startServer(adapter, variant, s));
      for (let round = 0; round < s.rounds; round++) {
        const order = servers.map((_, i) => servers[(i + round) % servers.length]);
        for (const server of order) {
          const m = await measure(server, s);
          results.set(key(adapter, server.variant), [...(results.get(key(adapter, server.variant)) ?? []), m]);
          if (process.env.BENCH_VERBOSE) {
            console.log(
              `  round ${round + 1} ${server.what.padEnd(21)} ${fmt(m.rps, 0).padStart(6)} req/s  ${fmt(m.cpuMicrosPerRequest, 1).padStart(6)} µs CPU/req  ` +
                `p50 ${fmt(m.p50Ms, 2)} ms  p99 ${fmt(m.p99Ms, 2)} ms  RSS ${fmt(m.rssMB, 1)} MB`,
            );
          }
        }
        const bare = results.get(key(adapter, 'bare'))![round];
        const ratios = s.variants
          .filter((v) => v !== 'bare')
          .map((v) => `${v} ${fmt(results.get(key(adapter, v))![round].rps / bare.rps, 2)}`)
          .join(', ');
        console.log(`  round ${String(round + 1).padStart(2)} ${adapter} req/s vs bare: ${ratios}`);
      }
    } finally {
      for (const server of servers) await stopServer(server);
    }
  }

  const column = (adapter: AdapterName, variant: Variant) => results.get(key(adapter, variant));
  /** Per round: f(variant's measurement, bare's measurement); their median, min and max. */
  const paired = (adapter: AdapterName, variant: Variant, f: (m: Measurement, bare: Measurement) => number, against: Variant = 'bare') => {
    const runs = column(adapter, variant);
    const base = column(adapter, against);
    if (!runs || !base) return undefined;
    const values = runs.map((m, i) => f(m, base[i])).sort((a, b) => a - b);
    return { median: median(values), min: values[0], max: values[values.length - 1] };
  };

  for (const adapter of s.adapters) {
    console.log(`\n${adapter}:`);
    console.log(
      'variant          req/s  vs bare (min-max)    CPU µs/req  vs bare  +µs/req   p99 ms  RSS MB at READY (+bare)  after load (+bare)  ms to READY (listening)  READY is',
    );
    for (const variant of s.variants) {
      const runs = column(adapter, variant)!;
      const rps = paired(adapter, variant, (m, b) => m.rps / b.rps)!;
      const cpu = paired(adapter, variant, (m, b) => m.cpuMicrosPerRequest / b.cpuMicrosPerRequest)!;
      const addedCpu = paired(adapter, variant, (m, b) => m.cpuMicrosPerRequest - b.cpuMicrosPerRequest)!;
      const addedRss = paired(adapter, variant, (m, b) => m.rssMB - b.rssMB)!;
      const addedRssAtReady = paired(adapter, variant, (m, b) => m.rssAtReadyMB - b.rssAtReadyMB)!;
      const of = (f: (m: Measurement) => number) => median(runs.map(f));
      console.log(
        `${variant.padEnd(15)} ${fmt(
          of((m) => m.rps),
          0,
        ).padStart(6)}  ${`${fmt(rps.median, 2)}x (${fmt(rps.min, 2)}-${fmt(rps.max, 2)})`.padEnd(19)}  ` +
          `${fmt(
            of((m) => m.cpuMicrosPerRequest),
            1,
          ).padStart(10)}  ${`${fmt(cpu.median, 2)}x`.padStart(7)}  ${signed(addedCpu.median, 1).padStart(7)}  ` +
          `${fmt(
            of((m) => m.p99Ms),
            2,
          ).padStart(7)}  ${`${fmt(
            of((m) => m.rssAtReadyMB),
            1,
          )} (${signed(addedRssAtReady.median, 1)})`.padStart(23)}  ${`${fmt(
            of((m) => m.rssMB),
            1,
          )} (${signed(addedRss.median, 1)})`.padStart(18)}  ` +
          `${`${fmt(
            of((m) => m.readyMs),
            0,
          )} (${fmt(
            of((m) => m.listeningMs),
            0,
          )})`.padStart(23)}  ${runs[0].readyMeans}`,
      );
    }

    // Each module's own share of the CPU per request, so that a regression has a name.
    const added = (variant: Variant, against: Variant = 'bare') =>
      paired(adapter, variant, (m, b) => m.cpuMicrosPerRequest - b.cpuMicrosPerRequest, against)?.median;
    const share = (label: string, variant: Variant, note?: { against: Variant; what: string }) => {
      const total = added(variant);
      if (total === undefined) return;
      const own = note ? added(variant, note.against) : undefined;
      const extra = own === undefined ? '' : `  (${signed(own, 1)} ${note!.what})`;
      console.log(`  ${label.padEnd(30)} ${signed(total, 1).padStart(7)} µs${extra}`);
    };
    console.log(`\n${adapter}: CPU µs per request over bare, by module (median of the per-round differences):`);
    share('lifecycle', 'lifecycle');
    share('health (+ lifecycle)', 'health', { against: 'lifecycle', what: 'over lifecycle: health alone' });
    share('metrics (+ lifecycle)', 'metrics', { against: 'lifecycle', what: 'over lifecycle: metrics alone' });
    share('logging, no access line', 'logging');
    share('logging + access line', 'logging+access', { against: 'logging', what: 'over logging: the access line alone' });
    share('canary (@Canary(), no match)', 'canary');
    const parts = [added('lifecycle'), added('health', 'lifecycle'), added('metrics', 'lifecycle'), added('logging'), added('canary')];
    if (parts.every((p) => p !== undefined) && added('stack') !== undefined) {
      const sum = (parts as number[]).reduce((a, b) => a + b, 0);
      console.log(
        `  ${'sum of the shares above'.padEnd(30)} ${signed(sum, 1).padStart(7)} µs  (no access line; stack measured: ${signed(added('stack')!, 1)} µs)`,
      );
    }
    share('stack', 'stack');
    share('stack+access', 'stack+access', { against: 'stack', what: 'over stack: the access line' });
    share('peer', 'peer');
  }

  console.log('\ngoals:');
  for (const goal of RPS_GOALS) {
    if (!s.adapters.includes(goal.adapter)) continue;
    const ratio = paired(goal.adapter, goal.variant, (m, b) => m.rps / b.rps);
    console.log(
      ratio === undefined
        ? `  ${goal.adapter} ${goal.variant} ≥ ${goal.atLeast}x bare req/s: not run`
        : `  ${goal.adapter} ${goal.variant} ≥ ${goal.atLeast}x bare req/s: ${fmt(ratio.median, 2)}x  ${verdict(ratio.median >= goal.atLeast)}`,
    );
  }
  for (const adapter of s.adapters) {
    const ahead = paired(adapter, 'stack+access', (m, p) => m.rps / p.rps, 'peer');
    console.log(
      ahead === undefined
        ? `  ${adapter} stack+access ahead of peer: not run`
        : `  ${adapter} stack+access ahead of peer (req/s): ${fmt(ahead.median, 2)}x peer  ${verdict(ahead.median > 1)}`,
    );
  }
  for (const adapter of s.adapters) {
    // At READY: the footprint of what the stack loads and holds. After the load, RSS also holds the
    // heap V8 grew for the allocation rate, which follows throughput and GC timing, not the stack.
    const rss = paired(adapter, 'stack+access', (m, b) => m.rssAtReadyMB - b.rssAtReadyMB);
    console.log(
      rss === undefined
        ? `  ${adapter} stack+access RSS at READY − bare ≤ ${RSS_GOAL_MB} MB: not run`
        : `  ${adapter} stack+access RSS at READY − bare ≤ ${RSS_GOAL_MB} MB: ${signed(rss.median, 1)} MB  ${verdict(rss.median <= RSS_GOAL_MB)}`,
    );
  }
  console.log(`\nload average after: ${load()}`);
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED';
}

function fmt(value: number, digits: number): string {
  return value.toFixed(digits);
}

function signed(value: number, digits: number): string {
  return `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs the bench, or, forked with `--serve <variant> <adapter>`, one of its servers. */
export function run(): void {
  if (process.argv[2] === '--serve') {
    serve(process.argv[3] as Variant, process.argv[4] as AdapterName).catch((error: unknown) => {
      console.error(error instanceof Error ? error.stack : error);
      process.exit(1);
    });
    return;
  }
  // Exiting through process.exit lets the forked servers see their IPC channel close.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}

run();
