import { parseDocument, YAMLError } from 'yaml';

/*
 * How every source reads text: a file, the value of an etcd or Consul key, each key of a prefix.
 * A problem names what is wrong and where (line, column), never the text around it: a document may
 * hold a password or a token, and problems end up in logs.
 */

/** How a document is written: YAML (which also reads JSON) or strict JSON. */
export type DocumentFormat = 'yaml' | 'json';

/** Parsed text, or what is wrong with it (`is not valid YAML (...)`), to follow the name of what was read. */
export type Parsed = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: string };

/**
 * One value: a scalar, a list or a mapping. Text of comments only has no value (null). YAML is
 * read as YAML 1.2 (`yes` stays a string), with unique keys and one document.
 */
export function parseValue(text: string, format: DocumentFormat): Parsed {
  const source = withoutByteOrderMark(text);
  if (format === 'json') {
    try {
      return { ok: true, value: JSON.parse(source) as unknown };
    } catch (error) {
      // JSON.parse's message may quote the text; the YAML parser, reading it with YAML's JSON schema,
      // locates most errors by line and column instead.
      const [located] = parseDocument(source, { schema: 'json', prettyErrors: false }).errors;
      if (located) return { ok: false, problem: `is not valid JSON (${describeYamlError(located, source)})` };
      const offset = /at position (\d+)/.exec((error as Error).message)?.[1];
      return { ok: false, problem: `is not valid JSON${offset === undefined ? '' : ` (at ${lineAndColumn(source, Number(offset))})`}` };
    }
  }
  const doc = parseDocument(source, { prettyErrors: false, uniqueKeys: true });
  const [error] = doc.errors;
  if (error) return { ok: false, problem: `is not valid YAML (${describeYamlError(error, source)})` };
  try {
    return { ok: true, value: doc.contents === null ? null : doc.toJS({ maxAliasCount: 100 }) };
  } catch (e) {
    // Unresolved aliases, alias bombs past maxAliasCount.
    return { ok: false, problem: `is not valid YAML (${withoutQuotedText((e as Error).message)})` };
  }
}

/**
 * A whole configuration document (a file, the value of one key): a mapping of settings. Empty
 * text, comments only or `null` is an empty document (`{}`); a list or a scalar at the top level
 * is a problem like a syntax error, since no layer can be merged from it.
 */
export function parseConfigDocument(text: string, format: DocumentFormat): Parsed {
  if (withoutByteOrderMark(text).trim() === '') return { ok: true, value: {} };
  const parsed = parseValue(text, format);
  if (!parsed.ok) return parsed;
  if (parsed.value === null || parsed.value === undefined) return { ok: true, value: {} };
  if (typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
    return {
      ok: false,
      problem: `must hold a mapping of settings (key: value), not ${Array.isArray(parsed.value) ? 'a list' : `a ${typeof parsed.value}`}`,
    };
  }
  return parsed;
}

/** A byte order mark, as some editors on Windows write, is not content: JSON.parse would reject it. */
function withoutByteOrderMark(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function describeYamlError(error: YAMLError, text: string): string {
  return `${withoutQuotedText(error.message)} (${error.code}) at ${lineAndColumn(text, error.pos[0])}`;
}

/**
 * The first line of a parser's message without anything it quotes from the document (`Unresolved
 * plain scalar "hunter2"`, `Unresolved alias (...): nope`) and without its position.
 */
function withoutQuotedText(message: string): string {
  const text = message
    .split('\n', 1)[0]
    .replace(/ at line \d+, column \d+:?$/, '')
    .replace(/:?\s*(["'])(?:(?!\1).)*\1/g, '')
    .replace(/["']/g, '')
    .split(': ', 1)[0]
    .trim();
  return text === '' ? 'invalid document' : text;
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1].length + 1}`;
}
