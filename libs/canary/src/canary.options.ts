import { isIP } from 'node:net';
import { EVEN_WITH_OTHER_PROBLEMS, optionGroup, parseModuleOptions, rejected, withoutDefault } from '@nest-rollout/lifecycle';
import { z } from 'zod';
import { CanaryOptionsError, CanaryRulesError } from './canary.errors';
import { DEFAULT_CANARY_FLAG_KEY } from './canary.constants';
import type { CanaryDecision } from './canary.types';

export const DEFAULT_CANARY_OPTIONS = {
  track: 'stable',
  rules: {},
  trust: { force: 'none' },
  jwtHeader: 'authorization',
} as const;

/** JWS algorithms jose verifies; `none` is never one of them. */
const ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
// Names end up as JSON Logic `var` paths, which split on dots; HTTP header and cookie names never need one.
const FIELD_NAME = /^[A-Za-z0-9!#$%&'*+^_`|~-]+$/;
const CLAIM_NAME = /^[A-Za-z0-9_:-]+$/;
const STICKY_KEY = /^(header|cookie|claim):(.+)$/;
const HEADER_NAME_MESSAGE = "must be a header name (letters, digits and !#$%&'*+^_`|~-; no dots)";
/** Percentages are bucketed in millionths: 4 decimals, so buckets far finer than 1 %. */
export const PERCENT_DECIMALS = 4;

const nonBlank = (message: string) => z.string({ error: message }).regex(/\S/, message);

const regexSource = z
  .string({ error: 'regex must be a string' })
  .refine((source) => compiles(source), 'regex does not compile as a JavaScript regular expression');

/** One matcher: an exact value, a list of accepted values, or `{ regex }` (JavaScript syntax, unanchored). */
const matcher = z.union(
  [
    z.string(),
    z.array(z.string({ error: 'list entries must be strings' })).min(1, 'a list needs at least one value'),
    optionGroup({ regex: regexSource }),
  ],
  { error: 'must be a string, a list of strings or { regex }' },
);

const headerMatchers = z.record(z.string().regex(FIELD_NAME, HEADER_NAME_MESSAGE), matcher, {
  error: 'must be an object of name → matcher',
});
const claimMatchers = z.record(z.string().regex(CLAIM_NAME, 'must be a claim name (letters, digits, _ : -)'), matcher, {
  error: 'must be an object of claim → matcher',
});

const flagKey = z
  .string({ error: 'must be a flag key' })
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a flag key (letters, digits, _ . -, up to 64)');

/** The shorthand: match rules (any one picks the canary), then a sticky percentage. */
const shorthandRules = optionGroup({
  /** Request headers (names case-insensitive) whose value picks the canary. */
  header: withoutDefault(headerMatchers),
  /** Cookies whose value picks the canary. */
  cookie: withoutDefault(headerMatchers),
  /** Claims of the verified JWT (see `jwt`) whose value picks the canary. */
  claim: withoutDefault(claimMatchers),
  /** Share of the remaining requests sent to the canary, 0–100, up to 4 decimals. */
  percent: withoutDefault(
    z
      .number({ error: 'must be a number from 0 to 100' })
      .min(0, 'must be a number from 0 to 100')
      .max(100, 'must be a number from 0 to 100')
      .refine((p) => isWholeMillionths(p), `must have at most ${PERCENT_DECIMALS} decimals`),
  ),
  /** What keeps a user on one side: `header:<name>`, `cookie:<name>` or `claim:<name>`. */
  stickyKey: withoutDefault(
    z
      .string({ error: 'must be "header:<name>", "cookie:<name>" or "claim:<name>"' })
      .refine(isStickyKey, 'must be "header:<name>", "cookie:<name>" or "claim:<name>"'),
  ),
  /** Key of the compiled flagd flag (`fractional` hashes it with the sticky key). @default 'canary' */
  flagKey: flagKey.default(DEFAULT_CANARY_FLAG_KEY),
}).superRefine((rules, ctx) => {
  if (rejected(ctx, 'percent', 'stickyKey')) return;
  if (rules.percent !== undefined && rules.percent > 0 && rules.stickyKey === undefined) {
    ctx.addIssue({ code: 'custom', path: ['stickyKey'], message: 'is required with percent: it keeps each user on one side' });
  }
}, EVEN_WITH_OTHER_PROBLEMS);

/** A full flagd flag definition (variants `stable` and `canary`, any targeting). */
const flagRules = optionGroup({
  /** The flag, as in a flagd flag set's `flags.<key>`. */
  flag: z.record(z.string(), z.unknown(), { error: 'must be a flagd flag definition (an object)' }),
  /** Its key. @default 'canary' */
  flagKey: flagKey.default(DEFAULT_CANARY_FLAG_KEY),
  /** The sticky key, passed to flagd as `targetingKey`. */
  stickyKey: withoutDefault(
    z
      .string({ error: 'must be "header:<name>", "cookie:<name>" or "claim:<name>"' })
      .refine(isStickyKey, 'must be "header:<name>", "cookie:<name>" or "claim:<name>"'),
  ),
});

type RulesInput = z.input<typeof flagRules> | z.input<typeof shorthandRules>;

/**
 * Shorthand rules, or `{ flag }`: chosen by the `flag` key rather than as a zod union, so that the
 * problems of the intended form are reported, not "matches neither".
 */
export const canaryRulesSchema = z
  .custom<RulesInput>(
    (input) => typeof input === 'object' && input !== null && !Array.isArray(input),
    'must be shorthand rules or { flag }',
  )
  .transform((input, ctx): z.output<typeof flagRules> | z.output<typeof shorthandRules> => {
    const result = ('flag' in input ? flagRules : shorthandRules).safeParse(input);
    if (result.success) return result.data;
    for (const issue of result.error.issues) ctx.issues.push({ ...issue, input: undefined, path: [...issue.path] } as never);
    return z.NEVER;
  });

const cidr = z.string({ error: 'must be a CIDR such as 10.0.0.0/8' }).refine(isCidr, 'must be a CIDR such as 10.0.0.0/8 or fd00::/8');

const trustSchema = optionGroup({
  /**
   * Who may force a side with `x-canary: always|never` (header or cookie): `any`, `none`,
   * `{ proxies: [CIDR] }` (the peer address), or `{ hmacHeader, secret }` (a gateway signs).
   * @default 'none'
   */
  force: z
    .union(
      [
        z.enum(['any', 'none']),
        optionGroup({ proxies: z.array(cidr).min(1, 'needs at least one CIDR') }),
        optionGroup({
          hmacHeader: nonBlank('must be a header name').regex(FIELD_NAME, HEADER_NAME_MESSAGE),
          secret: z.string({ error: 'must be a string of at least 32 characters' }).min(32, 'must be a string of at least 32 characters'),
          /** Oldest signature accepted. @default 300 */
          maxAgeSeconds: z
            .number({ error: 'must be a whole number of seconds' })
            .int('must be a whole number of seconds')
            .min(1)
            .default(300),
        }),
      ],
      { error: 'must be "any", "none", { proxies } or { hmacHeader, secret }' },
    )
    .default(DEFAULT_CANARY_OPTIONS.trust.force),
});

const jwtSchema = optionGroup({
  /** HMAC secret (HS* algorithms). */
  secret: withoutDefault(
    z.string({ error: 'must be a string of at least 32 characters' }).min(32, 'must be a string of at least 32 characters'),
  ),
  /** PEM public key (SPKI) or X.509 certificate. */
  publicKey: withoutDefault(nonBlank('must be a PEM string')),
  /** JWKS URL (keys fetched and cached by jose). */
  jwksUrl: withoutDefault(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })),
  /** Accepted algorithms; required with a key, never `none`. */
  algorithms: withoutDefault(
    z.array(z.enum(ALGORITHMS, { error: `must be one of ${ALGORITHMS.join(', ')}` })).min(1, 'needs at least one algorithm'),
  ),
  /** Required `iss`. */
  issuer: withoutDefault(nonBlank('must be a string')),
  /** Required `aud`. */
  audience: withoutDefault(nonBlank('must be a string')),
  /** Claims read without verification: only when a gateway verified the token already. */
  unverified: withoutDefault(z.literal(true, { error: 'must be true (or left out)' })),
  /** Who verified the token when `unverified` is set. */
  verifiedBy: withoutDefault(z.literal('gateway', { error: 'must be "gateway"' })),
  /** Header carrying `Bearer <token>`. @default 'authorization' */
  header: z.string().regex(FIELD_NAME, HEADER_NAME_MESSAGE).default(DEFAULT_CANARY_OPTIONS.jwtHeader),
  /** Cookie carrying the token, read when the header is absent. */
  cookie: withoutDefault(z.string().regex(FIELD_NAME, HEADER_NAME_MESSAGE)),
}).superRefine((jwt, ctx) => {
  if (rejected(ctx, 'secret', 'publicKey', 'jwksUrl', 'unverified', 'verifiedBy', 'algorithms')) return;
  const keys = [jwt.secret, jwt.publicKey, jwt.jwksUrl].filter((k) => k !== undefined).length;
  if (jwt.unverified) {
    if (jwt.verifiedBy !== 'gateway')
      ctx.addIssue({ code: 'custom', path: ['verifiedBy'], message: 'must be "gateway" with unverified: say who verified the token' });
    if (keys > 0) ctx.addIssue({ code: 'custom', message: 'unverified excludes secret, publicKey and jwksUrl' });
    return;
  }
  if (jwt.verifiedBy !== undefined) ctx.addIssue({ code: 'custom', path: ['verifiedBy'], message: 'goes with unverified: true' });
  if (keys !== 1)
    ctx.addIssue({
      code: 'custom',
      message: 'needs exactly one of secret, publicKey, jwksUrl (or unverified: true with verifiedBy: "gateway")',
    });
  if (jwt.algorithms === undefined)
    ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'is required: list the algorithms your issuer signs with' });
  else if (jwt.secret !== undefined && jwt.algorithms.some((a) => !a.startsWith('HS'))) {
    ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'a secret verifies HS256, HS384 or HS512 only' });
  } else if (jwt.secret === undefined && jwt.algorithms.some((a) => a.startsWith('HS'))) {
    ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'HS* algorithms need a secret' });
  }
}, EVEN_WITH_OTHER_PROBLEMS);

export const canaryOptionsSchema = optionGroup({
  /**
   * Track of this instance. A canary instance serves every request itself.
   * @default $APP_TRACK, else 'stable'
   */
  track: z.enum(['stable', 'canary'], { error: 'must be "stable" or "canary"' }).optional(),
  /**
   * The rules: shorthand (`header`, `cookie`, `claim`, `percent`, `stickyKey`) or `{ flag }`.
   * @default {} (every request stable)
   */
  rules: canaryRulesSchema.default({ flagKey: DEFAULT_CANARY_FLAG_KEY } as never),
  /** How claims are read: a key to verify with, or a gateway that verified them. */
  jwt: withoutDefault(jwtSchema),
  /** Who may force a side. @default { force: 'none' } */
  trust: trustSchema.default({ force: 'none' } as never),
  /** Response cookie set to the variant, for a gateway that matches cookies. */
  stickyCookie: withoutDefault(z.string().regex(FIELD_NAME, HEADER_NAME_MESSAGE)),
  /** Response header set to the variant, for a gateway that matches headers. */
  stickyHeader: withoutDefault(z.string().regex(FIELD_NAME, HEADER_NAME_MESSAGE)),
  /**
   * Called with every decision, in the request's async context, before anything else happens to
   * the request: e.g. `(d) => traceContext.annotate({ 'feature_flag.result.variant': d.variant })`
   * so that every log line of the request carries the variant. Must be quick; an error it throws
   * is logged and ignored.
   */
  onDecision: withoutDefault(
    z.custom<(decision: CanaryDecision) => void>((value) => typeof value === 'function', { error: 'must be a function' }),
  ),
}).superRefine((options, ctx) => {
  if (rejected(ctx, 'rules', 'jwt')) return;
  const problem = claimsWithoutJwt(options.rules, options.jwt);
  if (problem) ctx.addIssue({ code: 'custom', path: ['rules'], message: problem });
}, EVEN_WITH_OTHER_PROBLEMS);

/** Input options; every field optional. */
// An interface rather than an alias: declarations inferred from it (the module definition's) then
// name it instead of copying its members, and the copies would lose each option's JSDoc.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- equivalent on purpose, see above
export interface CanaryModuleOptions extends z.input<typeof canaryOptionsSchema> {}
type Parsed = z.output<typeof canaryOptionsSchema>;
/** Options after defaults. */
export type ResolvedCanaryOptions = Omit<Parsed, 'track'> & { readonly track: 'stable' | 'canary' };
export type CanaryRules = z.output<typeof canaryRulesSchema>;
export type CanaryShorthandRules = z.output<typeof shorthandRules>;
export type CanaryFlagRules = z.output<typeof flagRules>;
export type CanaryJwtOptions = z.output<typeof jwtSchema>;
export type CanaryTrustOptions = z.output<typeof trustSchema>;
export type CanaryMatcher = z.output<typeof matcher>;

/** Validates and resolves CanaryModule options; every problem in one CanaryOptionsError. */
export function resolveCanaryOptions(
  options: CanaryModuleOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedCanaryOptions {
  const problems: string[] = [];
  const fromEnv = env.APP_TRACK;
  if (options?.track === undefined && fromEnv !== undefined && fromEnv !== 'stable' && fromEnv !== 'canary') {
    problems.push('track: must be "stable" or "canary"; fix APP_TRACK or set track');
  }
  let parsed: Parsed | undefined;
  try {
    parsed = parseModuleOptions(canaryOptionsSchema, options, (issues) => new CanaryOptionsError(issues));
  } catch (error) {
    if (!(error instanceof CanaryOptionsError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0 || !parsed) throw new CanaryOptionsError(problems);
  const track = parsed.track ?? (fromEnv === 'canary' ? 'canary' : 'stable');
  return Object.freeze({ ...parsed, track });
}

/** Validates rules alone (a live update); `jwt` tells whether claims can be read. */
export function parseCanaryRules(input: unknown, jwt: CanaryJwtOptions | undefined): CanaryRules {
  const rules = parseModuleOptions(
    canaryRulesSchema,
    input,
    (problems) =>
      new CanaryRulesError(problems.map((problem) => (problem.startsWith('options ') ? `rules ${problem.slice(8)}` : `rules.${problem}`))),
  );
  const problem = claimsWithoutJwt(rules, jwt);
  if (problem) throw new CanaryRulesError([`rules: ${problem}`]);
  return rules;
}

export function isFlagRules(rules: CanaryRules): rules is CanaryFlagRules {
  return 'flag' in rules;
}

function claimsWithoutJwt(rules: CanaryRules, jwt: CanaryJwtOptions | undefined): string | undefined {
  if (jwt) return undefined;
  const usesClaims = (!isFlagRules(rules) && rules.claim !== undefined) || rules.stickyKey?.startsWith('claim:');
  return usesClaims ? 'claims need the jwt option (a key to verify tokens, or unverified: true with verifiedBy: "gateway")' : undefined;
}

function isWholeMillionths(percent: number): boolean {
  const scaled = percent * 10 ** PERCENT_DECIMALS;
  return Math.abs(scaled - Math.round(scaled)) < 1e-6;
}

function isStickyKey(value: string): boolean {
  const match = STICKY_KEY.exec(value);
  if (!match) return false;
  return match[1] === 'claim' ? CLAIM_NAME.test(match[2]) : FIELD_NAME.test(match[2]);
}

function compiles(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}

function isCidr(value: string): boolean {
  const [address, bits, extra] = value.split('/');
  if (extra !== undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  const family = isIP(address);
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128);
}
