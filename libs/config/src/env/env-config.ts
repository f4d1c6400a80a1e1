import type { ConfigFactoryKeyHost } from '@nestjs/config';
import type { StandardJSONSchemaV1, StandardSchemaV1 } from '@standard-schema/spec';
import { ConfigError, EnvValidationError } from '../config.errors';

/** The environment as a schema sees it: only the variables it names, each a string or unset. */
export type EnvInput = Readonly<Record<string, string | undefined>>;

/** A Standard Schema v1 (zod, valibot, arktype, ...) of an object of environment variables. */
export type EnvSchema = StandardSchemaV1<EnvInput, object>;

/** The names of the variables `S` reads. */
export type EnvVariableOf<S extends EnvSchema> = Extract<keyof StandardSchemaV1.InferInput<S>, string>;

export interface EnvConfigOptions<Name extends string = string> {
  /**
   * The variables the schema reads. Taken from the schema itself when it describes itself as JSON
   * Schema (zod 4 does, through Standard JSON Schema); required otherwise. Nothing else of the
   * environment reaches the schema, so a variable that npm, a shell or Kubernetes sets can never
   * change the configuration by accident.
   */
  readonly variables?: readonly Name[];
  /**
   * An empty variable counts as unset, so that `FOO=` in a compose file or a pod spec means "use
   * the default", as it does for most tools.
   * @default true
   */
  readonly emptyAsUnset?: boolean;
}

/**
 * A typed configuration namespace read from the environment: the `registerAs()` factory to hand to
 * `ConfigModule.forRoot({ load })` (with its `KEY` for `@Inject(x.KEY)` and `asProvider()`), plus
 * the validation to hand to `ConfigModule.forRoot({ validate })` and a `parse()` for code that
 * runs before Nest (main.ts choosing the adapter) and for specs.
 */
export type EnvConfig<TConfig extends object, Name extends string = string> = (() => TConfig) &
  ConfigFactoryKeyHost<TConfig> & {
    /** The `registerAs` namespace (`ConfigService.get('<namespace>.port')` works too, untyped). */
    readonly namespace: string;
    /** Every variable read, and nothing else. */
    readonly variables: readonly Name[];
    /** Validates `env` (by default `process.env`) and maps it; throws `EnvValidationError` naming every bad variable. */
    parse(env?: NodeJS.ProcessEnv | EnvInput): TConfig;
    /**
     * For `ConfigModule.forRoot({ validate })`: fails the module's set-up with `EnvValidationError`,
     * before any provider is built, and otherwise hands the environment back unchanged, so that
     * nothing new (a default, say) is written into `process.env`.
     */
    validate(env: Record<string, unknown>): Record<string, unknown>;
  };

/**
 * `envConfig()` cannot work as called: a mistake in the code or the installation, not in the
 * environment. `code` says which: `CONFIG_ENV_VARIABLES_UNKNOWN` (the schema does not list its
 * variables), `CONFIG_ENV_SCHEMA_ASYNC` (the schema validates asynchronously),
 * `CONFIG_ENV_NESTJS_CONFIG_MISSING` (the optional peer `@nestjs/config` is not installed).
 */
export class EnvConfigError extends ConfigError {}

/**
 * Defines a namespace of typed configuration read from the environment, on `@nestjs/config`:
 *
 * ```ts
 * export const appConfig = envConfig(
 *   'app',
 *   z.object({ PORT: z.coerce.number().int().min(0).max(65535).default(3000), DATABASE_URL: z.url() }),
 *   (env) => ({ port: env.PORT, databaseUrl: env.DATABASE_URL }),
 * );
 * export type AppConfig = ConfigType<typeof appConfig>;
 *
 * ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: [appConfig], validate: appConfig.validate })
 * constructor(@Inject(appConfig.KEY) private readonly config: AppConfig) {}
 * ```
 *
 * `schema` is any Standard Schema v1 of the variables (their values are strings or unset; it
 * applies defaults and conversions); `factory` maps its output to what the application reads.
 * Every problem is reported at once, one `VARIABLE: what is wrong` line each, in one
 * `EnvValidationError`. A rejected value is never shown: a DATABASE_URL holds a password. The
 * schema's own messages are kept, with the value removed where a message quotes it (valibot and
 * arktype do), so write messages that state the expected form.
 */
export function envConfig<S extends EnvSchema, TConfig extends object>(
  namespace: string,
  schema: S,
  factory: (env: StandardSchemaV1.InferOutput<S>) => TConfig,
  options: EnvConfigOptions<EnvVariableOf<S>> = {},
): EnvConfig<TConfig, EnvVariableOf<S>> {
  const variables = Object.freeze([...(options.variables ?? variablesOf(schema, namespace))]) as readonly EnvVariableOf<S>[];
  const emptyAsUnset = options.emptyAsUnset ?? true;

  const parse = (env: NodeJS.ProcessEnv | EnvInput = process.env): TConfig => {
    const input: Record<string, string | undefined> = {};
    for (const name of variables) {
      const value = env[name];
      input[name] = emptyAsUnset && value === '' ? undefined : value;
    }
    const result = schema['~standard'].validate(input);
    if (result instanceof Promise) {
      throw new EnvConfigError(
        'CONFIG_ENV_SCHEMA_ASYNC',
        `envConfig("${namespace}"): the schema validates asynchronously, but the environment is validated synchronously while the application boots; drop its async refinements.`,
      );
    }
    if (result.issues) throw new EnvValidationError(describeIssues(result.issues, input));
    return factory(result.value as StandardSchemaV1.InferOutput<S>);
  };

  const registered = loadNestConfig(namespace).registerAs(namespace, () => parse(process.env));
  return Object.assign(registered, {
    namespace,
    variables,
    parse,
    validate: (env: Record<string, unknown>) => {
      parse(env as EnvInput);
      return env;
    },
  });
}

/**
 * Loaded here rather than imported: @nestjs/config is an optional peer dependency, and an
 * application that uses only the dynamic configuration does not install it.
 */
function loadNestConfig(namespace: string): typeof import('@nestjs/config') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@nestjs/config') as typeof import('@nestjs/config');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e?.code !== 'MODULE_NOT_FOUND' || !e.message.includes("'@nestjs/config'")) throw error;
    throw new EnvConfigError(
      'CONFIG_ENV_NESTJS_CONFIG_MISSING',
      `envConfig("${namespace}") is built on @nestjs/config, an optional peer dependency of @nest-rollout/config: npm install @nestjs/config`,
    );
  }
}

/** The keys of the schema's JSON Schema (input side); without one, `variables` must be given. */
function variablesOf(schema: EnvSchema, namespace: string): string[] {
  const converter = (schema['~standard'] as Partial<StandardJSONSchemaV1.Props>).jsonSchema;
  let properties: unknown;
  try {
    // zod refuses refinements and custom types by default; only the keys are wanted here.
    properties = converter?.input({ target: 'draft-2020-12', libraryOptions: { unrepresentable: 'any' } }).properties;
  } catch {
    properties = undefined;
  }
  if (typeof properties !== 'object' || properties === null || Object.keys(properties).length === 0) {
    throw new EnvConfigError(
      'CONFIG_ENV_VARIABLES_UNKNOWN',
      `envConfig("${namespace}"): the schema does not list its variables (it is not an object schema that converts to JSON Schema); pass them as options.variables.`,
    );
  }
  return Object.keys(properties);
}

/** One `VARIABLE: what is wrong` line per issue, each once, in the schema's order. */
function describeIssues(issues: readonly StandardSchemaV1.Issue[], input: EnvInput): string[] {
  const lines = issues.map((issue) => {
    const segment = issue.path?.[0];
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    // A rule across variables may not say which one it is about: none of their values may show.
    if (key === undefined) return Object.values(input).reduce<string>((message, value) => withoutValue(message, value), issue.message);
    const name = String(key);
    return `${name}: ${withoutValue(issue.message, input[name])}`;
  });
  return [...new Set(lines)];
}

/** Below this length a value is removed only where it is quoted: "1" must not vanish from "from 10 to 20". */
const MIN_UNQUOTED_LENGTH = 6;
const HIDDEN = '(value hidden)';

function withoutValue(message: string, value: string | undefined): string {
  if (value === undefined || value === '') return message;
  let hidden = message;
  for (const quoted of [JSON.stringify(value), `'${value}'`, `\`${value}\``]) hidden = hidden.split(quoted).join(HIDDEN);
  if (value.length >= MIN_UNQUOTED_LENGTH) hidden = hidden.split(value).join(HIDDEN);
  return hidden;
}
