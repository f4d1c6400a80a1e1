import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * wrk as a load generator for the benches: one run as a child process, its report parsed. wrk is
 * the Debian package `wrk` (4.x); WRK in the environment names another binary.
 */
export const WRK = process.env.WRK ?? 'wrk';

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  /** wrk counts whole seconds: rounded, at least 1 s. Requests/s come from wrk's own elapsed time. */
  readonly durationMs: number;
  /** wrk's threads (`-t`). @default 1 */
  readonly threads?: number;
  /**
   * A Lua script for wrk (`-s`), written to a temporary file for the run. To send headers of its
   * own on every request, e.g. a distinct x-user each:
   *
   * ```lua
   * local n = 0
   * request = function()
   *   n = n + 1
   *   return wrk.format(nil, nil, { ["x-user"] = "user-" .. n })
   * end
   * ```
   */
  readonly luaScript?: string;
  /** CPUs wrk runs on (`taskset -c <cpus>`, e.g. `'0'` or `'0-2'`), when taskset exists. */
  readonly cpus?: string;
  /** Socket/request timeout (`--timeout`). @default 5000 */
  readonly timeoutMs?: number;
}

export interface WrkResult {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** "Non-2xx or 3xx responses". */
  readonly non2xx: number;
  /** connect + read + write + timeout. */
  readonly socketErrors: number;
}

/** Throws, with the package to install, unless wrk can be started. */
export function assertWrkInstalled(): void {
  const probe = spawnSync(WRK, ['-v'], { stdio: 'ignore' });
  if (probe.error) {
    throw new Error(
      `wrk is needed for this bench and could not be started (${probe.error.message}): ` +
        'install it (on Debian/Ubuntu: apt-get install wrk) or name its binary in WRK',
    );
  }
}

/** Where a benchmark server and wrk run: CPU lists for `taskset -c`, or undefined when not pinned. */
export interface Pinning {
  readonly serverCpus?: string;
  readonly wrkCpus?: string;
}

/**
 * The server on the last CPU this process may use, wrk on the others, so that the two stop taking
 * each other's time; not pinned without taskset or with fewer than 2 CPUs.
 */
export function pinning(): Pinning {
  const allowed = hasTaskset() ? allowedCpus() : undefined;
  if (allowed === undefined || allowed.length < 2) return {};
  return { serverCpus: String(allowed[allowed.length - 1]), wrkCpus: allowed.slice(0, -1).join(',') };
}

/** True when taskset (util-linux) can be started. */
function hasTaskset(): boolean {
  return !spawnSync('taskset', ['-V'], { stdio: 'ignore' }).error;
}

/** The CPUs this process may run on, from `taskset -cp` (e.g. `0-3,6` → [0, 1, 2, 3, 6]); undefined without taskset. */
function allowedCpus(): number[] | undefined {
  const probe = spawnSync('taskset', ['-cp', String(process.pid)], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  const list = /:\s*([\d,-]+)\s*$/.exec(probe.stdout.trim())?.[1];
  if (!list) return undefined;
  const cpus: number[] = [];
  for (const part of list.split(',')) {
    const [from, to = from] = part.split('-').map(Number);
    for (let cpu = from; cpu <= to; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/**
 * One wrk run against `url`. Rejects when wrk fails or its report cannot be read; errors in the
 * report (non-2xx answers, socket errors) are returned, for the caller to judge
 * (see `assertNoWrkErrors`).
 */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const { url, connections, durationMs, threads = 1, luaScript, cpus, timeoutMs = 5000 } = options;
  const seconds = Math.max(1, Math.round(durationMs / 1000));
  const scriptDir = luaScript === undefined ? undefined : mkdtempSync(join(tmpdir(), 'bench-wrk-'));
  try {
    const args = [
      `-t${threads}`,
      `-c${connections}`,
      `-d${seconds}s`,
      '--timeout',
      `${Math.max(1, Math.round(timeoutMs / 1000))}s`,
      '--latency',
    ];
    if (scriptDir !== undefined) {
      const scriptPath = join(scriptDir, 'script.lua');
      writeFileSync(scriptPath, luaScript!);
      args.push('-s', scriptPath);
    }
    args.push(url);
    const [file, argv] = cpus === undefined ? [WRK, args] : ['taskset', ['-c', cpus, WRK, ...args]];
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(file, argv, { timeout: seconds * 1000 + 30_000 }, (error, out, err) => {
        if (error) reject(new Error(`${[file, ...argv].join(' ')} failed: ${error.message}${err ? `\n${err}` : ''}`));
        else resolve(out);
      });
    });
    return parseWrkReport(stdout);
  } finally {
    if (scriptDir !== undefined) rmSync(scriptDir, { recursive: true, force: true });
  }
}

/** Throws, naming them, if the run had non-2xx/3xx answers or socket errors. */
export function assertNoWrkErrors(result: WrkResult, what: string): void {
  if (result.non2xx > 0 || result.socketErrors > 0) {
    throw new Error(
      `${what}: ${result.non2xx} non-2xx/3xx responses and ${result.socketErrors} socket errors out of ${result.requests} requests`,
    );
  }
}

/** Reads wrk's report (run with `--latency`). */
export function parseWrkReport(report: string): WrkResult {
  const requests = /(\d+) requests in /.exec(report);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(report);
  const p50 = /^\s*50%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(report);
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$/m.exec(report);
  if (!requests || !rps || !p50 || !p99) throw new Error(`unexpected wrk report:\n${report}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(report);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(report);
  return {
    requests: Number(requests[1]),
    rps: Number(rps[1]),
    p50Ms: toMs(Number(p50[1]), p50[2]),
    p99Ms: toMs(Number(p99[1]), p99[2]),
    non2xx: Number(non2xx?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

const MS_PER_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(value: number, unit: string): number {
  return value * MS_PER_UNIT[unit];
}
