import { execFileSync, spawn } from 'node:child_process';
import { builtinModules } from 'node:module';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  createCompilerHost,
  createProgram,
  createSourceFile,
  displayPartsToString,
  flattenDiagnosticMessageText,
  getParsedCommandLineOfConfigFile,
  getPreEmitDiagnostics,
  isCallExpression,
  preProcessFile,
  sys,
  TypeFlags,
  type CompilerOptions,
  type Expression,
  type Symbol as TsSymbol,
  type Type,
  type TypeChecker,
  type TypeReference,
} from 'typescript';

/**
 * Every lib is a real npm package: its imports are declared, and the tarball `npm pack` makes
 * installs and runs in an app outside this repository, on Nest 11 and on Nest 12, with either adapter.
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

  /**
   * Declared packages that no shipped file of a lib names in an import, and why each is needed all
   * the same (`*`: every lib). Anything else declared and never imported is dead weight in every
   * user's install.
   */
  const NEEDED_WITHOUT_IMPORT: Readonly<Record<string, Readonly<Record<string, string>>>> = {
    '*': {
      'reflect-metadata': "a peer of @nestjs/common: Nest's decorators read and write their metadata through it at run time",
    },
    health: {
      '@grpc/grpc-js': "optional: Nest's gRPC transport (grpc: true) and terminus' gRPC indicator (grpcCheck) load it by name",
      '@grpc/proto-loader': "optional: Nest's gRPC transport and terminus' gRPC indicator load it by name, with @grpc/grpc-js",
      '@nestjs/typeorm': "optional: terminus' TypeOrmHealthIndicator, which typeOrmCheck runs, loads it by name",
      typeorm: "optional: terminus' TypeOrmHealthIndicator requires it next to @nestjs/typeorm",
    },
    config: {
      '@nestjs/core': 'the runtime that builds its modules: every nest-rollout lib names the Nest 11 or 12 pair it supports',
    },
    logging: {
      'pino-http': 'a required peer of nestjs-pino, which loads it as soon as nestjs-pino itself is loaded',
      rxjs: 'a required peer of nestjs-pino',
    },
  };

  /** The packages the lib's shipped files import (statically, by `import()` or by `require()`), type-only imports included. */
  function shippedImports(lib: string): Set<string> {
    const files = sourceFiles(join(ROOT, 'libs', lib, 'src')).filter(
      (file) => !file.endsWith('.spec-helper.ts') && !relative(ROOT, file).split(/[\\/]/).includes('testing'),
    );
    const names = new Set<string>();
    for (const file of files) {
      for (const { fileName } of preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
        if (!fileName.startsWith('.') && !fileName.startsWith('node:') && !builtinModules.includes(fileName)) {
          names.add(packageNameOf(fileName));
        }
      }
    }
    return names;
  }

  it.each(LIBS)('libs/%s declares no package its source never imports, unless a reason is listed here', (lib) => {
    const m = manifest(lib);
    const imported = shippedImports(lib);
    const excused = { ...NEEDED_WITHOUT_IMPORT['*'], ...NEEDED_WITHOUT_IMPORT[lib] };
    const declared = [
      ...Object.keys(m.dependencies ?? {}).map((name) => ({ name, kind: 'dependency' })),
      ...Object.keys(m.peerDependencies ?? {}).map((name) => ({ name, kind: 'peer dependency' })),
      ...Object.keys(m.optionalDependencies ?? {}).map((name) => ({ name, kind: 'optional dependency' })),
    ];
    const unused = declared
      .filter(({ name }) => !imported.has(name) && !(name in excused))
      .map(({ name, kind }) => `${kind} ${name}: nothing in libs/${lib}/src imports it`);
    expect(unused).toEqual([]);
    // The excuses stay true: each names a package the lib declares and does not import.
    const stale = Object.keys(excused).filter((name) => imported.has(name) || !declared.some((d) => d.name === name));
    expect(stale).toEqual([]);
  });

  it.each(LIBS)('libs/%s is named @nest-rollout/<lib> with Nest 11 and 12 as peers', (lib) => {
    const m = manifest(lib);
    expect(m.name).toBe(`@nest-rollout/${lib}`);
    expect(m.main).toBe('dist/index.js');
    expect(m.types).toBe('dist/index.d.ts');
    expect(m.peerDependencies?.['@nestjs/common']).toBe('^11.0.0 || ^12.0.0');
    expect(m.peerDependencies?.['@nestjs/core']).toBe('^11.0.0 || ^12.0.0');
  });

  /** Libs with module options (`<lib>.options.ts`, read by `<Lib>Module.forRoot()`). */
  const LIBS_WITH_OPTIONS = LIBS.filter((lib) => statSync(join(ROOT, 'libs', lib, 'src', `${lib}.options.ts`), { throwIfNoEntry: false }));

  interface OptionDocs {
    /** Type errors in `<Lib>Module.forRoot({})` (say, no such module), which would leave nothing to compare. */
    problems: string[];
    /** Option path (`consul.check.ttlMs`, `readiness[].timeoutMs`) to its JSDoc text and tags. */
    docs: Record<string, string>;
  }

  /**
   * What an editor shows for each option of `<Lib>Module.forRoot({ ... })`, nested options included.
   * `build` reads the published declarations (the packages in node_modules point at dist/), as a
   * user's install does; `source` the sources, through the repository's path mapping.
   */
  const optionDocsCache = new Map<'source' | 'build', Map<string, OptionDocs>>();
  function optionDocs(from: 'source' | 'build'): Map<string, OptionDocs> {
    const cached = optionDocsCache.get(from);
    if (cached) return cached;
    const moduleName = (lib: string) => `${lib[0].toUpperCase()}${lib.slice(1)}Module`;
    const probes = new Map(
      LIBS_WITH_OPTIONS.map((lib) => [
        join(ROOT, 'test', `${lib}.option-docs.probe.ts`),
        `import { ${moduleName(lib)} } from '@nest-rollout/${lib}';\n${moduleName(lib)}.forRoot({});\n`,
      ]),
    );
    const configHost = { ...sys, onUnRecoverableConfigFileDiagnostic: () => {} };
    const options: CompilerOptions = {
      ...getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, configHost)?.options,
      noEmit: true,
    };
    if (from === 'build') delete options.paths;
    const host = createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.getSourceFile = (name, ...rest) => {
      const probe = probes.get(name);
      return probe === undefined ? getSourceFile.call(host, name, ...rest) : createSourceFile(name, probe, rest[0]);
    };
    host.fileExists = (name) => probes.has(name) || fileExists.call(host, name);
    host.readFile = (name) => probes.get(name) ?? readFile.call(host, name);
    const program = createProgram([...probes.keys()], options, host);
    const checker = program.getTypeChecker();

    const result = new Map<string, OptionDocs>();
    [...probes.keys()].forEach((fileName, index) => {
      const lib = LIBS_WITH_OPTIONS[index];
      const probe = program.getSourceFile(fileName);
      const problems = getPreEmitDiagnostics(program, probe).map((d) => flattenDiagnosticMessageText(d.messageText, '\n'));
      const docs: Record<string, string> = {};
      const libDir = `${join(ROOT, 'libs', lib)}/`;
      const walk = (type: Type, prefix: string, depth: number): void => {
        for (const option of checker.getPropertiesOfType(type)) {
          // Only options this lib declares: not the members of a prom-client Registry or a Buffer.
          if (!option.declarations?.some((d) => d.getSourceFile().fileName.startsWith(libDir))) continue;
          const path = `${prefix}${option.name}`;
          docs[path] = describeSymbol(checker, option);
          if (depth === 6) continue;
          for (const nested of objectTypesOf(checker, checker.getTypeOfSymbol(option))) {
            walk(nested.type, `${path}${nested.suffix}.`, depth + 1);
          }
        }
      };
      // The `{}` given to forRoot, whose parameter is optional: `<Lib>ModuleOptions & extras`, or undefined.
      let argument: Expression | undefined;
      probe?.forEachChild(function visit(node) {
        if (isCallExpression(node)) argument = node.arguments[0];
        else node.forEachChild(visit);
      });
      const type = argument && checker.getContextualType(argument);
      if (type) walk(checker.getNonNullableType(type), '', 0);
      result.set(lib, { problems, docs });
    });
    optionDocsCache.set(from, result);
    return result;
  }

  function describeSymbol(checker: TypeChecker, symbol: TsSymbol): string {
    const tags = symbol.getJsDocTags(checker).map((tag) => `@${tag.name} ${displayPartsToString(tag.text)}`.trim());
    return [displayPartsToString(symbol.getDocumentationComment(checker)), ...tags].join('\n').trim();
  }

  /**
   * The object types an option's value may take (through unions, undefined and arrays), whose
   * members are options too, each with the path suffix that reaches it (`[]` for an array's element).
   */
  function objectTypesOf(checker: TypeChecker, type: Type, suffix = ''): { type: Type; suffix: string }[] {
    const members = type.isUnion() ? type.types : [type];
    return members.flatMap((member) => {
      if (checker.isArrayType(member) || checker.isTupleType(member)) {
        return checker.getTypeArguments(member as TypeReference).flatMap((element) => objectTypesOf(checker, element, `${suffix}[]`));
      }
      return member.flags & TypeFlags.Object && member.getCallSignatures().length === 0 ? [{ type: member, suffix }] : [];
    });
  }

  it.each(LIBS_WITH_OPTIONS)(
    "libs/%s keeps every option's JSDoc and @default in its published declarations, as an editor shows them on forRoot()",
    (lib) => {
      const source = optionDocs('source').get(lib);
      const built = optionDocs('build').get(lib);
      expect(source?.problems).toEqual([]);
      expect(built?.problems).toEqual([]);
      // The walk found the options and their documented defaults at all.
      expect(Object.values(source?.docs ?? {}).filter((doc) => doc.includes('@default')).length).toBeGreaterThan(0);
      expect(built?.docs).toEqual(source?.docs);
    },
    120_000,
  );
});

/**
 * An app as a user writes it from the README: the modules imported, nothing else — no
 * `attachLifecycle(app)`, no `enableShutdownHooks()`. A warm-up task that lasts until the test
 * releases it (GET /warmup/release), a slow route, and the lifecycle's in-flight count.
 */
function outsideApp(adapter: 'express' | 'fastify', withLogging: boolean): string {
  return `
require('reflect-metadata');
const { Controller, Get, Injectable, Module, Query } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { LifecycleModule, LifecycleService } = require('@nest-rollout/lifecycle');
const { HealthModule } = require('@nest-rollout/health');
const { Canary, CanaryDecision, CanaryModule } = require('@nest-rollout/canary');
${withLogging ? "const { LoggingModule, Logger } = require('@nest-rollout/logging');" : ''}
${adapter === 'fastify' ? "const { FastifyAdapter } = require('@nestjs/platform-fastify');" : ''}

let releaseWarmup;
const warmupReleased = new Promise((r) => (releaseWarmup = r));

class CachePrimer {
  constructor(lifecycle) { this.lifecycle = lifecycle; }
  onModuleInit() {
    this.lifecycle.registerWarmupTask({ name: 'cache.prime', run: () => warmupReleased });
  }
}
Reflect.defineMetadata('design:paramtypes', [LifecycleService], CachePrimer);
Injectable()(CachePrimer);

class HelloController {
  constructor(lifecycle) { this.lifecycle = lifecycle; }
  hello() { return { hello: 'world' }; }
  async slow(ms) { await new Promise((r) => setTimeout(r, Number(ms))); return { slow: true }; }
  release() { releaseWarmup(); return { released: true }; }
  inflight() { return { inFlight: this.lifecycle.inFlightRequests }; }
  quote(decision) { return { variant: decision.variant, reason: decision.reason }; }
}
const route = (path, name) => Get(path)(HelloController.prototype, name, Object.getOwnPropertyDescriptor(HelloController.prototype, name));
route('hello', 'hello');
Query('ms')(HelloController.prototype, 'slow', 0);
route('slow', 'slow');
route('warmup/release', 'release');
route('inflight', 'inflight');
CanaryDecision()(HelloController.prototype, 'quote', 0);
Canary()(HelloController.prototype, 'quote', Object.getOwnPropertyDescriptor(HelloController.prototype, 'quote'));
route('quote', 'quote');
Reflect.defineMetadata('design:paramtypes', [LifecycleService], HelloController);
Controller()(HelloController);

class AppModule {}
Module({
  imports: [
    ${withLogging ? 'LoggingModule.forRoot(),' : ''}
    LifecycleModule.forRoot({ drainDelayMs: 2000, minReadyDelayMs: 0 }),
    HealthModule.forRoot(),
    CanaryModule.forRoot({ rules: { header: { 'x-env': 'canary' } } }),
  ],
  controllers: [HelloController],
  providers: [CachePrimer],
})(AppModule);

(async () => {
  const app = await NestFactory.create(AppModule${adapter === 'fastify' ? ', new FastifyAdapter()' : ''}, { bufferLogs: true });
  ${withLogging ? 'app.useLogger(app.get(Logger));' : ''}
  await app.listen(0, '127.0.0.1');
  process.stdout.write(JSON.stringify({ port: app.getHttpServer().address().port }) + '\\n');
})().catch((e) => { console.error(e); process.exit(1); });
`;
}

interface Reply {
  status: number;
  body: string;
  connection: string | undefined;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `path` until it answers `status`; fails after `timeoutMs` (a bound for a broken run, not a timing goal). */
async function until(port: number, path: string, status: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await get(port, path)).status === status) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${path} did not answer ${status} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
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

  const CASES = [
    { nest: '11', adapter: 'express', withLogging: true },
    { nest: '11', adapter: 'fastify', withLogging: false },
    { nest: '12', adapter: 'express', withLogging: false },
    { nest: '12', adapter: 'fastify', withLogging: true },
  ] as const;

  for (const { nest, adapter, withLogging } of CASES) {
    it(`Nest ${nest} + ${adapter}, the modules imported and nothing else: ready after warm-up, drains on SIGTERM, exits 0`, async () => {
      const appDir = mkdtempSync(join(tmpdir(), `nest-rollout-outside-nest${nest}-`));
      try {
        const dependencies: Record<string, string> = {
          '@nestjs/common': `^${nest}.0.0`,
          '@nestjs/core': `^${nest}.0.0`,
          [`@nestjs/platform-${adapter}`]: `^${nest}.0.0`,
          'reflect-metadata': '^0.2.0',
          rxjs: '^7.8.0',
        };
        for (const tarball of tarballs) {
          const name = `@nest-rollout/${tarball.replace(/^nest-rollout-/, '').replace(/-\d+\.\d+\.\d+\.tgz$/, '')}`;
          dependencies[name] = `file:${join(packDir, tarball)}`;
        }
        writeFileSync(join(appDir, 'package.json'), JSON.stringify({ name: 'outside-app', private: true, dependencies }, null, 2));
        writeFileSync(join(appDir, 'main.js'), outsideApp(adapter, withLogging));
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
          const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));

          // Serving at once, ready only once the warm-up task is over.
          expect(await get(port, '/hello')).toMatchObject({ status: 200, body: '{"hello":"world"}' });
          // @Canary() decides on the adapter's hooks of this Nest version.
          expect(await get(port, '/quote', { 'x-env': 'canary' })).toMatchObject({
            status: 200,
            body: '{"variant":"canary","reason":"header"}',
          });
          expect(await get(port, '/quote')).toMatchObject({ status: 200, body: '{"variant":"stable","reason":"no_match"}' });
          expect((await get(port, '/health/live')).status).toBe(200);
          expect((await get(port, '/health/ready')).status).toBe(503);
          expect((await get(port, '/health/startup')).status).toBe(503);
          await get(port, '/warmup/release');
          await until(port, '/health/ready', 200, 10_000);

          const slow = get(port, '/slow?ms=1000');
          // The slow request is in flight (the count includes the asking request itself).
          for (let deadline = Date.now() + 5_000; JSON.parse((await get(port, '/inflight')).body).inFlight < 2;) {
            if (Date.now() > deadline) throw new Error('the slow request never reached the app');
          }
          child.kill('SIGTERM');
          // Readiness flips at once (the bound only guards against a drain that never starts).
          await until(port, '/health/ready', 503, 1_000);
          // A new request during the 2 s drain delay is served, and told to close its connection.
          expect(await get(port, '/hello')).toEqual({ status: 200, body: '{"hello":"world"}', connection: 'close' });
          expect(await slow).toMatchObject({ status: 200, body: '{"slow":true}' });
          expect(await exited).toBe(0);
          if (withLogging) expect(output).toContain('"event":"lifecycle.state_changed"');
          expect(output).toContain('lifecycle.attached');
        } finally {
          child.kill('SIGKILL');
        }
      } finally {
        rmSync(appDir, { recursive: true, force: true });
      }
    }, 240_000);
  }
});
