import { execFileSync } from 'node:child_process';
import { ADAPTERS, AppInstance, startSample } from './support/apps';
import { httpGet } from './support/http';
import { freePort } from './support/ports';

/**
 * The running sample's /metrics after traffic of known shape, on both adapters: exact histogram
 * counts, route templates (never raw URLs), unknown paths folded into one label value, and output
 * that promtool accepts.
 */
function count(text: string, method: string, route: string, status: number): number {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`http_request_duration_seconds_count{method="${method}",route="${route}",status_code="${status}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

function routeLabels(text: string): string[] {
  const routes = new Set<string>();
  for (const match of text.matchAll(/^http_request_duration_seconds_count\{[^}]*route="([^"]*)"/gm)) routes.add(match[1]);
  return [...routes].sort();
}

describe.each(ADAPTERS)('/metrics of the sample on %s', (adapter) => {
  let app: AppInstance | undefined;
  afterEach(async () => {
    await app?.stop(1000);
    app = undefined;
  });

  it('counts requests by route template and status, folds unknown paths into one value, and passes promtool', async () => {
    app = await startSample({ name: `metrics-${adapter}`, adapter, env: { DRAIN_DELAY_MS: '0' } });
    for (const item of ['tea', 'cake']) {
      const res = await fetch(`${app.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ item }),
      });
      expect(res.status).toBe(201);
    }
    const statuses: number[] = [];
    for (let id = 1; id <= 7; id++) statuses.push((await httpGet(`${app.url}/orders/${id}`)).status);
    expect(statuses).toEqual([200, 200, 404, 404, 404, 404, 404]);
    expect((await httpGet(`${app.url}/no/such/path`)).status).toBe(404);

    const scrape = await httpGet(`${app.url}/metrics`);
    expect(scrape.status).toBe(200);
    const text = scrape.body;
    expect(count(text, 'POST', '/orders', 201)).toBe(2);
    expect(count(text, 'GET', '/orders/:id', 200)).toBe(2);
    expect(count(text, 'GET', '/orders/:id', 404)).toBe(5);
    expect(count(text, 'GET', 'unmatched', 404)).toBe(1);
    // The probes startSample polled are counted too; raw ids and the unknown path are not labels.
    expect(routeLabels(text).filter((r) => !r.startsWith('/health'))).toEqual(['/orders', '/orders/:id', 'unmatched']);

    for (const path of ['/other', '/x/y/z']) await httpGet(`${app.url}${path}`);
    const again = (await httpGet(`${app.url}/metrics`)).body;
    expect(routeLabels(again)).toEqual(routeLabels(text));
    expect(count(again, 'GET', 'unmatched', 404)).toBe(3);
    // The scrape is not in its own histogram.
    expect(again).not.toContain('route="/metrics"');
    // Health publishes its readiness changes itself: one, at READY, however many probes were answered.
    expect(again).toMatch(/^health_readiness_changes_total\{ready="true"\} 1$/m);
    expect(again).not.toMatch(/^health_readiness_changes_total\{ready="false"\}/m);

    const check = execFileSync('promtool', ['check', 'metrics'], { input: again, encoding: 'utf8' });
    expect(check).not.toMatch(/error|problem/i);
  }, 60_000);

  it('moves /metrics to the management port with the probes', async () => {
    const managementPort = await freePort();
    app = await startSample({
      name: `metrics-mgmt-${adapter}`,
      adapter,
      env: { DRAIN_DELAY_MS: '0', PORT_MANAGEMENT: String(managementPort) },
      readyUrl: `http://127.0.0.1:${managementPort}/health/ready`,
    });
    expect((await httpGet(`http://127.0.0.1:${managementPort}/metrics`)).body).toContain('http_request_duration_seconds');
    expect((await httpGet(`${app.url}/metrics`)).status).toBe(404);
  }, 60_000);
});
