import { BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS } from './propagation.constants';

/** A `baggage` header as Node and undici hand it over: absent, one value, or one per header line. */
export type BaggageHeaderValue = string | readonly string[] | undefined;

/**
 * The `baggage` header with `key=value` set and every other member of `existing` kept in order
 * (W3C Baggage: list-members separated by commas, `key=value;properties`). Our member goes first:
 * a hop that truncates an oversized header drops from the end, and the decision must survive.
 * Members without `=` are dropped (a receiver must ignore them anyway), and members that would take
 * the header past 64 members or 8192 bytes are left off, so a downstream hop never has to reject it.
 */
export function mergeBaggage(existing: BaggageHeaderValue, key: string, value: string): string {
  let merged = `${key}=${encodeBaggageValue(value)}`;
  if (existing === undefined) return merged;
  let members = 1;
  for (const line of typeof existing === 'string' ? [existing] : existing) {
    for (const raw of line.split(',')) {
      const member = raw.trim();
      const eq = member.indexOf('=');
      if (eq <= 0 || member.slice(0, eq).trim() === key) continue;
      if (members >= BAGGAGE_MAX_MEMBERS) return merged;
      if (Buffer.byteLength(merged) + 1 + Buffer.byteLength(member) > BAGGAGE_MAX_BYTES) continue;
      merged += `,${member}`;
      members++;
    }
  }
  return merged;
}

/** The value of `key` in a `baggage` header (percent-decoded, properties dropped), or undefined. */
export function readBaggageValue(header: BaggageHeaderValue, key: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of typeof header === 'string' ? [header] : header) {
    for (const raw of line.split(',')) {
      const eq = raw.indexOf('=');
      if (eq <= 0 || raw.slice(0, eq).trim() !== key) continue;
      const semicolon = raw.indexOf(';', eq);
      const value = raw.slice(eq + 1, semicolon === -1 ? undefined : semicolon).trim();
      try {
        return decodeURIComponent(value);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** W3C Baggage values are percent-encoded UTF-8; `canary` and `stable` pass through unchanged. */
function encodeBaggageValue(value: string): string {
  return encodeURIComponent(value);
}
