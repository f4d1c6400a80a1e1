const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Parses a Cookie header (RFC 6265: `name=value; name2=value2`); a malformed pair is skipped, never
 * a throw; a value with a malformed escape is kept as sent. The first occurrence of a name wins, as browsers send the most specific cookie first.
 */
export function parseCookies(header: string | string[] | undefined): Readonly<Record<string, string>> {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text) return EMPTY;
  const cookies: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    if (!name || name in cookies) continue;
    let value = pair.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    cookies[name] = value.includes('%') ? safeDecode(value) : value;
  }
  return cookies;
}

/** The Cookie header without `name`, for stripping a routing cookie an untrusted client sent. */
export function withoutCookie(header: string, name: string): string {
  return header
    .split(';')
    .filter((pair) => pair.slice(0, pair.indexOf('=')).trim() !== name)
    .join(';')
    .trim();
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
