import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './support/apps';
import { httpGet, waitForHttpStatus } from './support/http';
import { freePort } from './support/ports';
import { logEvents, startProcess } from './support/process';

interface NestCliProject {
  type: 'application' | 'library';
  root: string;
  sourceRoot: string;
  compilerOptions?: { tsConfigPath?: string };
}

/** The Nest CLI's monorepo mode: a project for every lib and app, and `nest start sample` runs the sample. */
describe('nest-cli.json', () => {
  const cli = JSON.parse(readFileSync(join(ROOT, 'nest-cli.json'), 'utf8')) as {
    monorepo: boolean;
    root: string;
    projects: Record<string, NestCliProject>;
  };
  const buildConfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { references: { path: string }[] };

  it('is in monorepo mode with the sample as its default project', () => {
    expect(cli.monorepo).toBe(true);
    expect(cli.root).toBe(cli.projects.sample.root);
  });

  it('has a project for every lib and app that `npm run build` builds, with that tsconfig', () => {
    const built = buildConfig.references.map((ref) => ref.path).sort();
    const projects = Object.values(cli.projects)
      .map((p) => p.compilerOptions?.tsConfigPath)
      .sort();
    expect(projects).toEqual(built);
    for (const [name, project] of Object.entries(cli.projects)) {
      expect(project.sourceRoot).toBe(`${project.root}/src`);
      expect(project.root).toBe(`${project.type === 'library' ? 'libs' : 'apps'}/${name}`);
    }
  });

  it('`nest start sample` builds and runs the sample, which drains and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const proc = startProcess({
      name: 'nest-start',
      command: process.execPath,
      args: [join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'start', 'sample'],
      cwd: ROOT,
      env: { PORT: String(port), LISTEN_HOST: '127.0.0.1', DRAIN_DELAY_MS: '0', MIN_READY_DELAY_MS: '0' },
    });
    try {
      await waitForHttpStatus(`http://127.0.0.1:${port}/health/ready`, { status: 200, timeoutMs: 180_000, proc });
      expect((await httpGet(`http://127.0.0.1:${port}/orders`)).status).toBe(200);
      // Standard output is buffered (up to a second): wait for the line rather than read at once.
      const attached = logEvents([await proc.waitForLine((line) => logEvents([line], 'lifecycle.attached').length > 0, 5_000)])[0];
      const pid = Number(/-(\d+)$/.exec(String(attached?.instance_id))?.[1]);
      process.kill(pid, 'SIGTERM');
      await proc.waitForLine((line) => logEvents([line], 'lifecycle.exit').some((exit) => exit.code === 0), 20_000);
    } finally {
      await proc.stop('SIGTERM', 5_000);
    }
  }, 240_000);
});
