import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { ADAPTERS, AppInstance, ensureFixturesBuilt, ROOT, SAMPLE_MAIN, startApp, startSample } from './support/apps';
import { parseExposition, valueOf } from './support/exposition';
import { httpGet, HttpAnswer } from './support/http';
import { logEvents, startProcess } from './support/process';
import { waitUntil } from './support/wait';

/**
 * The lifecycle end to end: the built sample as a child process, real signals, real sockets.
 * Timing assertions are generous bounds that guard behaviour, not speed.
 */
const HOOKS_APP_MAIN = join(ROOT, 'dist/test/fixtures/hooks-app.js');

function get(url: string, agent: Agent): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`GET ${url}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

/** Requests the sample is serving now, as its /metrics counts them (the scrape itself left out). */
async function inFlight(app: AppInstance): Promise<number> {
  const scrape = await httpGet(`${app.url}/metrics`);
  return valueOf(parseExposition(scrape.body), 'http_requests_in_flight') ?? 0;
}

describe.each(ADAPTERS)('the sample on %s, stopped with SIGTERM', (adapter) => {
  let app: AppInstance | undefined;
  afterEach(async () => {
    await app?.stop(1000);
    app = undefined;
  });

  it('finishes in-flight requests, answers readiness 503 at once, keeps serving with Connection: close during the drain delay, exits 0', async () => {
    app = await startSample({ name: `sample-${adapter}`, adapter, env: { DRAIN_DELAY_MS: '1500', SHUTDOWN_TIMEOUT_MS: '8000' } });
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 8 });
    try {
      // Warm a keep-alive socket before the drain, as a load balancer's pool would hold one.
      const before = await get(`${app.url}/orders`, keepAlive);
      expect(before.status).toBe(200);
      expect(before.headers.connection).toBe('keep-alive');

      const slow = Array.from({ length: 5 }, () => get(`${app!.url}/demo/slow?ms=2500`, new Agent({ keepAlive: true })));
      await waitUntil(async () => (await inFlight(app!)) >= 5, 'the five slow requests to be in flight', 5000);
      const signalledAt = Date.now();
      app.process.signal('SIGTERM');

      let ready = await httpGet(`${app.url}/health/ready`);
      while (ready.status === 200 && Date.now() - signalledAt < 2000) ready = await httpGet(`${app.url}/health/ready`);
      expect(ready.status).toBe(503);
      expect(Date.now() - signalledAt).toBeLessThan(1000);

      const live = await httpGet(`${app.url}/health/live`);
      expect(live.status).toBe(200);
      const during = await get(`${app.url}/orders`, keepAlive);
      expect(during.status).toBe(200);
      expect(during.headers.connection).toBe('close');

      const answers = await Promise.all(slow);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
      expect(answers.every((a) => a.headers.connection === 'close')).toBe(true);

      const exit = await app.process.waitForExit(15_000);
      expect(exit.code).toBe(0);
      const sequence = logEvents(app.process.stdout, 'lifecycle.state_changed').map((e) => e.to);
      expect(sequence).toEqual(['WARMING_UP', 'READY', 'DRAINING', 'STOPPING', 'STOPPED']);
      const draining = logEvents(app.process.stdout, 'lifecycle.state_changed').find((e) => e.to === 'STOPPING');
      expect(Number(draining?.duration_ms)).toBeGreaterThanOrEqual(1500);
      expect(logEvents(app.process.stdout, 'lifecycle.requests_cut')).toEqual([]);
    } finally {
      keepAlive.destroy();
    }
  }, 40_000);

  it('skips the rest of the drain delay on a second SIGTERM', async () => {
    app = await startSample({ name: `sample-${adapter}`, adapter, env: { DRAIN_DELAY_MS: '60000' } });
    app.process.signal('SIGTERM');
    await app.process.waitForLine(/"to":"DRAINING"/, 5000);
    const secondAt = Date.now();
    app.process.signal('SIGTERM');
    const exit = await app.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
    expect(exit.at - secondAt).toBeLessThan(8000);
    expect(logEvents(app.process.stdout, 'lifecycle.drain_delay_skipped')).toHaveLength(1);
  }, 30_000);

  it('exits at once with the cut requests logged when they outlive the shutdown timeout', async () => {
    app = await startSample({ name: `sample-${adapter}`, adapter, env: { DRAIN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '300' } });
    const slow = get(`${app.url}/demo/slow?ms=10000`, new Agent()).catch((error: Error) => error);
    await waitUntil(async () => (await inFlight(app!)) >= 1, 'the slow request to be in flight', 5000);
    app.process.signal('SIGTERM');
    const exit = await app.process.waitForExit(8000);
    expect(exit.code).toBe(0);
    // The connection was force-closed under the request: the client sees a reset, not a response.
    expect(String(await slow)).toMatch(/socket hang up|ECONNRESET/);
    const cut = logEvents(app.process.stdout, 'lifecycle.requests_cut');
    expect(cut).toHaveLength(1);
    expect(cut[0].requests).toEqual([expect.objectContaining({ method: 'GET', url: '/demo/slow?ms=10000' })]);
  }, 30_000);
});

describe.each(ADAPTERS)('shutdown hooks on %s', (adapter) => {
  beforeAll(() => ensureFixturesBuilt(), 120_000);
  let app: AppInstance | undefined;
  afterEach(async () => {
    await app?.stop(1000);
    app = undefined;
  });

  it('logs a hook that throws and still runs the others, then exits 0', async () => {
    app = await startApp({
      name: 'hooks-throw',
      script: HOOKS_APP_MAIN,
      env: { ADAPTER: adapter, HOOK_FAULT: 'throw', DRAIN_DELAY_MS: '0' },
    });
    app.process.signal('SIGTERM');
    const exit = await app.process.waitForExit(10_000);
    expect(exit.code).toBe(0);
    const failed = logEvents(app.process.stderr, 'lifecycle.hook_failed');
    expect(failed).toEqual([expect.objectContaining({ hook: 'onModuleDestroy', provider: 'FaultyHook' })]);
    expect(app.process.stdout.some((line) => line.includes('later hook ran'))).toBe(true);
  }, 30_000);

  it('ends a hanging hook at the hard deadline with a non-zero code and says what held the process', async () => {
    app = await startApp({
      name: 'hooks-hang',
      script: HOOKS_APP_MAIN,
      env: {
        ADAPTER: adapter,
        HOOK_FAULT: 'hang',
        DRAIN_DELAY_MS: '0',
        SHUTDOWN_TIMEOUT_MS: '200',
        HOOK_TIMEOUT_MS: '200',
        DRAIN_TASK_TIMEOUT_MS: '200',
        HARD_DEADLINE_MS: '2000',
      },
    });
    const signalledAt = Date.now();
    app.process.signal('SIGTERM');
    const exit = await app.process.waitForExit(10_000);
    expect(exit.code).toBe(1);
    expect(exit.at - signalledAt).toBeGreaterThanOrEqual(1900);
    const deadline = logEvents(app.process.stderr, 'lifecycle.deadline_exceeded');
    expect(deadline).toHaveLength(1);
    expect(deadline[0].state).toBe('STOPPING');
    expect(Array.isArray(deadline[0].active_resources)).toBe(true);
  }, 30_000);
});

describe('invalid options', () => {
  it('fail start-up with one message naming each problem', async () => {
    const proc = startProcess({
      name: 'sample-invalid',
      command: process.execPath,
      args: [SAMPLE_MAIN],
      env: { PORT: '0', LISTEN_HOST: '127.0.0.1', DRAIN_DELAY_MS: '20000', HARD_DEADLINE_MS: '1000', ADAPTER: 'express' },
    });
    const exit = await proc.waitForExit(15_000);
    expect(exit.code).toBe(1);
    // A plain message on stderr; JSON lines on stdout; no coloured stack dump anywhere.
    const stderr = proc.stderr.join('\n');
    expect(stderr).toContain('Invalid LifecycleModule options');
    expect(stderr).toContain('hardDeadlineMs: 1000 ms is shorter than the shutdown it must cover');
    expect(proc.stdout.filter((line) => !line.startsWith('{'))).toEqual([]);
    expect([...proc.stdout, ...proc.stderr].join('\n')).not.toContain('\u001b[');
  }, 30_000);

  it('fail start-up naming the bad environment variable', async () => {
    const proc = startProcess({
      name: 'sample-bad-env',
      command: process.execPath,
      args: [SAMPLE_MAIN],
      env: { PORT: '0', ADAPTER: 'koa', DRAIN_DELAY_MS: 'soon' },
    });
    const exit = await proc.waitForExit(15_000);
    expect(exit.code).toBe(1);
    const output = proc.stderr.join('\n');
    expect(output).toContain('ADAPTER: must be "express" or "fastify"');
    expect(output).toContain('DRAIN_DELAY_MS: must be a whole number');
  }, 30_000);
});
