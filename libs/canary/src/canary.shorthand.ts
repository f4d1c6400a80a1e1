import MurmurHash3 from 'imurmurhash';
import type { CanaryMatcher } from './canary.options';
import type { CanaryReason } from './canary.types';

type Source = 'headers' | 'cookies' | 'claims';

/** What the shorthand matcher reads of a request: the parts of flagd's evaluation context it needs. */
export interface ShorthandInput {
  readonly targetingKey?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly cookies: Readonly<Record<string, string>>;
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface ShorthandOutcome {
  readonly variant: 'stable' | 'canary';
  readonly reason: Extract<CanaryReason, 'header' | 'cookie' | 'claim' | 'percent' | 'no_match' | 'no_sticky_key'>;
}

interface Test {
  readonly reason: 'header' | 'cookie' | 'claim';
  readonly source: Source;
  readonly name: string;
  readonly matches: (value: unknown) => boolean;
}

export interface ShorthandRules {
  readonly header?: Readonly<Record<string, CanaryMatcher>>;
  readonly cookie?: Readonly<Record<string, CanaryMatcher>>;
  readonly claim?: Readonly<Record<string, CanaryMatcher>>;
}

const NO_MATCH: ShorthandOutcome = Object.freeze({ variant: 'stable', reason: 'no_match' });
const NO_STICKY_KEY: ShorthandOutcome = Object.freeze({ variant: 'stable', reason: 'no_sticky_key' });
const BY_PERCENT: ShorthandOutcome = Object.freeze({ variant: 'canary', reason: 'percent' });
const CANARY_BY: Record<Test['reason'], ShorthandOutcome> = {
  header: Object.freeze({ variant: 'canary', reason: 'header' }),
  cookie: Object.freeze({ variant: 'canary', reason: 'cookie' }),
  claim: Object.freeze({ variant: 'canary', reason: 'claim' }),
};

/**
 * Shorthand rules as the request path runs them: the same answers as flagd-core evaluating the
 * flag they compile to (`if(header matches, cookie matches, claim matches, fractional)`), without
 * building an evaluation context and walking JSON Logic per request. Each piece is flagd's own
 * semantics: `===` for a value, `in` (Array.prototype.includes) for a list, the regex on strings
 * only, and `fractional`'s bucket, `floor(murmur3(flagKey + targetingKey) × total / 2^32)`, hashed
 * with the MurmurHash3 implementation flagd-core itself uses. The spec checks the two answer for
 * answer; a full flagd definition has no shorthand and is evaluated by flagd-core.
 */
export class ShorthandMatcher {
  private constructor(
    private readonly tests: readonly Test[],
    private readonly flagKey: string,
    /** Canary buckets out of `totalWeight`: `[0, weight)`. */
    private readonly weight: number,
    private readonly totalWeight: number,
  ) {}

  /** Names never hold a dot (the options refuse one), which JSON Logic's `var` would read as a path. */
  static of(rules: ShorthandRules, flagKey: string, weight: number, totalWeight: number): ShorthandMatcher {
    const tests = [
      ...testsOf('header', 'headers', rules.header, (name) => name.toLowerCase()),
      ...testsOf('cookie', 'cookies', rules.cookie),
      ...testsOf('claim', 'claims', rules.claim),
    ];
    return new ShorthandMatcher(tests, flagKey, weight, totalWeight);
  }

  evaluate(input: ShorthandInput): ShorthandOutcome {
    for (const test of this.tests) if (test.matches(input[test.source][test.name])) return CANARY_BY[test.reason];
    if (this.weight === 0) return NO_MATCH;
    const key = input.targetingKey;
    if (!key) return NO_STICKY_KEY;
    // Below 2^53: the hash is a uint32 and the total at most 10^8, so the product is exact in a double.
    const bucket = Math.floor(((MurmurHash3(this.flagKey + key).result() >>> 0) * this.totalWeight) / 2 ** 32);
    return bucket < this.weight ? BY_PERCENT : NO_MATCH;
  }
}

function testsOf(
  reason: Test['reason'],
  source: Source,
  matchers: Readonly<Record<string, CanaryMatcher>> | undefined,
  normalise: (name: string) => string = (name) => name,
): Test[] {
  return Object.entries(matchers ?? {}).map(([rawName, matcher]) => {
    const name = normalise(rawName);
    if (typeof matcher === 'string') return { reason, source, name, matches: (value: unknown) => value === matcher };
    if (Array.isArray(matcher)) {
      const list: readonly unknown[] = [...matcher];
      return { reason, source, name, matches: (value: unknown) => list.includes(value) };
    }
    const pattern = new RegExp(matcher.regex);
    return { reason, source, name, matches: (value: unknown) => typeof value === 'string' && pattern.test(value) };
  });
}
