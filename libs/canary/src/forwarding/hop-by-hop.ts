import type { IncomingHttpHeaders } from 'node:http';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, and RFC 9112 for Transfer-Encoding): they describe one
 * connection, so a forwarder drops them, along with every field the Connection header names.
 * Proxy-* fields are meant for the proxy they were sent to; `Proxy-Connection` is the legacy form.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export function isHopByHop(lowerCaseName: string): boolean {
  return HOP_BY_HOP.has(lowerCaseName) || lowerCaseName.startsWith('proxy-');
}

/** The field names a `Connection` header lists (lower case), or undefined when it lists none. */
export function connectionTokens(connection: string | readonly string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  let tokens: Set<string> | undefined;
  for (const line of typeof connection === 'string' ? [connection] : connection) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name === '' || name === 'close' || name === 'keep-alive') continue;
      (tokens ??= new Set()).add(name);
    }
  }
  return tokens;
}

/** Response fields of `headers` that may be relayed: everything but hop-by-hop fields. */
export function endToEndHeaders(headers: IncomingHttpHeaders): Array<[string, string | string[]]> {
  const named = connectionTokens(headers.connection);
  const relayed: Array<[string, string | string[]]> = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || isHopByHop(name) || named?.has(name)) continue;
    relayed.push([name, value]);
  }
  return relayed;
}
