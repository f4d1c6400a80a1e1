import { HealthFailureKind } from './health.constants';
import { HealthCheckError } from './health.errors';

/** Longest failure message put in a probe body or a log line. */
const MAX_MESSAGE_LENGTH = 300;
const MASK = '***';

// `scheme://user:password@host` -> `scheme://***@host`: drivers echo their connection string in errors.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]+@/gi;
// Query strings carry tokens and signed parameters (`?token=`, `?X-Amz-Signature=`).
const URL_QUERY = /\b([a-z][a-z0-9+.-]*:\/\/[^\s?#]+)\?[^\s#"']*/gi;
// `password=...`, `"secret": "..."`, `api_key: ...` in messages, DSNs and serialised options.
const KEY_VALUE =
  /\b(pass(?:word)?|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|authorization|credentials?)("?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&)}]+)/gi;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;

/**
 * Removes what must never reach a probe body or a log: credentials in URLs, query strings,
 * `password=`-style pairs, bearer tokens, and every value of `secrets` (also URL-encoded).
 */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    // Short values would mask ordinary words; options validation rejects them.
    if (secret.length < 4) continue;
    out = out.split(secret).join(MASK);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join(MASK);
  }
  out = out
    .replace(URL_USERINFO, `$1${MASK}@`)
    .replace(URL_QUERY, `$1?${MASK}`)
    .replace(KEY_VALUE, `$1$2${MASK}`)
    .replace(BEARER, `$1 ${MASK}`);
  return out.length > MAX_MESSAGE_LENGTH ? `${out.slice(0, MAX_MESSAGE_LENGTH - 1)}…` : out;
}

/**
 * The password inside a connection URL, raw and decoded, to hand to `redact`: a driver may quote it
 * without the URL around it. Values shorter than 4 characters are left out (masking them would
 * garble ordinary words); URL credentials are masked in any case.
 */
export function urlSecrets(url: string | undefined): string[] {
  if (!url) return [];
  try {
    const parsed = new URL(url);
    return [parsed.password, safeDecode(parsed.password)].filter((s, i, all) => s.length >= 4 && all.indexOf(s) === i);
  } catch {
    return [];
  }
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

const CODE_KINDS: Readonly<Record<string, HealthFailureKind>> = {
  ECONNREFUSED: HealthFailureKind.CONNECTION_REFUSED,
  ECONNRESET: HealthFailureKind.CONNECTION_RESET,
  EPIPE: HealthFailureKind.CONNECTION_RESET,
  ENOTFOUND: HealthFailureKind.HOST_NOT_FOUND,
  EAI_AGAIN: HealthFailureKind.HOST_NOT_FOUND,
  ETIMEDOUT: HealthFailureKind.TIMEOUT,
  ESOCKETTIMEDOUT: HealthFailureKind.TIMEOUT,
  UND_ERR_CONNECT_TIMEOUT: HealthFailureKind.TIMEOUT,
  UND_ERR_SOCKET: HealthFailureKind.CONNECTION_RESET,
  // PostgreSQL SQLSTATEs: invalid password / authorization, shutting down, starting up.
  '28P01': HealthFailureKind.AUTH_FAILED,
  '28000': HealthFailureKind.AUTH_FAILED,
  '57P01': HealthFailureKind.UNAVAILABLE,
  '57P02': HealthFailureKind.UNAVAILABLE,
  '57P03': HealthFailureKind.UNAVAILABLE,
};

/** Message patterns, for errors that lost their code (e.g. through @nestjs/terminus' indicators). */
const MESSAGE_KINDS: readonly (readonly [RegExp, HealthFailureKind])[] = [
  [/ECONNREFUSED/, HealthFailureKind.CONNECTION_REFUSED],
  [/ENOTFOUND|EAI_AGAIN|getaddrinfo/, HealthFailureKind.HOST_NOT_FOUND],
  [/timeout|timed out|ETIMEDOUT/i, HealthFailureKind.TIMEOUT],
  [/NOAUTH|WRONGPASS|authentication failed|password authentication|permission denied/i, HealthFailureKind.AUTH_FAILED],
  [/ECONNRESET|EPIPE|socket hang up|terminated unexpectedly|Connection terminated/i, HealthFailureKind.CONNECTION_RESET],
  [
    /isn't writeable|not (yet )?connected|Connection is closed|not established|client is closed|Pool is closed/i,
    HealthFailureKind.NOT_CONNECTED,
  ],
  [/UNAVAILABLE|starting up|shutting down/i, HealthFailureKind.UNAVAILABLE],
  [/serving status|NOT_SERVING|exceeded the threshold|threshold/i, HealthFailureKind.UNHEALTHY],
];

export interface ClassifiedFailure {
  readonly kind: HealthFailureKind;
  /** Redacted, bounded message. */
  readonly message: string;
}

/** Names the kind of a check failure and a message that is safe to show. */
export function classifyFailure(error: unknown, secrets: readonly string[] = []): ClassifiedFailure {
  const message = redactSecrets(messageOf(error), secrets);
  if (error instanceof HealthCheckError) return { kind: error.kind, message };
  for (const code of codesOf(error)) {
    const kind = CODE_KINDS[code];
    if (kind) return { kind, message };
  }
  const text = messageOf(error);
  for (const [pattern, kind] of MESSAGE_KINDS) {
    if (pattern.test(text)) return { kind, message };
  }
  return { kind: HealthFailureKind.ERROR, message };
}

function messageOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return messageOf(error.errors[0]);
  if (error instanceof Error) {
    // fetch() throws "fetch failed" and hides the reason in `cause`.
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error && error.message === 'fetch failed' ? `fetch failed: ${cause.message}` : error.message || error.name;
  }
  return typeof error === 'string' ? error : 'unknown error';
}

/** The error's own code, then its causes' and (for AggregateError, e.g. dual-stack connects) its members'. */
function codesOf(error: unknown, depth = 0): string[] {
  if (depth > 3 || error === null || typeof error !== 'object') return [];
  const own = (error as { code?: unknown }).code;
  const codes = typeof own === 'string' ? [own] : [];
  const nested = [(error as { cause?: unknown }).cause, ...(error instanceof AggregateError ? error.errors : [])];
  return [...codes, ...nested.flatMap((e) => codesOf(e, depth + 1))];
}
