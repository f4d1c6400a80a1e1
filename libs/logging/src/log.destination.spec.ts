import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Test } from '@nestjs/testing';
import type { Logger as Pino } from 'pino';
import { LogDestination } from './log.destination';
import { LOGGING_PINO_LOGGER } from './logging.constants';
import { LoggingModule } from './logging.module';
import { resolveLoggingOptions } from './logging.options';
import type { LogLine } from '../testing/logging-test-app';

const ROOT = join(__dirname, '..', '..', '..');
const FIXTURE = join(__dirname, '..', 'testing', 'exit-flush.fixture.js');

/** A destination that records what reaches it and when it is flushed. */
class RecordingStream {
  readonly written: string[] = [];
  flushSyncCalls = 0;
  write(line: string): void {
    this.written.push(line);
  }
  flushSync(): void {
    this.flushSyncCalls++;
  }
}

describe('LogDestination', () => {
  it('flushes synchronously when the application closes, then writes each later line at once', () => {
    const target = new RecordingStream();
    const destination = new LogDestination(resolveLoggingOptions({ destination: target }));

    destination.write('{"a":1}\n');
    expect(target.flushSyncCalls).toBe(0);
    destination.onApplicationShutdown();
    expect(target.flushSyncCalls).toBe(1);

    // The lifecycle logs STOPPED and its exit line after app.close() returns.
    destination.write('{"b":2}\n');
    expect(target.written).toEqual(['{"a":1}\n', '{"b":2}\n']);
    expect(target.flushSyncCalls).toBe(2);
  });

  it('flushes its destination from a process exit listener, which the application’s close removes', () => {
    const target = new RecordingStream();
    const before = process.listeners('exit');
    const destination = new LogDestination(resolveLoggingOptions({ destination: target }));
    const added = process.listeners('exit').filter((listener) => !before.includes(listener));
    expect(added).toHaveLength(1);

    added[0].call(process, 0);
    expect(target.flushSyncCalls).toBe(1);

    destination.onApplicationShutdown();
    expect(process.listeners('exit')).toEqual(before);
  });

  it('formats lines with pino-pretty when pretty is on', async () => {
    const target = new RecordingStream();
    const moduleRef = await Test.createTestingModule({ imports: [LoggingModule.forRoot({ destination: target, pretty: true })] }).compile();
    moduleRef.get<Pino>(LOGGING_PINO_LOGGER).info({ event: 'pretty.check' }, 'hello pretty');
    await moduleRef.close();

    const text = target.written.join('');
    expect(text).toMatch(/INFO.*hello pretty/);
    expect(text).toMatch(/event: "pretty.check"/);
    expect(() => JSON.parse(target.written[0])).toThrow();
  });
});

interface ChildResult {
  readonly code: number | null;
  readonly lines: LogLine[];
  readonly stderr: string;
}

function parseLines(stdout: string): LogLine[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

/** Runs the fixture to its end; `whenStderr` reacts to its markers (e.g. to send a signal). */
function runFixture(args: string[], whenStderr?: (chunk: string, child: ReturnType<typeof spawn>) => void): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      whenStderr?.(chunk, child);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: parseLines(stdout), stderr }));
  });
}

describe('no line lost at exit (child processes on the built library)', () => {
  beforeAll(() => {
    execFileSync('npx', ['tsc', '-b', 'libs/logging/tsconfig.lib.json'], { cwd: ROOT, stdio: 'pipe' });
  }, 180_000);

  // 3 lines stay in the 4 KiB buffer until the exit; of 5000, the tail of the last buffer does.
  // Without the exit listener, 0 of 3 and about 4986 of 5000 arrive.
  it.each([3, 5000])(
    'writes all of %i lines logged right before process.exit(), in order',
    async (count) => {
      const { code, lines, stderr } = await runFixture(['burst-then-exit', String(count)]);

      expect({ code, stderr: stderr.includes('fixture failed') ? stderr : '' }).toEqual({ code: 0, stderr: '' });
      const burst = lines.filter((line) => line.event === 'fixture.line');
      expect(burst.map((line) => line.i)).toEqual(Array.from({ length: count }, (_, i) => i));
      // Nest's start-up lines, buffered by bufferLogs, made it too.
      expect(lines.some((line) => line.context === 'NestApplication')).toBe(true);
    },
    60_000,
  );

  it('writes every line logged before an uncaught exception ends the process', async () => {
    const count = 200;
    const { code, lines } = await runFixture(['burst-then-crash', String(count)]);

    expect(code).toBe(1);
    expect(lines.filter((line) => line.event === 'fixture.line')).toHaveLength(count);
  }, 60_000);

  it('writes a line of a quiet service within the flush interval, without waiting for more', async () => {
    const child = spawn(process.execPath, [FIXTURE, 'quiet'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<LogLine>((resolve, reject) => {
        let stdout = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          const quiet = parseLines(stdout.slice(0, stdout.lastIndexOf('\n') + 1)).find((l) => l.event === 'fixture.quiet');
          if (quiet) resolve(quiet);
        });
        child.on('close', (code) => reject(new Error(`fixture exited (${code}) before writing its line`)));
      });
      expect(child.exitCode).toBeNull(); // still running: the timer flushed it, not the exit
      expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);

  it('writes the shutdown hook’s and the lifecycle’s last lines when SIGTERM ends the process', async () => {
    const { code, lines } = await runFixture(['lifecycle-sigterm'], (chunk, child) => {
      if (chunk.includes('fixture:listening')) child.kill('SIGTERM');
    });

    expect(code).toBe(0);
    const draining = lines.find((line) => line.event === 'lifecycle.state_changed' && line.to === 'DRAINING');
    const shutdownTraceId = draining?.trace_id;
    expect(shutdownTraceId).toMatch(/^[0-9a-f]{32}$/);
    expect(lines.find((line) => line.event === 'fixture.shutdown_hook')).toMatchObject({ trace_id: shutdownTraceId });
    expect(lines.find((line) => line.event === 'lifecycle.state_changed' && line.to === 'STOPPED')).toMatchObject({
      trace_id: shutdownTraceId,
    });
    expect(lines.at(-1)).toMatchObject({ event: 'lifecycle.exit', code: 0, trace_id: shutdownTraceId });
  }, 60_000);
});
