import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADAPTERS, AppInstance, ROOT, SAMPLE_MAIN, startSample } from './support/apps';
import { parseExposition } from './support/exposition';
import { httpGet, HttpAnswer } from './support/http';
import { accepts, freePort } from './support/ports';
import { delay, logEvents, startProcess } from './support/process';
import { waitUntil } from './support/wait';

/**
 * The sample's configuration end to end, on the built sample as a child process: an environment
 * that does not validate stops it before it listens, naming every bad variable and no value; the
 * dynamic configuration (a copy of config/dynamic.yaml) changes its behaviour while it runs, keeps
 * the last good version when the file breaks, and is re-read on SIGHUP without a shutdown.
 */

/** Node's start-up alone takes seconds on a busy machine; a generous bound that guards behaviour. */
const EXIT_TIMEOUT_MS = 60_000;

describe('the sample with several invalid variables', () => {
  it('exits non-zero before listening, naming every bad variable on stderr and no value', async () => {
    const port = await freePort();
    const password = 'hunter22-e2e';
    const proc = startProcess({
      name: 'sample-invalid-env',
      command: process.execPath,
      args: [SAMPLE_MAIN],
      cwd: ROOT,
      env: {
        LISTEN_HOST: '127.0.0.1',
        PORT: String(port),
        ADAPTER: 'koa',
        DATABASE_URL: `mysql://orders:${password}@db/orders`,
        REDIS_URL: `memcached://:${password}@cache`,
        HEALTH_INTERVAL_MS: 'often',
        APP_TRACK: 'beta',
      },
    });
    try {
      // Knocks on the port for as long as the process lives: it must never have answered.
      const knocks: boolean[] = [];
      while (proc.running) {
        knocks.push(await accepts(port));
        await delay(10);
      }
      const exit = await proc.waitForExit(EXIT_TIMEOUT_MS);
      expect(exit.code).not.toBe(0);
      expect(exit.code).not.toBeNull();
      expect(knocks.length).toBeGreaterThan(0);
      expect(knocks.filter(Boolean)).toEqual([]);

      expect(proc.stderr[0]).toBe('Start-up failed: Invalid environment (fix each and restart):');
      expect(proc.stderr.slice(1)).toEqual([
        '  - ADAPTER: must be "express" or "fastify"',
        '  - APP_TRACK: must be "stable" or "canary"',
        expect.stringMatching(/^ {2}- DATABASE_URL: must start with postgres:\/\//),
        expect.stringMatching(/^ {2}- REDIS_URL: must be a redis:\/\//),
        '  - HEALTH_INTERVAL_MS: must be a whole number from 10 to 3600000',
      ]);
      expect(logEvents(proc.stdout, 'sample.start_failed')).toEqual([
        expect.objectContaining({ error: expect.objectContaining({ name: 'EnvValidationError', code: 'CONFIG_INVALID_ENV' }) }),
      ]);
      expect(logEvents(proc.stdout, 'lifecycle.state_changed')).toEqual([]);
      expect(`${proc.stdout.join('\n')}\n${proc.stderr.join('\n')}`).not.toMatch(/hunter22|koa|often|beta|memcached/);
    } finally {
      await proc.stop('SIGKILL');
    }
  }, 90_000);
});

/** How long a change of the file may take to show in the answers (the source debounces 100 ms). */
const APPLY_WITHIN_MS = 1000;

describe.each(ADAPTERS)('the sample on %s with a dynamic configuration file', (adapter) => {
  let dir: string;
  let file: string;
  let app: AppInstance | undefined;

  /** Replaces the file as deploy tools and editors do (write aside, rename over), so that one change is one event. */
  function writeConfig(text: string): number {
    const aside = join(dir, '.dynamic.yaml.tmp');
    writeFileSync(aside, text);
    renameSync(aside, file);
    return Date.now();
  }

  const withOrdersList = (on: boolean, retryAfterSeconds = 30): string =>
    readFileSync(join(ROOT, 'config/dynamic.yaml'), 'utf8')
      .replace(/orders_list: \w+/, `orders_list: ${on}`)
      .replace(/retry_after_seconds: \d+/, `retry_after_seconds: ${retryAfterSeconds}`);

  /** The first answer of GET /orders with `status`, polled until `withinMs` after `since`. */
  async function ordersAnswer(status: number, since: number, withinMs = APPLY_WITHIN_MS): Promise<HttpAnswer & { afterMs: number }> {
    let last: HttpAnswer | undefined;
    while (Date.now() - since <= withinMs) {
      last = await httpGet(`${app!.url}/orders`);
      if (last.status === status) return { ...last, afterMs: Date.now() - since };
      await delay(20);
    }
    throw new Error(`GET /orders did not answer ${status} within ${withinMs} ms (last: ${last?.status})\n${app!.process.describe()}`);
  }

  /** `config_reloads_total` by `source/result`, and the version in force, as a scraper sees them. */
  async function configMetrics(): Promise<{ reloads: Record<string, number>; version: string | undefined }> {
    const samples = parseExposition((await httpGet(`${app!.url}/metrics`)).body);
    const reloads: Record<string, number> = {};
    for (const s of samples.filter((s) => s.name === 'config_reloads_total')) reloads[`${s.labels.source}/${s.labels.result}`] = s.value;
    const info = samples.find((s) => s.name === 'config_info' && s.value === 1);
    return { reloads, version: info?.labels.hash };
  }

  const eventsOf = (event: string) => logEvents(app!.process.stdout, event);

  /** The sample's log lines reach stdout in batches (up to a second apart): waits for the `count`-th `event`. */
  async function eventsAfterWait(event: string, count: number): Promise<Record<string, unknown>[]> {
    await waitUntil(() => eventsOf(event).length >= count, `${count} ${event} log line(s)`, 5000);
    return eventsOf(event);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nest-rollout-dynamic-'));
    file = join(dir, 'dynamic.yaml');
    copyFileSync(join(ROOT, 'config/dynamic.yaml'), file);
    app = await startSample({ name: `sample-dynamic-${adapter}`, adapter, env: { DYNAMIC_CONFIG_FILE: file, DRAIN_DELAY_MS: '0' } });
  }, 60_000);

  afterAll(async () => {
    await app?.stop(2000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads the file at start-up, every switch off', async () => {
    expect(await eventsAfterWait('config.loaded', 1)).toEqual([expect.objectContaining({ sources: [file], keys: ['canary', 'degrade'] })]);
    expect((await httpGet(`${app!.url}/orders`)).status).toBe(200);
    expect((await configMetrics()).reloads).toEqual({});
  });

  it('answers GET /orders 503 with Retry-After within a second of the switch turning on, and 200 once it is off again', async () => {
    const on = await ordersAnswer(503, writeConfig(withOrdersList(true)));
    expect(on.headers['retry-after']).toBe('30');
    expect(JSON.parse(on.body)).toMatchObject({ statusCode: 503, message: expect.stringContaining('degrade.orders_list') });
    expect((await httpGet(`${app!.url}/orders/1`)).status).not.toBe(503);

    const off = await ordersAnswer(200, writeConfig(withOrdersList(false)));
    expect(off.headers['retry-after']).toBeUndefined();
    expect(await eventsAfterWait('config.applied', 2)).toEqual([
      expect.objectContaining({ source: 'file', changedKeys: ['degrade.orders_list'], values: { 'degrade.orders_list': true } }),
      expect.objectContaining({ source: 'file', changedKeys: ['degrade.orders_list'], values: { 'degrade.orders_list': false } }),
    ]);
    expect((await configMetrics()).reloads).toEqual({ 'file/applied': 2 });
  });

  it('keeps serving with the last good configuration when the file breaks or does not validate', async () => {
    const degraded = await ordersAnswer(503, writeConfig(withOrdersList(true, 7)));
    expect(degraded.headers['retry-after']).toBe('7');
    const goodVersion = (await configMetrics()).version;

    writeConfig('degrade:\n  orders_list: [\n');
    expect(await eventsAfterWait('config.source_failed', 1)).toEqual([
      expect.objectContaining({ source: 'file', failure: 'parse', version: goodVersion }),
    ]);
    writeConfig(withOrdersList(true, 7).replace('orders_list: true', 'orders_list: maybe'));
    expect(await eventsAfterWait('config.rejected', 1)).toEqual([
      expect.objectContaining({ source: 'file', version: goodVersion, problems: [expect.stringMatching(/^degrade\.orders_list: /)] }),
    ]);

    expect(app!.process.running).toBe(true);
    const still = await httpGet(`${app!.url}/orders`);
    expect([still.status, still.headers['retry-after']]).toEqual([503, '7']);
    expect(await configMetrics()).toEqual({
      reloads: { 'file/applied': 3, 'file/failed': 1, 'file/rejected': 1 },
      version: goodVersion,
    });

    await ordersAnswer(200, writeConfig(withOrdersList(false)));
    expect((await configMetrics()).reloads).toMatchObject({ 'file/applied': 4 });
  });

  it('reads the file again on SIGHUP and goes on serving, ready, without starting a shutdown', async () => {
    const before = await configMetrics();
    app!.process.signal('SIGHUP');
    await waitUntil(async () => (await configMetrics()).reloads['reload/unchanged'] === 1, 'the reload to be counted', 5000);

    expect(await eventsAfterWait('config.reload_signal', 1)).toEqual([expect.objectContaining({ signal: 'SIGHUP' })]);
    expect(app!.process.running).toBe(true);
    expect((await httpGet(`${app!.url}/health/ready`)).status).toBe(200);
    expect((await httpGet(`${app!.url}/orders`)).status).toBe(200);
    expect(logEvents(app!.process.stdout, 'lifecycle.state_changed').map((e) => e.to)).toEqual(['WARMING_UP', 'READY']);
    expect(await configMetrics()).toEqual({ reloads: { ...before.reloads, 'reload/unchanged': 1 }, version: before.version });
  });
});
