import { z } from 'zod';

/**
 * Parses a module's options with its zod schema and returns the output (defaults applied,
 * transforms run). Every problem is collected and handed to `toError` at once, each as
 * `<option path>: <what is wrong>`. Rejected values are never echoed: an option may hold a
 * password, a token or a connection string.
 */
export function parseModuleOptions<S extends z.ZodType>(schema: S, input: unknown, toError: (problems: string[]) => Error): z.output<S> {
  // Only a missing argument means "all defaults"; null (say, from a factory) is reported.
  const result = schema.safeParse(input === undefined ? {} : input);
  if (result.success) return result.data;
  throw toError(describeOptionIssues(result.error.issues, schema));
}

/**
 * A group of options: strict, so that a misspelt key fails instead of being ignored, and frozen once
 * parsed. Its type names the shape itself rather than zod's mapped copy of it, so that the JSDoc and
 * `@default` of each option reach the published declarations and editors show them on hover.
 */
export function optionGroup<Shape extends z.core.$ZodLooseShape>(
  shape: Shape,
  error = 'must be an object',
): z.ZodReadonly<z.ZodObject<Shape, z.core.$strict>> {
  return z.strictObject(shape, { error }).readonly();
}

/**
 * An option without a default: it may be left out, and is still a key of the parsed options
 * (`undefined`), so that every option shows in the resolved object.
 */
export function withoutDefault<T extends z.ZodType>(schema: T): z.ZodPrefault<z.ZodOptional<T>> {
  return schema.optional().prefault(undefined);
}

/**
 * The `when` of a rule across options, `.superRefine(rule, EVEN_WITH_OTHER_PROBLEMS)`: zod skips
 * refinements after any type error, but one message should list every problem, so the rule runs
 * unless the value is not an object (or array) at all. Before reading an option, the rule asks
 * `rejected(ctx, ...)`: a rejected option's value may be anything.
 */
export const EVEN_WITH_OTHER_PROBLEMS = Object.freeze({
  when: (payload: z.core.ParsePayload): boolean => !payload.issues.some((issue) => issue.code === 'invalid_type' && !issue.path?.length),
});

/**
 * Whether any of `options` (paths from where the rule sits, written as in the problem lines:
 * `consul.check.ttlMs`, `readiness[1].name`, `[0]`), or an option holding it, was rejected. An
 * unknown key beside an option does not change its value, so it does not count.
 */
export function rejected(ctx: z.RefinementCtx<unknown>, ...options: string[]): boolean {
  return ctx.issues.some((issue) => {
    if (issue.code === 'unrecognized_keys') return false;
    const at = optionPath(issue.path ?? []);
    return options.some((option) => at === '' || option === at || option.startsWith(`${at}.`) || option.startsWith(`${at}[`));
  });
}

/**
 * One line per issue, named by its option path (`consul.check.ttlMs`, `readiness[1].timeoutMs`),
 * unknown keys with a suggestion or the known options at that place, also inside arrays, records and
 * unions; options that are not an object at all give the single line `options must be an object`.
 */
export function describeOptionIssues(issues: readonly z.core.$ZodIssue[], schema?: z.ZodType): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = optionPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, issue.path);
      for (const key of issue.keys) {
        const name = path ? `${path}.${key}` : key;
        const near = known.find((k) => k.toLowerCase() === key.toLowerCase());
        lines.push(
          `${name}: unknown option${near ? ` (did you mean "${near}"?)` : known.length > 0 ? `; known options: ${known.join(', ')}` : ''}`,
        );
      }
      continue;
    }
    if (issue.code === 'invalid_type' && issue.path.length === 0) {
      lines.push('options must be an object');
      continue;
    }
    // A record's rejected key: its own message is generic ("Invalid key in record"), or the
    // record's; the key schema's messages say what is wrong with the key.
    const messages = issue.code === 'invalid_key' && issue.issues.length > 0 ? issue.issues.map((inner) => inner.message) : [issue.message];
    for (const message of messages) lines.push(path ? `${path}: ${message}` : message);
  }
  return lines;
}

/** `consul.check.ttlMs`, `readiness[1].name`; array indexes in brackets. */
function optionPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/** The parts of a zod definition that lead to the schemas of nested options. */
interface SchemaDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  items?: z.ZodType[];
  rest?: z.ZodType | null;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
}

/** Keys of the object schema(s) at `path`: into objects, array and tuple elements, record values, and every member of a union. */
function knownKeys(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] {
  let nodes = schema ? [schema] : [];
  for (const part of path) nodes = nodes.flatMap((node) => childrenAt(node, part));
  return [...new Set(nodes.flatMap(keysOf))];
}

function childrenAt(node: z.ZodType, part: PropertyKey): z.ZodType[] {
  const def = definitionOf(node);
  switch (def?.type) {
    case 'object': {
      const key = typeof part === 'symbol' ? undefined : String(part);
      return key !== undefined && def.shape && Object.hasOwn(def.shape, key) ? [def.shape[key]] : [];
    }
    case 'array':
      return typeof part === 'number' && def.element ? [def.element] : [];
    case 'tuple': {
      const item = typeof part === 'number' ? (def.items?.[part] ?? def.rest) : undefined;
      return item ? [item] : [];
    }
    case 'record':
      return def.valueType ? [def.valueType] : [];
    case 'union':
      return (def.options ?? []).flatMap((option) => childrenAt(option, part));
    case 'intersection':
      return [def.left, def.right].flatMap((side) => (side ? childrenAt(side, part) : []));
    default:
      return [];
  }
}

function keysOf(node: z.ZodType): string[] {
  const def = definitionOf(node);
  switch (def?.type) {
    case 'object':
      return Object.keys(def.shape ?? {});
    case 'union':
      return (def.options ?? []).flatMap(keysOf);
    case 'intersection':
      return [def.left, def.right].flatMap((side) => (side ? keysOf(side) : []));
    default:
      return [];
  }
}

/** The definition of `node`, looking through optional, default, readonly, lazy and pipe wrappers. */
function definitionOf(node: z.ZodType): SchemaDef | undefined {
  let current: z.ZodType | undefined = node;
  // Bounded: a lazy schema may refer to itself.
  for (let depth = 0; current && depth < 16; depth++) {
    const def = current._zod.def as SchemaDef & { innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType; getter?: () => z.ZodType };
    if (def.innerType) current = def.innerType;
    // The input side of a pipe holds the keys a user writes, unless it is a preprocessing function.
    else if (def.type === 'pipe') current = def.in?._zod.def.type === 'transform' ? def.out : def.in;
    else if (def.type === 'lazy' && def.getter) current = def.getter();
    else return def;
  }
  return undefined;
}
