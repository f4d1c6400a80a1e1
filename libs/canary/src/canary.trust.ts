import { createHmac, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { CanaryRequestView } from './canary.types';
import type { LifecycleClock } from '@nest-rollout/lifecycle';
import type { CanaryTrustOptions } from './canary.options';

/**
 * Whether the peer of a request may force a side with `x-canary`. Istio calls plain header
 * matching less secure than verified claims: anyone can send a header, so by default nobody may
 * force, and routing headers from a peer that may not are stripped.
 */
export class TrustPolicy {
  private readonly proxies: BlockList | undefined;

  constructor(
    private readonly options: CanaryTrustOptions,
    private readonly clock: LifecycleClock,
  ) {
    const force = options.force;
    if (typeof force === 'object' && 'proxies' in force) {
      this.proxies = new BlockList();
      for (const range of force.proxies) {
        const [address, bits] = range.split('/');
        this.proxies.addSubnet(address, Number(bits), isIP(address) === 6 ? 'ipv6' : 'ipv4');
      }
    }
  }

  /** `forceValue` is what the request asks for (`always`/`never`), part of what the gateway signs. */
  mayForce(req: CanaryRequestView, forceValue: string): boolean {
    const force = this.options.force;
    if (force === 'any') return true;
    if (force === 'none') return false;
    if (this.proxies) return this.fromProxy(req.socket?.remoteAddress);
    if ('hmacHeader' in force)
      return this.signed(req.headers[force.hmacHeader.toLowerCase()], forceValue, force.secret, force.maxAgeSeconds);
    return false;
  }

  private fromProxy(address: string | undefined): boolean {
    if (!address || !this.proxies) return false;
    // IPv4 peers on a dual-stack socket show as ::ffff:a.b.c.d.
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : undefined;
    if (v4 && isIP(v4) === 4) return this.proxies.check(v4, 'ipv4');
    return this.proxies.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }

  /** `<unix seconds>.<hex HMAC-SHA256 of "<unix seconds>.<x-canary value>">`, within the age window. */
  private signed(header: string | string[] | undefined, forceValue: string, secret: string, maxAgeSeconds: number): boolean {
    if (typeof header !== 'string') return false;
    const dot = header.indexOf('.');
    if (dot <= 0) return false;
    const stamp = header.slice(0, dot);
    const seconds = Number(stamp);
    if (!/^\d{1,12}$/.test(stamp) || Math.abs(this.clock.now() / 1000 - seconds) > maxAgeSeconds) return false;
    const given = Buffer.from(header.slice(dot + 1), 'hex');
    const expected = signCanaryForce(secret, seconds, forceValue);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

/** The signature a gateway puts in the trust header (see `trust.force.hmacHeader`). */
export function signCanaryForce(secret: string, unixSeconds: number, forceValue: string): Buffer {
  return createHmac('sha256', secret).update(`${unixSeconds}.${forceValue}`).digest();
}

/** The full trust header value for `forceValue` at `unixSeconds`. */
export function canaryForceSignature(secret: string, unixSeconds: number, forceValue: string): string {
  return `${unixSeconds}.${signCanaryForce(secret, unixSeconds, forceValue).toString('hex')}`;
}
