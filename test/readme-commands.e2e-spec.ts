import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './support/apps';
import { httpGet, waitForHttpStatus } from './support/http';
import { freePort } from './support/ports';
import { logEvents, ManagedProcess, startProcess } from './support/process';
import { cleanCopy, newcomerEnvironment } from './support/repository';

/**
 * The README's two commands, as a newcomer runs them. The first runs exactly as written, through
 * npm and a shell, with its output piped (as under CI, Docker or systemd), in a clean copy of the
 * repository: no node_modules, no build. The second is what CI runs.
 */
function readmeCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The two commands'));
  const block = /```bash\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error('README.md has no bash block under "The two commands"');
  return block[1]
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

describe('the README', () => {
  const [start, test] = readmeCommands();

  it('documents two commands: one that starts the sample, one that runs the tests', () => {
    expect(readmeCommands()).toHaveLength(2);
    expect(start).toMatch(/npm start/);
    expect(test).toBe('npm test');
  });

  it('is what CI runs for the tests', () => {
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    expect(ci).toMatch(new RegExp(`^${test.replace(/ /g, '\\s+')}\\b`, 'm'));
  });

  describe(`"${start}" in a clean copy of the repository`, () => {
    let copy: string;
    let proc: ManagedProcess | undefined;
    let port: number;

    beforeAll(async () => {
      copy = cleanCopy();
      port = await freePort();
      // PORT only moves the service off 3000, which another process on a CI machine may hold.
      proc = startProcess({
        name: 'npm-start',
        command: 'bash',
        args: ['-c', start],
        cwd: copy,
        env: newcomerEnvironment({ PORT: String(port) }),
      });
      await waitForHttpStatus(`http://127.0.0.1:${port}/health/ready`, { status: 200, timeoutMs: 600_000, proc });
    }, 660_000);

    afterAll(async () => {
      await proc?.stop('SIGTERM', 10_000);
      rmSync(copy, { recursive: true, force: true });
    }, 30_000);

    it('serves the orders and turns ready on embedded defaults', async () => {
      const orders = await httpGet(`http://127.0.0.1:${port}/orders`);
      expect(orders.status).toBe(200);
      expect(Array.isArray(JSON.parse(orders.body))).toBe(true);
      expect((await httpGet(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);
    });

    it('logs JSON lines with the lifecycle reaching READY, and no error', async () => {
      // Standard output is buffered (up to a second): wait for the line rather than read at once.
      await proc!.waitForLine((line) => logEvents([line], 'lifecycle.state_changed').some((e) => e.to === 'READY'), 5_000);
      const ready = logEvents(proc!.stdout, 'lifecycle.state_changed').filter((e) => e.to === 'READY');
      expect(ready).toHaveLength(1);
      expect(proc!.stderr.filter((line) => /error/i.test(line))).toEqual([]);
    });

    it('drains and exits 0 on SIGTERM, and npm with it', async () => {
      // The signal goes to the service, as Kubernetes sends it to a container's main process; npm
      // and the shell around it end with the service's own exit code.
      const attached = logEvents([await proc!.waitForLine((line) => logEvents([line], 'lifecycle.attached').length > 0, 5_000)])[0];
      const pid = Number(/-(\d+)$/.exec(String(attached?.instance_id))?.[1]);
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGTERM');
      const exit = await proc!.waitForExit(30_000);
      expect(exit.code).toBe(0);
      expect(logEvents(proc!.stdout, 'lifecycle.exit')).toEqual([expect.objectContaining({ code: 0 })]);
    }, 40_000);
  });
});
