import { ADAPTERS, SAMPLE_MAIN, ROOT } from './support/apps';
import { httpGet, waitForHttpStatus } from './support/http';
import { freePorts } from './support/ports';
import { ManagedProcess, startProcess } from './support/process';

/**
 * The built sample's probes on a management port of their own (PORT_MANAGEMENT), on both adapters:
 * served there, not on the public port, which keeps serving the application.
 */
interface Started {
  readonly proc: ManagedProcess;
  readonly url: string;
  readonly managementUrl: string | undefined;
}

async function startSampleProcess(
  name: string,
  env: Record<string, string | undefined>,
  readyUrl: (s: Omit<Started, 'proc'>) => string,
): Promise<Started> {
  const [port, managementPort] = await freePorts(2);
  const url = `http://127.0.0.1:${port}`;
  const managementUrl = env.PORT_MANAGEMENT !== undefined ? `http://127.0.0.1:${managementPort}` : undefined;
  const proc = startProcess({
    name,
    command: process.execPath,
    args: [SAMPLE_MAIN],
    cwd: ROOT,
    env: {
      MIN_READY_DELAY_MS: '0',
      DRAIN_DELAY_MS: '0',
      ...env,
      LISTEN_HOST: '127.0.0.1',
      PORT: String(port),
      ...(managementUrl ? { PORT_MANAGEMENT: String(managementPort) } : {}),
    },
  });
  try {
    await waitForHttpStatus(readyUrl({ url, managementUrl }), { status: 200, timeoutMs: 20_000, proc });
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return { proc, url, managementUrl };
}

describe.each(ADAPTERS)('the sample with a management port (%s)', (adapter) => {
  let sample: Started | undefined;

  beforeAll(async () => {
    sample = await startSampleProcess(
      `sample-management-${adapter}`,
      { ADAPTER: adapter, PORT_MANAGEMENT: 'set' },
      (s) => `${s.managementUrl}/health/ready`,
    );
  }, 30_000);

  afterAll(async () => {
    await sample?.proc.stop();
  }, 30_000);

  it('serves live, ready and startup on the management port', async () => {
    for (const probe of ['live', 'ready', 'startup']) {
      const answer = await httpGet(`${sample!.managementUrl}/health/${probe}`);
      expect(answer.status).toBe(200);
      expect(answer.headers['cache-control']).toBe('no-cache, no-store, must-revalidate');
    }
    const ready = JSON.parse((await httpGet(`${sample!.managementUrl}/health/ready`)).body) as Record<string, unknown>;
    expect(ready).toMatchObject({
      status: 'ok',
      info: { lifecycle: { status: 'up', state: 'READY' }, database: { status: 'up', dependency: 'sqlite' } },
    });
  });

  it('answers 404 for the probes on the public port, which keeps serving the application', async () => {
    for (const probe of ['live', 'ready', 'startup']) {
      expect((await httpGet(`${sample!.url}/health/${probe}`)).status).toBe(404);
    }
    expect((await httpGet(`${sample!.url}/orders`)).status).toBe(200);
  });

  it('serves nothing of the application on the management port', async () => {
    expect((await httpGet(`${sample!.managementUrl}/orders`)).status).toBe(404);
  });
});

describe('the sample with no settings at all', () => {
  it('keeps its orders in embedded SQLite and turns ready with the database checked', async () => {
    const sample = await startSampleProcess(
      'sample-defaults',
      { ADAPTER: undefined, DATABASE_URL: undefined, REDIS_URL: undefined, PORT_MANAGEMENT: undefined, MIN_READY_DELAY_MS: undefined },
      (s) => `${s.url}/health/ready`,
    );
    try {
      const created = await fetch(`${sample.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"item":"tea"}',
      });
      expect(created.status).toBe(201);
      expect(await (await fetch(`${sample.url}/orders`)).json()).toEqual([expect.objectContaining({ item: 'tea', quantity: 1 })]);
      const ready = JSON.parse((await httpGet(`${sample.url}/health/ready`)).body) as Record<string, unknown>;
      expect(ready).toMatchObject({ status: 'ok', info: { database: { status: 'up', dependency: 'sqlite', critical: true } } });
      expect(Object.keys(ready.info as object)).toEqual(['lifecycle', 'database']);
    } finally {
      await sample.proc.stop();
    }
  }, 30_000);
});
