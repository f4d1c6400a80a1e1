import { hostname } from 'node:os';
import { Etcd3 } from 'etcd3';
import { ADAPTERS, AppInstance, startSample } from './support/apps';
import { EtcdServer } from './support/etcd';
import { httpGet } from './support/http';
import { accepts, freePort } from './support/ports';
import { delay, logEvents } from './support/process';

/** The value of one exact series of a scrape. */
function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

/**
 * The built sample with REGISTRY_DRIVER=etcd against a real etcd, observed from this process: the
 * key appears only once the sample is ready (after its warm-up), /metrics says so, and on SIGTERM
 * the key is gone while the listener still accepts connections; the process then exits 0.
 */
describe('the sample with REGISTRY_DRIVER=etcd', () => {
  let etcd: EtcdServer;
  let observer: Etcd3;
  let app: AppInstance | undefined;

  beforeAll(async () => {
    etcd = await EtcdServer.start();
    observer = new Etcd3({ hosts: etcd.url });
  }, 30_000);

  afterEach(async () => {
    await app?.stop(1000);
    app = undefined;
  });

  afterAll(async () => {
    observer?.close();
    await etcd?.destroy();
  });

  it.each(ADAPTERS)(
    'on %s: registers after the warm-up, never before, and is gone before the listener closes',
    async (adapter) => {
      const port = await freePort();
      const key = `/services/orders/orders-${hostname()}-${port}`;
      // Ready to this helper means "listening": the test itself watches readiness and the registry.
      app = await startSample({
        name: `registry-sample-${adapter}`,
        adapter,
        port,
        readyUrl: `http://127.0.0.1:${port}/health/live`,
        env: { REGISTRY_DRIVER: 'etcd', ETCD_ENDPOINTS: etcd.url, WARMUP_DELAY_MS: '1500', DRAIN_DELAY_MS: '1000' },
      });

      // Each round reads the key, then readiness: a key seen while readiness still says 503 would be
      // a registration before READY (readiness only goes from 503 to 200 during start-up).
      let rounds = 0;
      for (const deadline = Date.now() + 15_000; Date.now() < deadline; rounds++) {
        const present = (await observer.get(key).string()) !== null;
        const ready = (await httpGet(`${app.url}/health/ready`)).status === 200;
        if (present) {
          expect(ready).toBe(true);
          break;
        }
        await delay(20);
      }
      expect(await observer.get(key).string()).not.toBeNull();
      // The warm-up's 1.5 s passed under observation (each round takes 20 ms and more).
      expect(rounds).toBeGreaterThan(10);
      expect(JSON.parse((await observer.get(key).string())!)).toMatchObject({ address: '127.0.0.1', port });

      const scrape = (await httpGet(`${app.url}/metrics`)).body;
      expect(metricValue(scrape, 'registry_registered{driver="etcd"}')).toBe(1);
      expect(metricValue(scrape, 'registry_operations_total{driver="etcd",operation="register",result="success"}')).toBe(1);

      // SIGTERM: the key must go while the listener still accepts (DRAIN_DELAY_MS keeps it open 1 s).
      let goneAt = 0;
      let closedAt = 0;
      app.process.signal('SIGTERM');
      for (const deadline = Date.now() + 10_000; !closedAt && Date.now() < deadline;) {
        if (!goneAt && (await observer.get(key).string()) === null) goneAt = Date.now();
        if (!(await accepts(port))) closedAt = Date.now();
        await delay(20);
      }
      expect(goneAt).toBeGreaterThan(0);
      expect(closedAt).toBeGreaterThan(goneAt);
      const exit = await app.process.waitForExit(10_000);
      expect(exit.code).toBe(0);
      const deregistered = logEvents(app.process.stdout, 'registry.deregistered');
      expect(deregistered[0]).toMatchObject({ reason: 'draining' });
      expect(deregistered[0].since_draining_ms).toBeLessThan(1000);
    },
    60_000,
  );
});
