import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { waitForHttpStatus } from './http';
import { freePort } from './ports';
import { ManagedProcess, ProcessExit, startProcess } from './process';

export type Adapter = 'express' | 'fastify';
export const ADAPTERS: readonly Adapter[] = ['express', 'fastify'];

/** How the plain baseline app (test/fixtures/plain-app.ts) shuts down. */
export type PlainVariant = 'default' | 'force-close' | 'return-503';

/** The repository root, found from here whether this runs from test/support or dist/test/support. */
export const ROOT = findRoot(__dirname);
/** The built sample; `NEST_ROLLOUT_SAMPLE_MAIN` points the helpers at another build of it. */
export const SAMPLE_MAIN = process.env.NEST_ROLLOUT_SAMPLE_MAIN ?? join(ROOT, 'dist/apps/sample/main.js');
export const PLAIN_APP_MAIN = join(ROOT, 'dist/test/fixtures/plain-app.js');
const FIXTURES_TSCONFIG = join(ROOT, 'test/tsconfig.fixtures.json');

/** A server started by a test, listening on a loopback port of its own. */
export interface AppInstance {
  readonly name: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly process: ManagedProcess;
  /** SIGTERM to the process group, SIGKILL after `graceMs`; safe to call at any time. */
  stop(graceMs?: number): Promise<ProcessExit>;
}

export interface StartAppOptions {
  readonly name: string;
  /** The Node entry point (a built `.js` file). */
  readonly script: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Chosen free when omitted; passed as PORT, with LISTEN_HOST=127.0.0.1. */
  readonly port?: number;
  /** Answers 200 once the app takes traffic. */
  readonly readyPath?: string;
  /** A full URL instead of `readyPath`, for probes served on a management port. */
  readonly readyUrl?: string;
  readonly readyTimeoutMs?: number;
}

/**
 * Starts `node <script>` on 127.0.0.1 and resolves once `readyPath` answers 200. A process that
 * exits or never turns ready is stopped and the error carries its output.
 */
export async function startApp(options: StartAppOptions): Promise<AppInstance> {
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const proc = startProcess({
    name: options.name,
    command: process.execPath,
    args: [options.script],
    cwd: ROOT,
    env: { LISTEN_HOST: '127.0.0.1', ...options.env, PORT: String(port) },
  });
  try {
    await waitForHttpStatus(options.readyUrl ?? `${url}${options.readyPath ?? '/health/ready'}`, {
      status: 200,
      timeoutMs: options.readyTimeoutMs ?? 20_000,
      proc,
    });
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return { name: options.name, port, url, process: proc, stop: (graceMs = 5000) => proc.stop('SIGTERM', graceMs) };
}

export interface SampleOptions {
  readonly name: string;
  readonly adapter: Adapter;
  readonly port?: number;
  /** DRAIN_DELAY_MS, SHUTDOWN_TIMEOUT_MS, APP_COLOR, ... (see apps/sample/src/sample.config.ts). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly readyTimeoutMs?: number;
  readonly readyUrl?: string;
}

/** The built nest-rollout sample (`npm run build` first), ready when `/health/ready` answers 200. */
export function startSample(options: SampleOptions): Promise<AppInstance> {
  assertBuilt(SAMPLE_MAIN, 'the sample is not built: run `npm run build` first');
  return startApp({
    name: options.name,
    script: SAMPLE_MAIN,
    port: options.port,
    readyTimeoutMs: options.readyTimeoutMs,
    readyUrl: options.readyUrl,
    env: { MIN_READY_DELAY_MS: '100', ...options.env, ADAPTER: options.adapter },
  });
}

export interface PlainAppOptions {
  readonly name: string;
  readonly adapter: Adapter;
  readonly variant: PlainVariant;
  readonly port?: number;
}

/** The baseline: a plain Nest app with `enableShutdownHooks()` only (see test/fixtures/plain-app.ts). */
export function startPlainApp(options: PlainAppOptions): Promise<AppInstance> {
  assertBuilt(PLAIN_APP_MAIN, 'the fixtures are not built: call ensureFixturesBuilt() or run `npx tsc -p test/tsconfig.fixtures.json`');
  return startApp({
    name: options.name,
    script: PLAIN_APP_MAIN,
    port: options.port,
    env: { ADAPTER: options.adapter, PLAIN_VARIANT: options.variant },
  });
}

/** Compiles test/fixtures (with test/support and bench) by test/tsconfig.fixtures.json when a fixture's output is missing or older than a fixture source. */
export function ensureFixturesBuilt(): void {
  const sources = readdirSync(join(ROOT, 'test/fixtures'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(ROOT, 'test/fixtures', f));
  const newestSource = Math.max(...sources.map((f) => statSync(f).mtimeMs), statSync(FIXTURES_TSCONFIG).mtimeMs);
  const outputs = sources.map((f) => join(ROOT, 'dist/test/fixtures', basename(f, '.ts') + '.js'));
  const upToDate = outputs.every((f) => (statSync(f, { throwIfNoEntry: false })?.mtimeMs ?? 0) >= newestSource);
  if (upToDate) return;
  try {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', FIXTURES_TSCONFIG], { cwd: ROOT, stdio: 'pipe' });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    throw new Error(`tsc -p test/tsconfig.fixtures.json failed:\n${stdout?.toString() ?? ''}${stderr?.toString() ?? ''}`);
  }
}

function assertBuilt(file: string, message: string): void {
  if (!existsSync(file)) throw new Error(`${message} (missing ${file})`);
}

function findRoot(from: string): string {
  for (let dir = from; dir !== dirname(dir); dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'nest-rollout') return dir;
  }
  throw new Error(`no nest-rollout package.json above ${from}`);
}
