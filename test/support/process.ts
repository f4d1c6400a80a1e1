import { ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface StartProcessOptions {
  /** Names the process in errors and diagnostics ("sample-a", "haproxy"). */
  readonly name: string;
  readonly command: string;
  readonly args?: readonly string[];
  /** Added to (and overriding) the test runner's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Epoch milliseconds at which the exit was seen. */
  readonly at: number;
}

export type LineMatcher = RegExp | ((line: string) => boolean);

/**
 * A child process started by a test: its output kept line by line, signals, and an exit that is
 * awaited with a bound. The child leads its own process group, so `stop()` also reaches anything it
 * spawned; if the test runner itself exits first, the group is killed on the way out.
 */
export class ManagedProcess {
  /** Every stdout line, in order (structured logs are one JSON object per line). */
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Resolves once the process has exited and its output is fully read. Never rejects. */
  readonly exited: Promise<ProcessExit>;
  readonly startedAt = Date.now();
  private exitStatus: ProcessExit | undefined;
  private readonly lineWaiters = new Set<(line: string) => void>();
  private readonly killOnRunnerExit = () => this.killGroup('SIGKILL');

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    process.once('exit', this.killOnRunnerExit);
    const readLines = (stream: NodeJS.ReadableStream, into: string[]) =>
      new Promise<void>((resolve) => {
        const lines = createInterface({ input: stream, crlfDelay: Infinity });
        lines.on('line', (line) => {
          into.push(line);
          for (const waiter of this.lineWaiters) waiter(line);
        });
        lines.once('close', resolve);
      });
    const outputRead = Promise.all([readLines(child.stdout!, this.stdout), readLines(child.stderr!, this.stderr)]);
    const exit = new Promise<ProcessExit>((resolve) => {
      child.once('error', (error) => {
        this.stderr.push(`[spawn error] ${error.message}`);
        resolve({ code: null, signal: null, at: Date.now() });
      });
      child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
    });
    this.exited = exit.then(async (status) => {
      // Output can trail the exit by a moment; a grandchild holding the pipes must not hang us.
      await Promise.race([outputRead, delay(1000)]);
      this.exitStatus = status;
      process.off('exit', this.killOnRunnerExit);
      return status;
    });
  }

  static start(options: StartProcessOptions): ManagedProcess {
    const child = spawn(options.command, [...(options.args ?? [])], {
      cwd: options.cwd,
      env: withoutUndefined({ ...process.env, ...options.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    return new ManagedProcess(options.name, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Undefined while the process runs. */
  get exit(): ProcessExit | undefined {
    return this.exitStatus;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  /** Sends `signal` to the process itself (as an orchestrator does to a container's PID 1). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** The first line (stdout or stderr) matching, including lines already received. */
  async waitForLine(match: LineMatcher, timeoutMs: number): Promise<string> {
    const test = typeof match === 'function' ? match : (line: string) => match.test(line);
    const seen = [...this.stdout, ...this.stderr].find(test);
    if (seen !== undefined) return seen;
    return new Promise<string>((resolve, reject) => {
      const done = (error: Error | undefined, line?: string) => {
        clearTimeout(timer);
        this.lineWaiters.delete(waiter);
        if (error) reject(error);
        else resolve(line!);
      };
      const waiter = (line: string) => test(line) && done(undefined, line);
      const timer = setTimeout(
        () => done(new Error(`${this.name}: no line matching ${String(match)} within ${timeoutMs} ms\n${this.describe()}`)),
        timeoutMs,
      );
      this.lineWaiters.add(waiter);
      void this.exited.then(() =>
        done(new Error(`${this.name} exited before printing a line matching ${String(match)}\n${this.describe()}`)),
      );
    });
  }

  /** The exit, or a rejection naming the process if it is still running after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<ProcessExit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} still running ${timeoutMs} ms later\n${this.describe()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops the whole process group: `signal` first, SIGKILL once `graceMs` has passed. Safe to call
   * more than once and after the process exited; meant for `afterAll` / `finally`.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<ProcessExit> {
    if (this.running) {
      this.killGroup(signal);
      const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // The leader may be gone while a child of it still runs.
    this.killGroup('SIGKILL');
    return this.exited;
  }

  /** The last lines of output, for assertion messages. */
  describe(lastLines = 40): string {
    const status = this.exitStatus ? `exited code=${this.exitStatus.code} signal=${this.exitStatus.signal}` : 'running';
    const tail = (lines: string[]) => lines.slice(-lastLines).join('\n');
    return `--- ${this.name} (pid ${this.pid}, ${status}) stdout:\n${tail(this.stdout)}\n--- stderr:\n${tail(this.stderr)}`;
  }

  private killGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      // ESRCH: the group is gone already.
    }
  }
}

/** Starts a child process; see `ManagedProcess`. */
export function startProcess(options: StartProcessOptions): ManagedProcess {
  return ManagedProcess.start(options);
}

/**
 * The structured log events in a process's output (e.g. `proc.stdout`): lines that parse as JSON and carry an
 * `event` field, either at the top level (pino) or in the message object (Nest's JSON console).
 */
export function logEvents(lines: readonly string[], event?: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue;
    }
    const record = parsed as Record<string, unknown>;
    const candidates = [record, record.message, record.msg];
    const found = candidates.find(
      (c): c is Record<string, unknown> => typeof c === 'object' && c !== null && typeof (c as { event?: unknown }).event === 'string',
    );
    if (found && (event === undefined || found.event === event)) events.push(found);
  }
  return events;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withoutUndefined(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}
