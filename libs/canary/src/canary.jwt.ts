import { createPublicKey } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors, jwtVerify } from 'jose';
import type { JWTVerifyGetKey, JWTVerifyOptions, KeyObject } from 'jose';
import { MAX_TOKEN_BYTES } from './canary.constants';
import type { CanaryJwtOptions } from './canary.options';

/** Claims of a token, or why there are none; never a throw. */
export type ClaimsResult = { readonly claims: Readonly<Record<string, unknown>> } | { readonly refused: string };

const NO_TOKEN: ClaimsResult = Object.freeze({ refused: 'no token' });

/**
 * Reads the request's JWT with jose: verified against the configured key with an algorithm
 * allow-list, `exp` and `nbf` checked (jose's defaults), or decoded only when the options say a
 * gateway verified it. A forged, expired, oversized or malformed token is refused with a reason.
 */
export class ClaimsReader {
  private readonly key: Uint8Array | KeyObject | JWTVerifyGetKey | undefined;
  private readonly verifyOptions: JWTVerifyOptions;

  constructor(private readonly options: CanaryJwtOptions) {
    if (options.secret !== undefined) this.key = new TextEncoder().encode(options.secret);
    else if (options.publicKey !== undefined) this.key = createPublicKey(options.publicKey);
    else if (options.jwksUrl !== undefined) this.key = createRemoteJWKSet(new URL(options.jwksUrl));
    this.verifyOptions = {
      algorithms: options.algorithms ? [...options.algorithms] : undefined,
      issuer: options.issuer,
      audience: options.audience,
    };
  }

  /** The raw token: `Bearer <token>` in the header (or the bare token), else the cookie. */
  token(
    headers: Readonly<Record<string, string | string[] | undefined>>,
    cookies: () => Readonly<Record<string, string>>,
  ): string | undefined {
    const header = headers[this.options.header];
    if (typeof header === 'string' && header.length > 0) {
      return header.length > 7 && header.slice(0, 7).toLowerCase() === 'bearer ' ? header.slice(7).trim() : header.trim();
    }
    return this.options.cookie !== undefined ? cookies()[this.options.cookie] : undefined;
  }

  async read(token: string | undefined): Promise<ClaimsResult> {
    if (token === undefined || token === '') return NO_TOKEN;
    if (token.length > MAX_TOKEN_BYTES) return { refused: `token larger than ${MAX_TOKEN_BYTES} bytes` };
    try {
      if (this.options.unverified) return { claims: decodeJwt(token) };
      const { payload } = await jwtVerify(token, this.key as Uint8Array, this.verifyOptions);
      return { claims: payload };
    } catch (error) {
      return { refused: describeJoseError(error) };
    }
  }
}

/** A short, bounded description; jose's messages never hold the token itself. */
function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'token expired';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'token signature invalid';
  if (error instanceof errors.JWTClaimValidationFailed) return `token claim "${error.claim}" invalid (${error.reason})`;
  if (error instanceof errors.JOSEError) return `token refused (${error.code})`;
  return 'token malformed';
}
