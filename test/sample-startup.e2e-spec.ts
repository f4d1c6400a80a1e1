import { ADAPTERS, ROOT, SAMPLE_MAIN } from './support/apps';
import { httpGet, waitForHttpStatus } from './support/http';
import { freePort } from './support/ports';
import { PostgresInstance, preparePostgres } from './support/postgres';
import { delay, logEvents, ManagedProcess, startProcess } from './support/process';

/**
 * The built sample started before its database, as a pod next to a PostgreSQL that is still
 * starting: it listens at once, says which dependency it waits for, and turns ready without a
 * restart when the database comes; or, when the database never comes, it gives up at its budget
 * with one JSON error line and one plain message. Every line it prints is JSON from the first one.
 */

/** What starts every ANSI colour code (ESC [). */
const ANSI_ESCAPE = '\u001b[';
/** Node's start-up alone takes seconds on a busy machine; generous bounds that guard behaviour. */
const LISTEN_TIMEOUT_MS = 60_000;
/** How long PostgreSQL stays away after the sample first answers. */
const DATABASE_LATE_BY_MS = 5000;

type LogLine = Record<string, unknown>;

/** The built sample on a free loopback port, not waited for: each test waits for what it expects. */
async function startSampleProcess(name: string, env: Record<string, string>): Promise<{ proc: ManagedProcess; url: string }> {
  const port = await freePort();
  const proc = startProcess({
    name,
    command: process.execPath,
    args: [SAMPLE_MAIN],
    cwd: ROOT,
    env: { MIN_READY_DELAY_MS: '100', DRAIN_DELAY_MS: '0', ...env, LISTEN_HOST: '127.0.0.1', PORT: String(port) },
  });
  return { proc, url: `http://127.0.0.1:${port}` };
}

/** Every stdout line parsed; the lines that are not JSON objects are returned apart, to be asserted empty. */
function parseLines(lines: readonly string[]): { json: LogLine[]; notJson: string[] } {
  const json: LogLine[] = [];
  const notJson: string[] = [];
  for (const line of lines) {
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) json.push(parsed as LogLine);
      else notJson.push(line);
    } catch {
      notJson.push(line);
    }
  }
  return { json, notJson };
}

async function waitForEvent(proc: ManagedProcess, event: string, timeoutMs: number): Promise<void> {
  await proc.waitForLine((line) => line.includes(`"event":"${event}"`), timeoutMs);
}

describe.each(ADAPTERS)('the sample started before its database (%s)', (adapter) => {
  let postgres: PostgresInstance | undefined;
  let proc: ManagedProcess | undefined;

  beforeAll(async () => {
    postgres = await preparePostgres();
  }, 60_000);

  afterEach(async () => {
    await proc?.stop('SIGTERM', 5000);
    proc = undefined;
  }, 30_000);

  afterAll(async () => {
    await postgres?.destroy();
  }, 60_000);

  it('answers liveness at once, names the database while it waits, and turns ready on the same pid when PostgreSQL starts 5 s later', async () => {
    const started = await startSampleProcess(`sample-late-db-${adapter}`, {
      ADAPTER: adapter,
      DATABASE_URL: postgres!.url,
      DATABASE_CONNECT_TIMEOUT_MS: '120000',
      HEALTH_INTERVAL_MS: '250',
    });
    proc = started.proc;
    const url = started.url;
    await waitForHttpStatus(`${url}/health/live`, { status: 200, timeoutMs: LISTEN_TIMEOUT_MS, proc });
    const liveAt = Date.now();
    const pid = proc.pid;

    // Not connected: the readiness check names the database; the start-up probe waits for READY.
    await waitForEvent(proc, 'database.connect_failed', 10_000);
    const ready = await httpGet(`${url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toMatchObject({
      status: 'error',
      info: {},
      error: {
        lifecycle: { status: 'down', state: 'WARMING_UP' },
        database: { status: 'down', dependency: 'postgres', critical: true, kind: 'not_connected' },
      },
    });
    const startup = await httpGet(`${url}/health/startup`);
    expect(startup.status).toBe(503);
    expect(JSON.parse(startup.body)).toMatchObject({
      status: 'error',
      error: { lifecycle: { status: 'down', state: 'WARMING_UP' }, database: { status: 'down', dependency: 'postgres' } },
    });
    // A route that needs the database answers 503, not 500, and the process stays up.
    const orders = await httpGet(`${url}/orders`);
    expect({ status: orders.status, body: JSON.parse(orders.body) as unknown }).toEqual({
      status: 503,
      body: expect.objectContaining({ statusCode: 503, message: expect.stringMatching(/database/) }),
    });
    expect((await httpGet(`${url}/health/live`)).status).toBe(200);

    await delay(Math.max(0, liveAt + DATABASE_LATE_BY_MS - Date.now()));
    expect(proc.running).toBe(true);
    await postgres!.start();

    await waitForHttpStatus(`${url}/health/ready`, { status: 200, timeoutMs: 20_000, proc });
    expect(proc.pid).toBe(pid);
    expect(proc.running).toBe(true);
    expect((await httpGet(`${url}/health/startup`)).status).toBe(200);
    const list = await httpGet(`${url}/orders`);
    expect({ status: list.status, body: JSON.parse(list.body) as unknown }).toEqual({ status: 200, body: [] });
    const created = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: `tea-${adapter}` }),
    });
    expect(created.status).toBe(201);

    // Lines are written in batches: wait for the READY line before reading the output.
    await proc.waitForLine((line) => line.includes('"to":"READY"'), 5000);
    const { json, notJson } = parseLines(proc.stdout);
    expect(notJson).toEqual([]);
    expect(`${proc.stdout.join('\n')}\n${proc.stderr.join('\n')}`).not.toContain(ANSI_ESCAPE);
    expect(proc.stderr).toEqual([]);
    expect(json[0]).toMatchObject({ context: 'NestFactory', msg: 'Starting Nest application...' });
    const readyAt = json.findIndex((line) => line.event === 'lifecycle.state_changed' && line.to === 'READY');
    const boot = json.slice(0, readyAt + 1);
    expect(new Set(boot.map((line) => line.trace_id))).toEqual(new Set([json[readyAt].trace_id]));
    expect(json[readyAt].trace_id).toMatch(/^[0-9a-f]{32}$/);
    // The waits were logged as warnings, the connection once, and nothing at error level.
    expect(logEvents(proc.stdout, 'database.connect_failed').length).toBeGreaterThanOrEqual(2);
    expect(logEvents(proc.stdout, 'database.connected')).toEqual([expect.objectContaining({ dependency: 'postgres' })]);
    expect(json.filter((line) => (line.level as number) >= 50)).toEqual([]);
    expect(proc.stdout.join('\n')).not.toContain(postgres!.password);
  }, 120_000);

  it('gives up once DATABASE_CONNECT_TIMEOUT_MS has passed: exit 1, one JSON error line, a plain message on stderr', async () => {
    const password = 'pw-never-shown-4321';
    proc = (
      await startSampleProcess(`sample-no-db-${adapter}`, {
        ADAPTER: adapter,
        DATABASE_URL: `postgres://orders:${password}@127.0.0.1:${await freePort()}/orders`,
        DATABASE_CONNECT_TIMEOUT_MS: '1500',
      })
    ).proc;

    const exit = await proc.waitForExit(LISTEN_TIMEOUT_MS);
    expect(exit.code).toBe(1);
    const { json, notJson } = parseLines(proc.stdout);
    expect(notJson).toEqual([]);
    const errors = json.filter((line) => (line.level as number) >= 50);
    expect(errors).toEqual([
      expect.objectContaining({
        event: 'lifecycle.warmup_task_failed',
        task: 'database.connect',
        critical: true,
        error: expect.objectContaining({
          code: 'SAMPLE_DATABASE_UNAVAILABLE',
          message: expect.stringMatching(/^PostgreSQL did not answer within 1500 ms \(DATABASE_CONNECT_TIMEOUT_MS\)/),
        }),
      }),
    ]);
    expect(logEvents(proc.stdout, 'lifecycle.exit')).toEqual([expect.objectContaining({ code: 1 })]);
    expect(proc.stderr).toEqual([expect.stringMatching(/^Start-up failed: PostgreSQL did not answer within 1500 ms .*DATABASE_URL/)]);
    const output = `${proc.stdout.join('\n')}\n${proc.stderr.join('\n')}`;
    expect(output).not.toContain(ANSI_ESCAPE);
    expect(output).not.toContain(password);
  }, 90_000);
});

describe('the sample with an invalid environment', () => {
  let proc: ManagedProcess | undefined;

  afterEach(async () => {
    await proc?.stop('SIGKILL');
  });

  it('exits 1 with one JSON error line naming every bad variable and the same message, plainly, on stderr', async () => {
    proc = (await startSampleProcess('sample-bad-env', { DATABASE_URL: 'mysql://db/orders', DATABASE_CONNECT_TIMEOUT_MS: 'soon' })).proc;

    const exit = await proc.waitForExit(LISTEN_TIMEOUT_MS);
    expect(exit.code).toBe(1);
    const { json, notJson } = parseLines(proc.stdout);
    expect(notJson).toEqual([]);
    expect(json).toEqual([
      expect.objectContaining({
        level: 50,
        event: 'sample.start_failed',
        trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
        error: expect.objectContaining({ name: 'EnvValidationError', message: expect.stringMatching(/DATABASE_CONNECT_TIMEOUT_MS/) }),
      }),
    ]);
    expect(proc.stderr[0]).toBe('Start-up failed: Invalid environment (fix each and restart):');
    expect(proc.stderr.slice(1)).toEqual([
      expect.stringMatching(/^ {2}- DATABASE_URL: must start with postgres:\/\//),
      expect.stringMatching(/^ {2}- DATABASE_CONNECT_TIMEOUT_MS: must be a whole number/),
    ]);
    expect(`${proc.stdout.join('\n')}\n${proc.stderr.join('\n')}`).not.toContain(ANSI_ESCAPE);
  }, 90_000);
});
