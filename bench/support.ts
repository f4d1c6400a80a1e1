import { fork, type ChildProcess, type Serializable } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';

/** A positive whole number from the environment (BENCH_DURATION_MS and the like), or `fallback`. */
export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number (got ${JSON.stringify(raw)})`);
  return value;
}

/** How to fork a benchmark server (see `forkServer`). */
export interface ForkServerOptions {
  /** CPUs the server runs on (`taskset -c <cpus> node ...`, so every thread of it is pinned from the start). */
  readonly cpus?: string;
  /** The Node binary the server runs on. @default process.execPath */
  readonly nodePath?: string;
}

/**
 * Forks `script` as a benchmark server (`--serve <variant> <adapter> ...args`); it answers with its
 * port over IPC once listening (`{ port }`, possibly with more fields: `hello`), and with
 * `{ cpuMicros }` to any message (`{ rssBytes }` to `'rss'`, see `answerServerQueries`).
 */
export async function forkServer(
  script: string,
  variant: string,
  adapter: string,
  args: readonly string[] = [],
  options: ForkServerOptions = {},
): Promise<{ child: ChildProcess; port: number; hello: Record<string, unknown> }> {
  const node = options.nodePath ?? process.execPath;
  const pinned =
    options.cpus === undefined ? { execPath: node } : { execPath: 'taskset', execArgv: ['-c', options.cpus, node, ...process.execArgv] };
  const child = fork(script, ['--serve', variant, adapter, ...args], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], ...pinned });
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.once('message', (message) => resolve(message as Record<string, unknown>));
    child.once('exit', (code) => reject(new Error(`${variant}/${adapter} server exited with ${code} before listening`)));
  });
  return { child, port: hello.port as number, hello };
}

/**
 * In a benchmark server: answers the parent's queries over IPC, `'rss'` with `{ rssBytes }`
 * (process.memoryUsage().rss) and anything else with `{ cpuMicros }` (user + system CPU time so far).
 */
export function answerServerQueries(): void {
  process.on('message', (message) => {
    if (message === 'rss') return void process.send?.({ rssBytes: process.memoryUsage().rss });
    const { user, system } = process.cpuUsage();
    process.send?.({ cpuMicros: user + system });
  });
}

/** The server's user + system CPU time so far, in microseconds. */
export function serverCpuMicros(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (message) => resolve((message as { cpuMicros: number }).cpuMicros));
    child.send('cpu');
  });
}

/** The server's resident set size now, in bytes (servers that answer through `answerServerQueries`). */
export async function serverRssBytes(child: ChildProcess): Promise<number> {
  return (await askForked<{ rssBytes: number }>(child, 'rss')).rssBytes;
}

/**
 * Sends `message` to a forked child (a load process, say) and resolves with the child's next
 * message; rejects if the child exits first.
 */
export function askForked<T>(child: ChildProcess, message: Serializable): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`forked process exited with ${code} before answering`));
    child.once('exit', onExit);
    child.once('message', (answer) => {
      child.off('exit', onExit);
      resolve(answer as T);
    });
    child.send(message);
  });
}

/** Ends a forked child (server or load generator): disconnect, then SIGKILL after 5 s. */
export async function stopForked(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.disconnect();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Garbage-collection pauses of a process over a stretch of time. */
export interface GcPauses {
  count: number;
  totalMs: number;
  longestMs: number;
}

/**
 * In a benchmark server: counts this process's garbage-collection pauses (`PerformanceObserver`,
 * entry type `gc`); `take()` returns those since the last `take()`.
 */
export function watchGcPauses(): { take(): GcPauses } {
  let pauses: GcPauses = { count: 0, totalMs: 0, longestMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      pauses.count++;
      pauses.totalMs += entry.duration;
      pauses.longestMs = Math.max(pauses.longestMs, entry.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  return {
    take() {
      const taken = pauses;
      pauses = { count: 0, totalMs: 0, longestMs: 0 };
      return taken;
    },
  };
}

/** The pauses of every server in `children` since the last call (each answers `'gc'` with `watchGcPauses().take()`). */
export async function takeGcPauses(children: readonly ChildProcess[]): Promise<GcPauses> {
  const all = await Promise.all(children.map((child) => askForked<GcPauses>(child, 'gc')));
  return {
    count: all.reduce((sum, p) => sum + p.count, 0),
    totalMs: all.reduce((sum, p) => sum + p.totalMs, 0),
    longestMs: Math.max(0, ...all.map((p) => p.longestMs)),
  };
}
