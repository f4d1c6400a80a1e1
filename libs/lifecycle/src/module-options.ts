import type { z } from 'zod';

/**
 * Parses a module's options with its zod schema and returns the output (defaults applied,
 * transforms run). Every problem is collected and handed to `toError` at once, each as
 * `<option path>: <what is wrong>`. Rejected values are never echoed: an option may hold a
 * password, a token or a connection string.
 */
export function parseModuleOptions<S extends z.ZodType>(
  schema: S,
  input: unknown,
  toError: (problems: string[]) => Error,
): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  throw toError(describeOptionIssues(result.error.issues, schema));
}

/** One line per issue, named by its option path (`consul.check.ttlMs`), unknown keys with a suggestion. */
export function describeOptionIssues(issues: readonly z.core.$ZodIssue[], schema?: z.ZodType): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = optionPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const name = path ? `${path}.${key}` : key;
        const known = knownKeys(schema, issue.path);
        const near = known.find((k) => k.toLowerCase() === key.toLowerCase());
        lines.push(`${name}: unknown option${near ? ` (did you mean "${near}"?)` : known.length > 0 ? `; known options: ${known.join(', ')}` : ''}`);
      }
      continue;
    }
    lines.push(path ? `${path}: ${issue.message}` : issue.message);
  }
  return lines;
}

function optionPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/** Keys of the object schema at `path`, looking through optional, default, pipe and transform wrappers. */
function knownKeys(schema: z.ZodType | undefined, path: readonly PropertyKey[]): string[] {
  let node = unwrap(schema);
  for (const part of path) {
    const shape = shapeOf(node);
    node = unwrap(shape ? (shape[String(part)] as z.ZodType | undefined) : undefined);
  }
  const shape = shapeOf(node);
  return shape ? Object.keys(shape) : [];
}

function shapeOf(node: z.ZodType | undefined): Record<string, unknown> | undefined {
  const def = node?._zod.def as { type?: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === 'object' ? def.shape : undefined;
}

function unwrap(node: z.ZodType | undefined): z.ZodType | undefined {
  let current = node;
  for (let depth = 0; current && depth < 16; depth++) {
    const def = current._zod.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    if (def.innerType) current = def.innerType;
    else if (def.type === 'pipe' && def.in) current = def.in;
    else break;
  }
  return current;
}
