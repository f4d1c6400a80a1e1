import { execFileSync, spawn } from 'node:child_process';
import { builtinModules } from 'node:module';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/**
 * Every lib is a real npm package: its imports are declared, and the tarball `npm pack` makes
 * installs and runs in an app outside this repository, on Nest 11 and on Nest 12.
 */
const ROOT = join(__dirname, '..');
const LIBS = readdirSync(join(ROOT, 'libs')).filter((name) =>
  statSync(join(ROOT, 'libs', name, 'package.json'), { throwIfNoEntry: false }),
);

interface Manifest {
  name: string;
  main?: string;
  types?: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function manifest(lib: string): Manifest {
  return JSON.parse(readFileSync(join(ROOT, 'libs', lib, 'package.json'), 'utf8')) as Manifest;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

function packageNameOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

describe('package manifests', () => {
  it.each(LIBS)('libs/%s declares every package its source imports', (lib) => {
    const m = manifest(lib);
    const declared = new Set([
      ...Object.keys(m.dependencies ?? {}),
      ...Object.keys(m.peerDependencies ?? {}),
      ...Object.keys(m.optionalDependencies ?? {}),
    ]);
    const missing: string[] = [];
    for (const file of sourceFiles(join(ROOT, 'libs', lib, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)'([^'.][^']*)'/g)) {
        const specifier = match[1];
        if (specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
        const name = packageNameOf(specifier);
        if (!declared.has(name)) missing.push(`${relative(ROOT, file)} imports ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it.each(LIBS)('libs/%s is named @nest-rollout/<lib> with Nest 11 and 12 as peers', (lib) => {
    const m = manifest(lib);
    expect(m.name).toBe(`@nest-rollout/${lib}`);
    expect(m.main).toBe('dist/index.js');
    expect(m.types).toBe('dist/index.d.ts');
    expect(m.peerDependencies?.['@nestjs/common']).toBe('^11.0.0 || ^12.0.0');
    expect(m.peerDependencies?.['@nestjs/core']).toBe('^11.0.0 || ^12.0.0');
  });
});

const OUTSIDE_APP = `
require('reflect-metadata');
const { Controller, Get, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { LifecycleModule, attachLifecycle } = require('@nest-rollout/lifecycle');
const { HealthModule } = require('@nest-rollout/health');
const { LoggingModule, Logger } = require('@nest-rollout/logging');

class HelloController { hello() { return { hello: 'world' }; } }
Get()(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello'));
Controller('hello')(HelloController);

class AppModule {}
Module({
  imports: [LoggingModule.forRoot(), LifecycleModule.forRoot({ drainDelayMs: 100, minReadyDelayMs: 0 }), HealthModule.forRoot()],
  controllers: [HelloController],
})(AppModule);

(async () => {
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  attachLifecycle(app);
  await app.listen(0, '127.0.0.1');
  process.stdout.write(JSON.stringify({ port: app.getHttpServer().address().port }) + '\\n');
})().catch((e) => { console.error(e); process.exit(1); });
`;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('packed tarballs outside the repository', () => {
  let packDir: string;
  let tarballs: string[];

  beforeAll(() => {
    packDir = mkdtempSync(join(tmpdir(), 'nest-rollout-pack-'));
    for (const lib of LIBS) {
      execFileSync('npm', ['pack', '--workspace', `libs/${lib}`, '--pack-destination', packDir, '--silent'], { cwd: ROOT, stdio: 'pipe' });
    }
    tarballs = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  }, 120_000);

  afterAll(() => rmSync(packDir, { recursive: true, force: true }));

  it('packs one tarball per lib, holding the build and no specs or sources', () => {
    expect(tarballs).toHaveLength(LIBS.length);
    for (const tarball of tarballs) {
      const files = execFileSync('tar', ['-tzf', join(packDir, tarball)], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
      expect(files).toContain('package/dist/index.js');
      expect(files).toContain('package/dist/index.d.ts');
      expect(files.filter((f) => /\.spec\.|\.ts$/.test(f) && !f.endsWith('.d.ts'))).toEqual([]);
    }
  });

  for (const nest of ['11', '12']) {
    it(`installs into a Nest ${nest} app and serves, turns ready and drains`, async () => {
      const appDir = mkdtempSync(join(tmpdir(), `nest-rollout-outside-nest${nest}-`));
      try {
        const dependencies: Record<string, string> = {
          '@nestjs/common': `^${nest}.0.0`,
          '@nestjs/core': `^${nest}.0.0`,
          '@nestjs/platform-express': `^${nest}.0.0`,
          'reflect-metadata': '^0.2.0',
          rxjs: '^7.8.0',
        };
        for (const tarball of tarballs) {
          const name = `@nest-rollout/${tarball.replace(/^nest-rollout-/, '').replace(/-\d+\.\d+\.\d+\.tgz$/, '')}`;
          dependencies[name] = `file:${join(packDir, tarball)}`;
        }
        writeFileSync(join(appDir, 'package.json'), JSON.stringify({ name: 'outside-app', private: true, dependencies }, null, 2));
        writeFileSync(join(appDir, 'main.js'), OUTSIDE_APP);
        execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: appDir, stdio: 'pipe' });
        const installed = JSON.parse(readFileSync(join(appDir, 'node_modules/@nestjs/core/package.json'), 'utf8')) as { version: string };
        expect(installed.version.split('.')[0]).toBe(nest);

        const child = spawn(process.execPath, ['main.js'], { cwd: appDir, stdio: ['ignore', 'pipe', 'pipe'] });
        try {
          let output = '';
          child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
          const port = await new Promise<number>((resolve, reject) => {
            child.stdout.on('data', (chunk: Buffer) => {
              output += chunk.toString();
              const match = output.match(/\{"port":(\d+)\}/);
              if (match) resolve(Number(match[1]));
            });
            child.once('exit', (code) => reject(new Error(`outside app exited with ${code}:\n${output}`)));
          });
          expect(await get(port, '/hello')).toEqual({ status: 200, body: '{"hello":"world"}' });
          const deadline = Date.now() + 10_000;
          let ready = await get(port, '/health/ready');
          while (ready.status !== 200 && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
            ready = await get(port, '/health/ready');
          }
          expect(ready.status).toBe(200);
          const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
          child.kill('SIGTERM');
          expect(await exited).toBe(0);
          expect(output).toContain('"event":"lifecycle.state_changed"');
        } finally {
          child.kill('SIGKILL');
        }
      } finally {
        rmSync(appDir, { recursive: true, force: true });
      }
    }, 240_000);
  }
});
