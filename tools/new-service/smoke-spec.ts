import type { ServiceNames } from './service-name';

/**
 * The end-to-end spec a new service gets in test/services/: its build started as a real process on
 * both adapters, ready, logging under its own name, draining and exiting 0 on SIGTERM. It touches
 * nothing of the orders domain, so it stays true when the team replaces the example.
 */
export function smokeSpec(names: ServiceNames): string {
  return `import { join } from 'node:path';
import { ADAPTERS, Adapter, AppInstance, ROOT, startApp } from '../support/apps';
import { httpGet } from '../support/http';
import { logEvents } from '../support/process';

/**
 * ${names.kebab}, generated from apps/sample (npm run new:service): its build (npm run build first),
 * started as a real process on each adapter, turns ready on embedded defaults, logs every line as
 * ${names.kebab}, and drains and exits 0 on SIGTERM.
 */
const SERVICE = '${names.kebab}';
const MAIN = join(ROOT, 'dist/apps', SERVICE, 'main.js');
/** Embedded defaults, with short delays: ready soon after listening, a short drain. */
const ENV = { MIN_READY_DELAY_MS: '100', DRAIN_DELAY_MS: '300' };

describe.each(ADAPTERS)(\`\${SERVICE} on %s\`, (adapter: Adapter) => {
  let app: AppInstance | undefined;

  afterEach(async () => {
    await app?.stop();
    app = undefined;
  }, 15_000);

  it('turns ready, serves its probes and metrics, logs every line as itself, and drains to exit 0 on SIGTERM', async () => {
    app = await startApp({ name: \`\${SERVICE}-\${adapter}\`, script: MAIN, env: { ...ENV, ADAPTER: adapter } });
    expect((await httpGet(\`\${app.url}/health/live\`)).status).toBe(200);
    expect((await httpGet(\`\${app.url}/health/startup\`)).status).toBe(200);
    expect((await httpGet(\`\${app.url}/metrics\`)).body).toMatch(/^lifecycle_state\\{state="READY"\\} 1$/m);

    app.process.signal('SIGTERM');
    const exit = await app.process.waitForExit(15_000);
    expect(exit.code).toBe(0);
    const lines = logEvents(app.process.stdout);
    expect(lines.filter((line) => line.event === 'lifecycle.exit')).toEqual([expect.objectContaining({ code: 0 })]);
    expect(lines.filter((line) => line.service !== SERVICE)).toEqual([]);
  }, 30_000);
});
`;
}
