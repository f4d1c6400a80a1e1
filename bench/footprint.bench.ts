/**
 * `npm run bench:footprint`: where the stack's memory at READY comes from before any request, the
 * code each package loads. For every package below, a fresh Node process loads `@nestjs/core` and
 * `@nestjs/platform-express` (what bare Nest loads), collects garbage, notes its RSS and heap,
 * loads the package, collects again and prints what was added, and which of a few Node built-ins
 * of note it pulled in (the ES module loader, worker_threads, v8). Medians of BENCH_ROUNDS
 * (default 5) processes per package.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { intEnv } from './support';

const ROOT = join(__dirname, '..', '..');

const PACKAGES: ReadonlyArray<readonly string[]> = [
  ['zod'],
  ['prom-client'],
  ['pino'],
  ['nestjs-pino'],
  ['@nestjs/terminus'],
  ['@openfeature/flagd-core'],
  ['@nest-rollout/lifecycle'],
  ['@nest-rollout/health'],
  ['@nest-rollout/metrics'],
  ['@nest-rollout/logging'],
  ['@nest-rollout/canary'],
  ['@nest-rollout/lifecycle', '@nest-rollout/health', '@nest-rollout/metrics', '@nest-rollout/logging', '@nest-rollout/canary'],
];

/** Runs in the child: prints one JSON line. */
const PROBE = `
require('reflect-metadata');
require('@nestjs/core');
require('@nestjs/platform-express');
global.gc();
const before = process.memoryUsage();
const builtins = new Set(process.moduleLoadList);
for (const name of JSON.parse(process.argv[1])) require(name);
global.gc();
const after = process.memoryUsage();
const pulled = process.moduleLoadList
  .filter((m) => !builtins.has(m) && m.startsWith('NativeModule '))
  .map((m) => m.slice('NativeModule '.length))
  .filter((m) => ['internal/modules/esm/initialize_import_meta', 'worker_threads', 'v8'].includes(m));
console.log(JSON.stringify({ rss: after.rss - before.rss, heapUsed: after.heapUsed - before.heapUsed, pulled }));
`;

interface Probe {
  rss: number;
  heapUsed: number;
  pulled: string[];
}

function probe(packages: readonly string[]): Probe {
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', PROBE, JSON.stringify(packages)], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() as string) as Probe;
}

const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1).padStart(6);

function main(): void {
  const rounds = intEnv('BENCH_ROUNDS', 5);
  console.log(
    `footprint: RSS and heap added by loading each package after @nestjs/core and @nestjs/platform-express, node ${process.version}, median of ${rounds} processes`,
  );
  console.log(`${'package'.padEnd(60)} ${'RSS MB'.padStart(6)} ${'heap MB'.padStart(7)}  built-ins of note it loads`);
  for (const packages of PACKAGES) {
    const runs = Array.from({ length: rounds }, () => probe(packages));
    const name = packages.length > 1 ? 'all five @nest-rollout libraries of the stack' : packages[0];
    const pulled = runs[0].pulled.map((m) => (m === 'internal/modules/esm/initialize_import_meta' ? 'the ES module loader' : m));
    console.log(
      `${name.padEnd(60)} ${mb(median(runs.map((r) => r.rss)))} ${mb(median(runs.map((r) => r.heapUsed))).padStart(7)}  ${pulled.join(', ') || '-'}`,
    );
  }
}

main();
