import { FlagdCore } from '@openfeature/flagd-core';
import { CanaryRulesError } from './canary.errors';
import { parseCanaryRules } from './canary.options';
import { CompiledCanaryRules } from './canary.rules';
import type { CanaryEvaluationContext } from './canary.rules';

const QUIET = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };
const gatewayVerified = { unverified: true, verifiedBy: 'gateway', header: 'authorization' } as const;
const compile = (rules: unknown) => CompiledCanaryRules.compile(parseCanaryRules(rules, gatewayVerified as never));
const user = (key: string): CanaryEvaluationContext => ({ targetingKey: key, headers: {}, cookies: {}, claims: {} });
const keys = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
const canaryKeys = (rules: CompiledCanaryRules) => keys.filter((key) => rules.evaluate(user(key)).variant === 'canary');

describe('CompiledCanaryRules', () => {
  it('sends 20 % of 2,000 sticky keys to the canary, within 17–23 %', () => {
    const share = canaryKeys(compile({ percent: 20, stickyKey: 'header:x-user' })).length / keys.length;
    expect(share).toBeGreaterThanOrEqual(0.17);
    expect(share).toBeLessThanOrEqual(0.23);
  });

  it('gives the same key the same answer every time', () => {
    const rules = compile({ percent: 20, stickyKey: 'header:x-user' });
    const first = canaryKeys(rules);
    expect(canaryKeys(compile({ percent: 20, stickyKey: 'header:x-user' }))).toEqual(first);
    expect(canaryKeys(rules)).toEqual(first);
  });

  it('keeps every earlier canary key on the canary when 5 % becomes 10 % and 20 % becomes 30 %', () => {
    for (const [before, after] of [
      [5, 10],
      [20, 30],
    ]) {
      const earlier = canaryKeys(compile({ percent: before, stickyKey: 'header:x-user' }));
      const later = new Set(canaryKeys(compile({ percent: after, stickyKey: 'header:x-user' })));
      expect(earlier.length).toBeGreaterThan(0);
      expect(earlier.filter((key) => !later.has(key))).toEqual([]);
      expect(later.size).toBeGreaterThan(earlier.length);
    }
  });

  it('buckets finer than 1 %: 0.5 % sends about 0.5 % of 40,000 keys', () => {
    const rules = compile({ percent: 0.5, stickyKey: 'header:x-user' });
    let canary = 0;
    for (let i = 0; i < 40_000; i++) if (rules.evaluate(user(`u${i}`)).variant === 'canary') canary++;
    expect(canary / 40_000).toBeGreaterThan(0.003);
    expect(canary / 40_000).toBeLessThan(0.007);
  });

  it('computes the same cohort as flagd-core loading the compiled flag set directly', () => {
    const rules = compile({ header: { 'x-env': 'canary' }, percent: 20, stickyKey: 'claim:sub' });
    const edge = new FlagdCore();
    edge.setConfigurations(JSON.stringify(rules.flagSet));
    const fromEdge = keys.filter(
      (key) => edge.resolveStringEvaluation('canary', 'stable', { targetingKey: key, headers: {} }).value === 'canary',
    );
    expect(canaryKeys(rules)).toEqual(fromEdge);
    expect(rules.flagSet.flags.canary).toMatchObject({ variants: { stable: 'stable', canary: 'canary' }, defaultVariant: 'stable' });
  });

  it('names the rule that picked the canary, header before percentage', () => {
    const rules = compile({
      header: { 'x-env': ['canary', 'beta'] },
      cookie: { cohort: { regex: '^early-' } },
      percent: 100,
      stickyKey: 'cookie:sid',
    });
    const ctx = (headers: Record<string, string>, cookies: Record<string, string>, matches: Record<string, boolean> = {}) =>
      rules.evaluate({ headers, cookies, claims: {}, matches, targetingKey: cookies.sid });
    expect(ctx({ 'x-env': 'beta' }, {})).toEqual({ variant: 'canary', reason: 'header' });
    expect(ctx({}, { cohort: 'early-1' }, { c0: true })).toEqual({ variant: 'canary', reason: 'cookie' });
    expect(ctx({}, { sid: 'abc' })).toEqual({ variant: 'canary', reason: 'percent' });
    expect(ctx({}, {})).toEqual({ variant: 'stable', reason: 'no_sticky_key' });
  });

  it('accepts a full flagd definition with the variants stable and canary', () => {
    const rules = compile({
      flag: {
        state: 'ENABLED',
        defaultVariant: 'stable',
        variants: { stable: false, canary: true },
        targeting: { if: [{ ends_with: [{ var: 'claims.email' }, '@example.com'] }, 'canary', null] },
      },
    });
    expect(rules.evaluate({ headers: {}, cookies: {}, claims: { email: 'a@example.com' } })).toEqual({ variant: 'canary', reason: 'flag' });
    expect(rules.evaluate({ headers: {}, cookies: {}, claims: { email: 'a@other.org' } }).variant).toBe('stable');
  });

  it('rejects a regex that does not compile, naming the rule', () => {
    expect(() => compile({ header: { 'x-env': { regex: '(' } } })).toThrow(CanaryRulesError);
    expect(() => compile({ header: { 'x-env': { regex: '(' } } })).toThrow(/rules\.header\.x-env\.regex: regex does not compile/);
  });

  it('rejects a broken flagd definition, naming it', () => {
    expect(() => compile({ flag: { state: 'ON', variants: { stable: 'stable' } } })).toThrow(/rules\.flag: flagd-core refused/);
    expect(() => compile({ flag: { state: 'ENABLED', defaultVariant: 'stable', variants: { stable: 1, blue: 2 } } })).toThrow(
      /variants must be "stable" and "canary"/,
    );
    expect(() =>
      compile({ flag: { state: 'ENABLED', defaultVariant: 'stable', variants: { stable: 1, canary: 2 }, targeting: { no_such_op: [1] } } }),
    ).toThrow(CanaryRulesError);
  });

  it('answers shorthand rules without flagd exactly as flagd-core does, variant and reason, percentages included', () => {
    const ruleSets = [
      { header: { 'X-Env': 'canary', 'x-team': ['a', 'b'] } },
      { header: { 'x-build': { regex: '^rc-' } }, cookie: { cohort: 'beta' } },
      { claim: { plan: 'beta' }, cookie: { cohort: ['beta', 'staff'] } },
      { percent: 20, stickyKey: 'header:x-user' },
      { percent: 0.5, stickyKey: 'cookie:cohort' },
      { percent: 100, stickyKey: 'claim:sub' },
      {
        header: { 'x-env': ['canary', 'beta'] },
        claim: { plan: { regex: 'a$' } },
        percent: 37.5,
        stickyKey: 'claim:sub',
        flagKey: 'checkout',
      },
    ];
    const values = [undefined, 'canary', 'a', 'rc-1', 'beta', 'staff', 'x', ''];
    const seen = new Set<string>();
    for (const rules of ruleSets) {
      const compiled = compile(rules);
      expect(compiled.shorthand).toBeDefined();
      const edge = new FlagdCore();
      edge.setConfigurations(JSON.stringify(compiled.flagSet));
      for (let i = 0; i < 1500; i++) {
        // A fixed pseudo-random draw per attribute: each value, absent (undefined) included, turns up.
        const pick = (n: number) => values[Math.floor(((Math.sin(i * 31 + n * 97) + 1) / 2) * values.length) % values.length];
        const sub = i % 7 === 0 ? pick(9) : i % 11 === 0 ? i : `user-${i}`;
        const claims = { plan: i % 13 === 0 ? 7 : pick(7), sub };
        const headers = {
          'x-env': i % 17 === 0 ? ['canary', 'x'] : pick(1),
          'x-team': pick(2),
          'x-build': pick(3),
          'x-user': pick(4) && `u${i}`,
        };
        const cookies = Object.fromEntries(
          Object.entries({ cohort: i % 2 === 0 ? pick(5) : pick(5) && `${pick(5)}${i % 3}`, theme: pick(6) }).filter(
            ([, v]) => v !== undefined,
          ),
        );
        const sources: Record<string, Record<string, unknown>> = { headers, cookies, claims };
        const sticky = compiled.sticky && sources[compiled.sticky.source][compiled.sticky.name];
        const targetingKey = (typeof sticky === 'string' && sticky !== '') || typeof sticky === 'number' ? String(sticky) : undefined;
        const context = (): CanaryEvaluationContext => ({ headers, cookies: cookies as Record<string, string>, claims, targetingKey });
        const fast = compiled.evaluate(context());
        expect(fast).toEqual(compiled.evaluateWithFlagd(context()));
        const withRegexes = context();
        compiled.evaluateWithFlagd(withRegexes); // fills withRegexes.matches for the edge, which has no regex
        expect(fast.variant).toBe(edge.resolveStringEvaluation(compiled.flagKey, 'stable', withRegexes as never, QUIET as never).value);
        seen.add(`${fast.variant}:${fast.reason}`);
      }
    }
    expect([...seen].sort()).toEqual(
      ['canary:claim', 'canary:cookie', 'canary:header', 'canary:percent', 'stable:no_match', 'stable:no_sticky_key'].sort(),
    );
  });
});
