import 'reflect-metadata';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DynamicConfigModule, DynamicConfigService, fileSource, type ConfigSource } from '@nest-rollout/config';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { z } from 'zod';
import { intEnv } from './support';

/**
 * What hot-reloaded configuration costs, in one run:
 *
 * 1. Delivery: from the start of a rename-over write of the file (a temporary file renamed over it,
 *    as atomic writers and editors do) to the new value handed over by `fileSource`, and to the
 *    same value returned by `DynamicConfigService.get()` (validated by a zod schema, frozen,
 *    applied). With the default 100 ms debounce and with none, one change after the other,
 *    alternating between the two so that both see the same machine. Goal: ≤ 200 ms with the
 *    debounce.
 * 2. The hot path: one property read through `DynamicConfigService.get()` (a frozen snapshot)
 *    against the same read from a plain object, per call.
 *
 *   npm run bench:config   # = npm run build && npm run build:fixtures && node dist/bench/config.bench.js
 *
 * Env: BENCH_CHANGES (default 100 per debounce setting), BENCH_READS (5,000,000 per measurement),
 * BENCH_ROUNDS (21 rounds of the hot-path measurement; short measurements, many rounds and the
 * median resist other processes taking the CPU). Files live in a temporary folder, removed
 * at the end; each service runs in a Nest application context of its own, closed at the end.
 */
const DEBOUNCES_MS = [100, 0] as const;
const DELIVERY_TIMEOUT_MS = 5000;

const settingsSchema = z.object({
  rateLimit: z.object({ perSecond: z.number().int().min(0), burst: z.number().int().min(0).default(100) }),
  degrade: z.object({ ordersList: z.boolean().default(false) }).prefault({}),
  canary: z.object({ percent: z.number().min(0).max(100).default(5) }).prefault({}),
});
type Settings = z.output<typeof settingsSchema>;

interface Watched {
  readonly debounceMs: number;
  readonly path: string;
  readonly app: INestApplicationContext;
  readonly config: DynamicConfigService<Settings>;
  /** When the source last handed over an update (performance.now()). */
  deliveredAt: number;
  readonly sourceMs: number[];
  readonly serviceMs: number[];
}

/** The source as given, noting when it hands over an update. */
function timed(source: ConfigSource, onDelivered: () => void): ConfigSource {
  return {
    kind: source.kind,
    location: source.location,
    start: (onUpdate) =>
      source.start((update) => {
        onDelivered();
        onUpdate(update);
      }),
    reload: () => source.reload(),
    stop: () => source.stop(),
  };
}

async function watched(folder: string, debounceMs: number): Promise<Watched> {
  // A folder per source: each watcher then sees only its own file's events.
  const own = join(folder, `debounce-${debounceMs}`);
  await mkdir(own);
  const path = join(own, 'dynamic.yaml');
  await writeFile(path, 'rateLimit:\n  perSecond: 0\n');
  const timing = { deliveredAt: 0 };
  const source = timed(fileSource(path, { debounceMs }), () => (timing.deliveredAt = performance.now()));

  @Module({ imports: [DynamicConfigModule.forRoot({ schema: settingsSchema, sources: [source], reloadSignal: false })] })
  class BenchModule {}

  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  const config = app.get<DynamicConfigService<Settings>>(DynamicConfigService);
  return Object.assign(timing, { debounceMs, path, app, config, sourceMs: [], serviceMs: [] });
}

/** One change: write + rename, then wait until get() returns the new value; records both delays. */
async function change(entry: Watched, value: number, record = true): Promise<void> {
  const applied = firstValueFrom(
    entry.config.changes$.pipe(
      filter((change) => change.current.rateLimit.perSecond === value),
      timeout({
        first: DELIVERY_TIMEOUT_MS,
        with: () => Promise.reject(new Error(`debounce ${entry.debounceMs}: change ${value} not applied`)),
      }),
    ),
  );
  const started = performance.now();
  const temporary = `${entry.path}.tmp`;
  await writeFile(temporary, `rateLimit:\n  perSecond: ${value}\n`);
  await rename(temporary, entry.path);
  await applied;
  const visibleAt = performance.now();
  if (entry.config.get().rateLimit.perSecond !== value) throw new Error(`debounce ${entry.debounceMs}: get() does not return ${value}`);
  if (!record) return;
  entry.sourceMs.push(entry.deliveredAt - started);
  entry.serviceMs.push(visibleAt - started);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function deliveryLatency(entries: readonly Watched[], changes: number): Promise<void> {
  for (let i = 1; i <= changes; i++) {
    // Alternate which one goes first, so neither always follows the other's disk activity.
    const order = i % 2 === 0 ? entries : [...entries].reverse();
    for (const entry of order) await change(entry, i);
  }

  console.log(`\n1. Delivery: rename-over write → new value, ${changes} changes per setting, alternating`);
  console.log('debounce  delivered by                 median      p99      max   median minus debounce');
  for (const entry of entries) {
    for (const [what, samples] of [
      ['fileSource onUpdate', entry.sourceMs],
      ['DynamicConfigService.get()', entry.serviceMs],
    ] as const) {
      const sorted = [...samples].sort((a, b) => a - b);
      const median = percentile(sorted, 50);
      console.log(
        `${`${entry.debounceMs} ms`.padEnd(9)} ${what.padEnd(26)} ${ms(median)} ${ms(percentile(sorted, 99))} ${ms(sorted[sorted.length - 1])}   ${ms(median - entry.debounceMs)}`,
      );
    }
  }
  const [withDebounce, without] = entries.map((entry) =>
    percentile(
      [...entry.serviceMs].sort((a, b) => a - b),
      50,
    ),
  );
  console.log(`the debounce's share of the median delay to get(): ${ms(withDebounce - without).trim()} of ${ms(withDebounce).trim()}`);
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`.padStart(8);
}

// ---- 2. The hot path ------------------------------------------------------------------------

function deepFreeze<T>(value: T): Readonly<T> {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

// Two of each, read alternately: the read then depends on the loop index, so the compiler cannot
// hoist it out of the loop, and every variant pays the same for the selection.
let services: DynamicConfigService<Settings>[] = [];
let plainObjects: Settings[] = [];
let frozenObjects: Readonly<Settings>[] = [];

const READERS = {
  'plain object field': (reads: number): number => {
    let sum = 0;
    for (let i = 0; i < reads; i++) sum += plainObjects[i & 1].rateLimit.perSecond;
    return sum;
  },
  // The same read from a frozen object without get(): separates the freezing from the method call.
  'frozen object field': (reads: number): number => {
    let sum = 0;
    for (let i = 0; i < reads; i++) sum += frozenObjects[i & 1].rateLimit.perSecond;
    return sum;
  },
  'get().rateLimit.perSecond': (reads: number): number => {
    let sum = 0;
    for (let i = 0; i < reads; i++) sum += services[i & 1].get().rateLimit.perSecond;
    return sum;
  },
  "get('rateLimit').perSecond": (reads: number): number => {
    let sum = 0;
    for (let i = 0; i < reads; i++) sum += services[i & 1].get('rateLimit').perSecond;
    return sum;
  },
} as const;
type Reader = keyof typeof READERS;

async function hotPath(entries: readonly Watched[], reads: number, rounds: number): Promise<void> {
  services = entries.map((entry) => entry.config);
  const names = Object.keys(READERS) as Reader[];
  const nsPerRead = new Map<Reader, number[]>(names.map((name) => [name, []]));
  const ratios = new Map<Reader, number[]>(names.map((name) => [name, []]));
  for (let round = -1; round < rounds; round++) {
    // The plain and frozen copies hold what the services hold, so every reader sums the same.
    plainObjects = services.map((service) => structuredClone(service.get()) as Settings);
    frozenObjects = plainObjects.map((settings) => deepFreeze(structuredClone(settings)));
    const expected = (reads / 2) * (plainObjects[0].rateLimit.perSecond + plainObjects[1].rateLimit.perSecond);
    const measured = new Map<Reader, number>();
    // Rotate the order every round, so that no reader always runs first (or right after GC).
    for (let k = 0; k < names.length; k++) {
      const name = names[(Math.max(round, 0) + k) % names.length];
      const started = process.hrtime.bigint();
      const sum = READERS[name](reads);
      const elapsedNs = Number(process.hrtime.bigint() - started);
      if (sum !== expected) throw new Error(`${name}: read ${sum}, expected ${expected}`);
      measured.set(name, elapsedNs / reads);
    }
    if (round >= 0) {
      // Round -1 is the warm-up: optimised code for every reader.
      for (const name of names) {
        nsPerRead.get(name)!.push(measured.get(name)!);
        ratios.get(name)!.push(measured.get(name)! / measured.get('plain object field')!);
      }
    }
    // A change applied between rounds: the readers keep up with a replaced snapshot.
    const entry = entries[(round + 2) % 2];
    await change(entry, entry.config.get().rateLimit.perSecond + 1, false);
  }

  const median = (values: number[]) =>
    percentile(
      [...values].sort((a, b) => a - b),
      50,
    );
  console.log(
    `\n2. Hot path: one property read, ${reads.toLocaleString('en')} reads per measurement, median of ${rounds} rounds (a change applied between rounds)`,
  );
  console.log('read                         ns/read median (min)   vs plain in the same round: median (range)');
  for (const name of names) {
    const ns = nsPerRead.get(name)!;
    const r = ratios.get(name)!;
    console.log(
      `${name.padEnd(28)} ${median(ns).toFixed(2).padStart(8)} (${Math.min(...ns).toFixed(2)})        ${median(r).toFixed(2)}x (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)})`,
    );
  }
}

async function main(): Promise<void> {
  const changes = intEnv('BENCH_CHANGES', 100);
  const reads = intEnv('BENCH_READS', 5_000_000);
  const rounds = intEnv('BENCH_ROUNDS', 21);
  console.log(`config bench: Node ${process.version}, ${process.platform}`);
  const folder = await mkdtemp(join(tmpdir(), 'config-bench-'));
  const entries: Watched[] = [];
  try {
    for (const debounceMs of DEBOUNCES_MS) entries.push(await watched(folder, debounceMs));
    await deliveryLatency(entries, changes);
    await hotPath(entries, reads, rounds);
  } finally {
    await Promise.all(entries.map((entry) => entry.app.close()));
    await rm(folder, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
