import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected, withoutDefault } from '@nest-rollout/lifecycle';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { DynamicConfigOptionsError } from '../config.errors';
import type { ConfigSource } from './sources/config-source';

export const DEFAULT_DYNAMIC_CONFIG_OPTIONS = {
  sources: [],
  secretKeys: [],
  reloadSignal: 'SIGHUP',
} as const;

/**
 * Signals that may ask for a reload. SIGUSR1 is not one of them: Node.js reserves it for its
 * debugger. SIGTERM and SIGINT belong to the lifecycle's shutdown.
 */
const RELOAD_SIGNALS = ['SIGHUP', 'SIGUSR2'] as const;
/** Dot paths of keys; `*` stands for any one key or array index. */
const SECRET_KEY = /^[^.\s]+(\.[^.\s]+)*$/;

const SCHEMA =
  'must be a Standard Schema v1 of the configuration (a zod, valibot or arktype schema, or any object with a "~standard" property holding version 1 and a validate function)';
const SOURCE = 'must be a ConfigSource: { kind, location, start(), reload(), stop() } (e.g. fileSource(path))';
const SECRET = 'must be a dot path such as "db.password" or "upstreams.*.token"';
const SIGNAL = `must be ${RELOAD_SIGNALS.map((s) => `"${s}"`).join(' or ')}, or false for no reload signal`;

const d = DEFAULT_DYNAMIC_CONFIG_OPTIONS;

const dynamicConfigOptionsSchema = optionGroup(
  {
    /**
     * What a valid configuration is: any Standard Schema v1 (zod, valibot, arktype, ...). Each merged
     * document goes through its `validate`, and its output (defaults filled in, values coerced) is
     * the configuration in force, so the schema's output type is the type of `DynamicConfigService<T>`.
     */
    // abort: false, so that the rules across options still run and report their problems too.
    schema: z.custom<StandardSchemaV1>(isStandardSchema, { error: SCHEMA, abort: false }),
    /**
     * The layers of the configuration, merged in order (later ones override earlier ones; plain
     * objects merge key by key, arrays are replaced), after the `file` layer when there is one.
     * @default []
     */
    sources: z
      .array(z.custom<ConfigSource>(isConfigSource, { error: SOURCE, abort: false }), { error: 'must be an array of ConfigSource' })
      .superRefine((sources, ctx) => {
        sources.forEach((source, i) => {
          if (sources.indexOf(source) < i) ctx.addIssue({ code: 'custom', path: [i], message: 'is listed twice' });
        });
      }, EVEN_WITH_OTHER_PROBLEMS)
      .readonly()
      .prefault([]),
    /**
     * Shorthand for a first layer `fileSource(file)`: a YAML or JSON file, watched for changes.
     * Relative paths are resolved against the working directory.
     */
    file: withoutDefault(z.string({ error: 'must be a file path' }).regex(/\S/, 'must be a file path')),
    /**
     * Dot paths of keys whose values never reach a log line (`db.password`, `upstreams.*.token`):
     * they are logged as `***`, and so is everything under them.
     * @default []
     */
    secretKeys: z
      .array(z.string({ error: SECRET }).regex(SECRET_KEY, SECRET), { error: 'must be an array of dot paths' })
      .readonly()
      .prefault([]),
    /**
     * The signal that makes every source read again (`reload()`), or `false`. It never starts a
     * shutdown; when LifecycleModule's `signals` include it, the lifecycle keeps it and a warning is logged.
     * @default 'SIGHUP'
     */
    reloadSignal: z.union([z.enum(RELOAD_SIGNALS), z.literal(false)], { error: SIGNAL }).default(d.reloadSignal),
  },
  'options must be an object',
).superRefine((options, ctx) => {
  if (rejected(ctx, 'sources', 'file')) return;
  if (options.file === undefined && options.sources.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['sources'],
      message: 'is empty and no file is given: set file (a YAML or JSON path) or list at least one source',
    });
  }
}, EVEN_WITH_OTHER_PROBLEMS);

/** Options of `DynamicConfigModule.forRoot()`: `schema` and a `file` or `sources` are required. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface DynamicConfigModuleOptions extends z.input<typeof dynamicConfigOptionsSchema> {}
/** The options after one merge with `DEFAULT_DYNAMIC_CONFIG_OPTIONS`: every key is present (undefined where there is no default). */
export type ResolvedDynamicConfigOptions = z.output<typeof dynamicConfigOptionsSchema>;
/** A signal that may ask for a reload. */
export type ConfigReloadSignal = (typeof RELOAD_SIGNALS)[number];

/** Validates the options and merges them with the defaults once; every problem is reported together. */
export function resolveDynamicConfigOptions(input: DynamicConfigModuleOptions): ResolvedDynamicConfigOptions {
  return parseModuleOptions(dynamicConfigOptionsSchema, input, (problems) => new DynamicConfigOptionsError(problems));
}

/** Standard Schema v1: a `~standard` property with version 1 and a validate function (arktype's schemas are functions). */
function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const props = (value as { '~standard'?: { version?: unknown; validate?: unknown } })['~standard'];
  return typeof props === 'object' && props !== null && props.version === 1 && typeof props.validate === 'function';
}

function isConfigSource(value: unknown): value is ConfigSource {
  if (value === null || typeof value !== 'object') return false;
  const source = value as Partial<Record<keyof ConfigSource, unknown>>;
  return (
    typeof source.kind === 'string' &&
    source.kind !== '' &&
    typeof source.location === 'string' &&
    typeof source.start === 'function' &&
    typeof source.reload === 'function' &&
    typeof source.stop === 'function'
  );
}
