import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { customCheck, DEFAULT_HEALTH_PATH, HealthModule, resolveHealthOptions } from '@nest-rollout/health';
import type { HealthModuleOptions, ResolvedHealthOptions } from '@nest-rollout/health';
import { LifecycleModule, resolveLifecycleOptions } from '@nest-rollout/lifecycle';
import { CanaryModule, DEFAULT_CANARY_FLAG_KEY, resolveCanaryOptions } from '@nest-rollout/canary';
import type { CanaryModuleOptions, ResolvedCanaryOptions } from '@nest-rollout/canary';
import { DynamicConfigModule, resolveDynamicConfigOptions } from '@nest-rollout/config';
import type { DynamicConfigModuleOptions, ResolvedDynamicConfigOptions } from '@nest-rollout/config';
import { LoggingModule, resolveLoggingOptions } from '@nest-rollout/logging';
import type { LoggingModuleOptions, ResolvedLoggingOptions } from '@nest-rollout/logging';
import type { LifecycleModuleOptions, ResolvedLifecycleOptions } from '@nest-rollout/lifecycle';
import { DEFAULT_METRICS_PATH, MetricsModule, resolveMetricsOptions } from '@nest-rollout/metrics';
import type { MetricsModuleOptions, ResolvedMetricsOptions } from '@nest-rollout/metrics';
import { RegistryModule, resolveRegistryOptions } from '@nest-rollout/registry';
import type { RegistryModuleOptions, ResolvedRegistryOptions } from '@nest-rollout/registry';
import { register } from 'prom-client';

/**
 * The option tables of README.md against the public API: every option a table names is an option
 * (`resolve<Lib>Options({})` has it, or the module takes it as a static extra), every option is
 * in the table, and every documented default is the real one. Docs that drift from the code tell
 * users a default the code does not have.
 */
const README = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');

type Options = Readonly<Record<string, unknown>>;

/** A default the README writes as an expression or in words, and what it stands for. */
interface Expression<T> {
  /** The default cell exactly as the README has it. */
  readonly documented: string;
  /** The value the README's expression stands for. */
  readonly expected: (resolved: T) => unknown;
  /** Where that value shows, when not in the resolved option itself (a per-check default). */
  readonly actual?: (resolved: T) => unknown;
}

/** An example input for a row whose meaning spells out a shape, `{ field, field (default) }`. */
interface Shape {
  /** Options that make the shape appear in the resolved options. */
  readonly input: Options;
  /** The resolved object that has the shape's fields. */
  readonly pick: (resolved: Options) => unknown;
}

interface OptionTable<T> {
  readonly lib: string;
  /** The heading the table sits under. */
  readonly heading: string;
  readonly resolve: (input: Options) => T;
  /** The module's static extras (rows marked "(static)") and their defaults. */
  readonly statics: Options;
  readonly expressions: { readonly [option: string]: Expression<T> };
  readonly shapes?: { readonly [option: string]: Shape };
}

function optionTable<T>(table: OptionTable<T>): OptionTable<Options> {
  return table as unknown as OptionTable<Options>;
}

/** A static extra's default as the module applies it: does `forRoot()` build what `forRoot({ [extra]: true })` builds? */
function controllersLike(forRoot: (extras: Options) => { controllers?: unknown[] }, extra: string): boolean {
  return forRoot({}).controllers?.length === forRoot({ [extra]: true }).controllers?.length;
}

const env = process.env;

/** A minimal Standard Schema: the dynamic configuration's one required option besides a source. */
const DYNAMIC_SCHEMA = {
  '~standard': { version: 1, vendor: 'readme-spec', validate: (value: unknown) => ({ value }) },
} as const;

const TABLES: readonly OptionTable<Options>[] = [
  optionTable<ResolvedLifecycleOptions>({
    lib: 'lifecycle',
    heading: '### Lifecycle options',
    resolve: (input) => resolveLifecycleOptions(input as LifecycleModuleOptions),
    statics: { isGlobal: LifecycleModule.forRoot().global ?? false },
    expressions: {
      hardDeadlineMs: {
        documented: '`max(drainDelayMs, drainTaskTimeoutMs) + shutdownTimeoutMs + hookTimeoutMs + 3000` (`28000`)',
        expected: (o) => Math.max(o.drainDelayMs, o.drainTaskTimeoutMs) + o.shutdownTimeoutMs + o.hookTimeoutMs + 3000,
      },
      instanceId: { documented: '`<hostname>-<pid>`', expected: () => `${hostname()}-${process.pid}` },
      version: {
        documented: '`$APP_VERSION`, `$npm_package_version` or `0.0.0`',
        expected: () => env.APP_VERSION || env.npm_package_version || '0.0.0',
      },
      headersTimeoutMs: { documented: '`keepAliveTimeoutMs + 1000`', expected: (o) => o.keepAliveTimeoutMs + 1000 },
    },
  }),
  optionTable<ResolvedHealthOptions>({
    lib: 'health',
    heading: '## Health',
    resolve: (input) => resolveHealthOptions(input as HealthModuleOptions),
    statics: {
      path: DEFAULT_HEALTH_PATH,
      grpc: controllersLike((extras) => HealthModule.forRoot(extras), 'grpc'),
      isGlobal: HealthModule.forRoot().global ?? false,
    },
    expressions: {
      maxAgeMs: {
        documented: 'per check, max(2 × intervalMs + timeoutMs, intervalMs + timeoutMs + 10000)',
        expected: (o) => Math.max(2 * o.intervalMs + o.timeoutMs, o.intervalMs + o.timeoutMs + 10000),
        actual: () => resolveHealthOptions({ readiness: [customCheck('example', () => undefined)] }).readiness[0].maxAgeMs,
      },
    },
    shapes: {
      readiness: {
        input: { readiness: [customCheck('example', () => undefined)] },
        pick: (o) => (o.readiness as readonly unknown[])[0],
      },
      management: { input: { management: { port: 9464 } }, pick: (o) => o.management },
    },
  }),
  optionTable<ResolvedMetricsOptions>({
    lib: 'metrics',
    heading: '## Metrics',
    resolve: (input) => resolveMetricsOptions(input as MetricsModuleOptions),
    statics: { path: DEFAULT_METRICS_PATH, isGlobal: MetricsModule.forRoot().global ?? false },
    expressions: {
      registry: { documented: "prom-client's global `register`", expected: () => register },
      track: { documented: '`$APP_TRACK` or `stable`', expected: () => env.APP_TRACK || 'stable' },
      commit: { documented: '`$APP_COMMIT` or `unknown`', expected: () => env.APP_COMMIT || 'unknown' },
    },
  }),
  optionTable<ResolvedLoggingOptions>({
    lib: 'logging',
    heading: '## Logging',
    resolve: (input) => resolveLoggingOptions(input as LoggingModuleOptions),
    statics: { isGlobal: LoggingModule.forRoot().global ?? false },
    expressions: {
      // The resolved list holds the header paths that are always redacted; the option adds to them.
      redact: { documented: '`[]`', expected: () => [], actual: (o) => o.redact.filter((path) => !/headers/.test(path)) },
      destination: { documented: 'standard output', expected: () => undefined },
    },
  }),
  optionTable<ResolvedDynamicConfigOptions>({
    lib: 'config',
    heading: '## Dynamic configuration',
    // The two required options, so that the defaults of the others can be read.
    resolve: (input) =>
      resolveDynamicConfigOptions({ schema: DYNAMIC_SCHEMA, file: 'config/dynamic.yaml', ...input } as DynamicConfigModuleOptions),
    statics: { isGlobal: DynamicConfigModule.forRoot({ schema: DYNAMIC_SCHEMA, file: 'config/dynamic.yaml' }).global ?? false },
    expressions: {
      schema: { documented: '—', expected: () => DYNAMIC_SCHEMA },
      file: { documented: '—', expected: () => 'config/dynamic.yaml' },
    },
  }),
  optionTable<ResolvedCanaryOptions>({
    lib: 'canary',
    heading: '## Canary routing',
    resolve: (input) => resolveCanaryOptions(input as CanaryModuleOptions, {}),
    statics: { isGlobal: CanaryModule.forRoot().global ?? false },
    expressions: {
      track: { documented: "`$APP_TRACK`, else `'stable'`", expected: () => 'stable' },
      rules: { documented: '`{}`: every request stable', expected: () => ({ flagKey: DEFAULT_CANARY_FLAG_KEY }) },
    },
    shapes: {
      rules: {
        input: {
          rules: {
            header: { 'x-env': 'canary' },
            cookie: { cohort: 'beta' },
            claim: { plan: 'beta' },
            percent: 5,
            stickyKey: 'header:x-user',
          },
          jwt: { unverified: true, verifiedBy: 'gateway' },
        },
        pick: (o) => o.rules,
      },
      jwt: {
        input: {
          jwt: {
            secret: 'a-secret-of-at-least-thirty-two-characters',
            algorithms: ['HS256'],
            issuer: 'i',
            audience: 'a',
            cookie: 'session',
          },
        },
        pick: (o) => o.jwt,
      },
    },
  }),
  optionTable<ResolvedRegistryOptions>({
    lib: 'registry',
    heading: '## Service registry',
    resolve: (input) => resolveRegistryOptions(input as RegistryModuleOptions),
    statics: { isGlobal: RegistryModule.forRoot().global ?? false },
    expressions: {
      // Known only at registration, from the service, the host and the listening server.
      instanceId: { documented: '`<service>-<host>-<port>`', expected: () => undefined },
      address: { documented: 'first non-loopback IPv4', expected: () => undefined },
      port: { documented: "the HTTP server's port", expected: () => undefined },
      retry: {
        documented: '`500` ms ×2 up to `30000`, jitter `0.5`',
        expected: () => ({ initialDelayMs: 500, multiplier: 2, maxDelayMs: 30000, jitter: 0.5 }),
      },
    },
  }),
];

interface Row {
  /** The option's path in the resolved options (`consul.check.ttlMs`). */
  readonly option: string;
  readonly isStatic: boolean;
  /** The default cell, or its part for this option where one row documents several (`[]` / `{}`). */
  readonly documented: string;
  readonly meaning: string;
}

/** The rows of the one `| option | default | meaning |` table in the section under `heading`. */
function tableRows(heading: string): Row[] {
  const lines = README.split('\n');
  const start = lines.indexOf(heading);
  if (start < 0) throw new Error(`README.md has no heading "${heading}"`);
  const level = heading.indexOf(' ');
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && line.indexOf(' ') <= level);
  const section = lines.slice(start + 1, end < 0 ? undefined : end);
  const headers = section.flatMap((line, i) => (/^\| option \| default \| meaning \|$/.test(line) ? [i] : []));
  if (headers.length !== 1) throw new Error(`"${heading}" holds ${headers.length} option tables, not one`);
  const rows: Row[] = [];
  for (const line of section.slice(headers[0] + 2)) {
    if (!line.startsWith('|')) break;
    const [optionCell, defaultCell, meaning] = line
      .slice(1, -1)
      .split('|')
      .map((cell) => cell.trim());
    const isStatic = optionCell.endsWith('(static)');
    const names = optionCell
      .replace(/\(static\)$/, '')
      .split(' / ')
      .map((part) => /^`([^`]+)`$/.exec(part.trim())?.[1]);
    if (names.some((name) => name === undefined)) throw new Error(`unreadable option cell: ${optionCell}`);
    const defaults = defaultCell.split(' / ');
    // `consul.check.intervalMs` / `timeoutMs`: a bare name after a path shares its parent.
    const parent = names[0]!.includes('.') ? names[0]!.slice(0, names[0]!.lastIndexOf('.') + 1) : '';
    names.forEach((name, i) =>
      rows.push({
        option: i > 0 && !name!.includes('.') ? parent + name : name!,
        isStatic,
        documented: (defaults.length === names.length ? defaults[i] : defaultCell).trim(),
        meaning,
      }),
    );
  }
  return rows;
}

const NO_LITERAL = Symbol('no literal');

/**
 * A default written as one literal in backticks: a number, `true`/`false`, a quoted string, an
 * array or object of those, or a bare word or path (`none`, `/health/ready`, `http://…`), read as
 * the string it shows. Anything else is an expression.
 */
function literal(text: string): unknown {
  const code = /^`([^`]*)`$/.exec(text)?.[1];
  if (code === undefined) return NO_LITERAL;
  if (/^-?\d+(\.\d+)?$/.test(code)) return Number(code);
  if (code === 'true' || code === 'false') return code === 'true';
  if (/^'[^']*'$/.test(code)) return code.slice(1, -1);
  if (/^[[{]/.test(code)) {
    try {
      return JSON.parse(code.replace(/'/g, '"')) as unknown;
    } catch {
      return NO_LITERAL;
    }
  }
  return /^[\w./:-]+$/.test(code) ? code : NO_LITERAL;
}

/** `option.path` in a resolved options object, and whether every step of it exists. */
function lookup(resolved: Options, path: string): { found: boolean; value: unknown } {
  let value: unknown = resolved;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !(key in value)) return { found: false, value: undefined };
    value = (value as Options)[key];
  }
  return { found: true, value };
}

/** Every option path of `resolved`, descending into an object only where the table documents paths under it. */
function optionPaths(resolved: Options, documented: ReadonlySet<string>, prefix = ''): string[] {
  return Object.keys(resolved).flatMap((key) => {
    const path = prefix + key;
    const value = resolved[key];
    const nested = [...documented].some((option) => option.startsWith(`${path}.`));
    return nested && value !== null && typeof value === 'object' ? optionPaths(value as Options, documented, `${path}.`) : [path];
  });
}

describe.each(TABLES)('the README table of @nest-rollout/$lib options', (table) => {
  const rows = tableRows(table.heading);
  const resolved = table.resolve({});

  it('names only options that exist, static extras among the static rows', () => {
    const unknown = rows
      .filter((row) => (row.isStatic ? !(row.option in table.statics) : !lookup(resolved, row.option).found))
      .map((row) => `${row.option}${row.isStatic ? ' (static)' : ''}`);
    expect(unknown).toEqual([]);
  });

  it('names every option and every static extra', () => {
    const documented = new Set(rows.filter((row) => !row.isStatic).map((row) => row.option));
    const staticRows = new Set(rows.filter((row) => row.isStatic).map((row) => row.option));
    const missing = [
      ...optionPaths(resolved, documented).filter((path) => !documented.has(path)),
      ...Object.keys(table.statics)
        .filter((extra) => !staticRows.has(extra))
        .map((extra) => `${extra} (static)`),
    ];
    expect(missing).toEqual([]);
  });

  it('gives the real defaults', () => {
    const wrong: string[] = [];
    for (const row of rows) {
      const expression = row.isStatic ? undefined : table.expressions[row.option];
      const actual = row.isStatic
        ? table.statics[row.option]
        : (expression?.actual ?? (() => lookup(resolved, row.option).value))(resolved);
      let expected: unknown;
      if (expression) {
        if (expression.documented !== row.documented) {
          wrong.push(`${row.option}: README says ${row.documented}, this spec knows ${expression.documented}; update one`);
          continue;
        }
        expected = expression.expected(resolved);
        // An expression followed by its value: `... + 3000` (`28000`).
        const shown = / \((`[^`]+`)\)$/.exec(row.documented);
        if (shown && !isDeepStrictEqual(literal(shown[1]), expected))
          wrong.push(`${row.option}: README shows ${shown[1]}, the expression makes ${String(expected)}`);
      } else if (row.documented === '—') {
        expected = undefined;
      } else {
        expected = literal(row.documented);
        if (expected === NO_LITERAL) {
          wrong.push(`${row.option}: default ${row.documented} is no literal; add it to the expressions of this spec`);
          continue;
        }
      }
      if (!isDeepStrictEqual(actual, expected))
        wrong.push(`${row.option}: README says ${row.documented}, the default is ${JSON.stringify(actual)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('spells out shapes whose fields exist, with their real defaults', () => {
    const wrong: string[] = [];
    for (const row of rows) {
      const shapeText = /^`\{([^`]*)\}`/.exec(row.meaning)?.[1];
      if (shapeText === undefined) continue;
      const shape = table.shapes?.[row.option];
      if (!shape) {
        wrong.push(`${row.option}: the meaning spells out a shape; give this spec an example input for it`);
        continue;
      }
      const example = shape.pick(table.resolve(shape.input)) as Options;
      for (const field of shapeText.split(',').map((part) => part.trim())) {
        const [, name, value] = /^(\w+)\??(?: \((.+)\))?$/.exec(field) ?? [];
        if (name === undefined) {
          wrong.push(`${row.option}: unreadable field "${field}"`);
        } else if (!(name in example)) {
          wrong.push(`${row.option}.${name}: no such field`);
        } else if (value !== undefined && !isDeepStrictEqual(example[name], literal(`\`${value}\``))) {
          wrong.push(`${row.option}.${name}: README says ${value}, the default is ${JSON.stringify(example[name])}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });
});
