import { FlagdCore, MemoryStorage } from '@openfeature/flagd-core';
import type { Flag } from '@openfeature/flagd-core';
import type { EvaluationContext, Logger } from '@openfeature/core';
import { CanaryRulesError } from './canary.errors';
import { isFlagRules, PERCENT_DECIMALS } from './canary.options';
import type { CanaryMatcher, CanaryRules } from './canary.options';
import { ShorthandMatcher } from './canary.shorthand';
import type { CanaryReason, CanaryVariant } from './canary.types';

/** The whole of a percentage: `fractional` weights are integers, so 100 % is 10^6 buckets (0.0001 % each). */
const TOTAL_WEIGHT = 100 * 10 ** PERCENT_DECIMALS;

type JsonLogic = Record<string, unknown>;
type Source = 'headers' | 'cookies' | 'claims';

/** A regex matcher, run before flagd (JSON Logic has no regex); its result is the context attribute `matches.<id>`. */
export interface CompiledRegex {
  readonly id: string;
  readonly source: Source;
  readonly name: string;
  readonly pattern: RegExp;
}

/** Where the sticky key (flagd's `targetingKey`) is read. */
export interface StickySource {
  readonly source: Source;
  readonly name: string;
}

/** What a request must provide for the rules; everything else is not read. */
export interface CanaryRuleNeeds {
  readonly cookies: boolean;
  readonly claims: boolean;
}

/** The evaluation context handed to flagd-core (see README, "Canary routing"). */
export interface CanaryEvaluationContext {
  targetingKey?: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  cookies: Readonly<Record<string, string>>;
  claims: Readonly<Record<string, unknown>>;
  matches?: Record<string, boolean>;
}

export interface RuleOutcome {
  readonly variant: CanaryVariant;
  readonly reason: CanaryReason;
  readonly detail?: string;
}

/** A flagd flag set: `{ flags: { <flagKey>: flag } }`, as a flagd sync source or an edge reads it. */
export interface CanaryFlagSet {
  readonly flags: Readonly<Record<string, Flag>>;
}

const QUIET: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

/**
 * Rules compiled once into a flagd flag (variants `stable` and `canary`) and loaded into flagd-core;
 * each request is one evaluation of it. Shorthand rules compile to
 * `if(any header matches, "canary", any cookie matches, "canary", any claim matches, "canary",
 * fractional over targetingKey)`, so changing 5 % to 10 % widens the canary bucket range from
 * [0, 5 %) to [0, 10 %) of the same hash: the first 5 % stay.
 */
export class CompiledCanaryRules {
  readonly needs: CanaryRuleNeeds;

  private constructor(
    readonly flagKey: string,
    /** The flag set an OpenFeature edge loads to compute the same cohorts. */
    readonly flagSet: CanaryFlagSet,
    readonly regexes: readonly CompiledRegex[],
    readonly sticky: StickySource | undefined,
    private readonly core: FlagdCore,
    /** For shorthand rules with several kinds of match: which kind picked the canary. */
    private readonly reasonCore: FlagdCore | undefined,
    /** The single kind of rule that can pick the canary, when there is only one. */
    private readonly onlyReason: CanaryReason | undefined,
    private readonly percent: number,
    /**
     * Shorthand rules only: the same answers as `core`, run as plain code on the request path (see
     * ShorthandMatcher). Undefined for a flagd definition, which flagd-core evaluates per request.
     */
    readonly shorthand?: ShorthandMatcher,
  ) {
    this.needs = {
      cookies: sticky?.source === 'cookies' || regexes.some((r) => r.source === 'cookies') || usesVar(flagSet, 'cookies.'),
      claims: sticky?.source === 'claims' || regexes.some((r) => r.source === 'claims') || usesVar(flagSet, 'claims.'),
    };
  }

  /** Compiles validated rules; throws CanaryRulesError when flagd-core refuses the result. */
  static compile(rules: CanaryRules): CompiledCanaryRules {
    const sticky = rules.stickyKey ? parseSticky(rules.stickyKey) : undefined;
    if (isFlagRules(rules)) {
      const flagSet: CanaryFlagSet = { flags: { [rules.flagKey]: rules.flag as unknown as Flag } };
      const variants = rules.flag.variants;
      const names = variants && typeof variants === 'object' ? Object.keys(variants) : [];
      const stray = names.filter((n) => n !== 'stable' && n !== 'canary');
      const problems: string[] = [];
      if (stray.length > 0 || !names.includes('stable')) {
        problems.push(
          `rules.flag: variants must be "stable" and "canary" (found ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'})`,
        );
      }
      const core = load(flagSet, rules.flagKey, 'rules.flag', problems);
      return new CompiledCanaryRules(rules.flagKey, flagSet, [], sticky, core, undefined, 'flag', 0);
    }
    const regexes: CompiledRegex[] = [];
    const header = anyOf('headers', rules.header, regexes, (name) => name.toLowerCase());
    const cookie = anyOf('cookies', rules.cookie, regexes);
    const claim = anyOf('claims', rules.claim, regexes);
    const percent = rules.percent ?? 0;
    const weight = Math.round(percent * 10 ** PERCENT_DECIMALS);
    const branches: Array<[JsonLogic, CanaryReason]> = [];
    if (header) branches.push([header, 'header']);
    if (cookie) branches.push([cookie, 'cookie']);
    if (claim) branches.push([claim, 'claim']);
    // Canary first: its buckets are [0, weight), so a larger weight keeps every earlier canary key.
    const fractional =
      weight > 0
        ? {
            fractional: [
              ['canary', weight],
              ['stable', TOTAL_WEIGHT - weight],
            ],
          }
        : undefined;
    const ifArgs: unknown[] = branches.flatMap(([condition]) => [condition, 'canary']);
    let targeting: JsonLogic | undefined;
    if (ifArgs.length === 0) targeting = fractional;
    else targeting = { if: fractional ? [...ifArgs, fractional] : [...ifArgs, 'stable'] };
    const flag: Flag = {
      state: 'ENABLED',
      defaultVariant: 'stable',
      variants: { stable: 'stable', canary: 'canary' },
      ...(targeting ? { targeting: targeting as unknown as string } : {}),
    };
    const flagSet: CanaryFlagSet = { flags: { [rules.flagKey]: flag } };
    const problems: string[] = [];
    const core = load(flagSet, rules.flagKey, 'rules', problems);
    const kinds: CanaryReason[] = [...branches.map(([, reason]) => reason), ...(weight > 0 ? (['percent'] as const) : [])];
    let reasonCore: FlagdCore | undefined;
    if (kinds.length > 1 && branches.length > 0) {
      // Same conditions, in the same order, answering which one held; only read once the main flag said canary.
      const reasonFlag: Flag = {
        state: 'ENABLED',
        defaultVariant: weight > 0 ? 'percent' : 'no_match',
        variants: { header: 'header', cookie: 'cookie', claim: 'claim', percent: 'percent', no_match: 'no_match' },
        targeting: { if: [...branches.flatMap(([condition, reason]) => [condition, reason]), null] } as unknown as string,
      };
      reasonCore = load({ flags: { reason: reasonFlag } }, 'reason', 'rules', problems);
    }
    return new CompiledCanaryRules(
      rules.flagKey,
      flagSet,
      regexes,
      sticky,
      core,
      reasonCore,
      kinds.length === 1 ? kinds[0] : undefined,
      percent,
      ShorthandMatcher.of(rules, rules.flagKey, weight, TOTAL_WEIGHT),
    );
  }

  /** One decision; never throws (an evaluation error keeps the request stable). */
  evaluate(context: CanaryEvaluationContext): RuleOutcome {
    if (this.shorthand) return this.shorthand.evaluate(context);
    return this.evaluateWithFlagd(context);
  }

  /**
   * The same decision by flagd-core, whatever the rules: the request path for a flagd definition,
   * and for shorthand rules the reference the spec holds `evaluate` to. Regex rules are run here,
   * into `context.matches` (JSON Logic has no regex).
   */
  evaluateWithFlagd(context: CanaryEvaluationContext): RuleOutcome {
    if (this.regexes.length > 0 && context.matches === undefined) {
      const matches: Record<string, boolean> = {};
      for (const regex of this.regexes) {
        const value = context[regex.source][regex.name];
        matches[regex.id] = typeof value === 'string' && regex.pattern.test(value);
      }
      context.matches = matches;
    }
    const flag = this.core.getFlag(this.flagKey);
    let resolution;
    try {
      resolution = flag?.evaluate(context as unknown as EvaluationContext, QUIET);
    } catch (error) {
      return { variant: 'stable', reason: 'evaluation_error', detail: error instanceof Error ? error.message : String(error) };
    }
    if (!resolution || resolution.reason === 'ERROR') {
      return { variant: 'stable', reason: 'evaluation_error', detail: resolution?.errorMessage ?? 'flag not loaded' };
    }
    if (resolution.variant !== 'canary') {
      const keyless = this.percent > 0 && !context.targetingKey;
      return { variant: 'stable', reason: keyless ? 'no_sticky_key' : 'no_match' };
    }
    if (this.onlyReason) return { variant: 'canary', reason: this.onlyReason };
    const which = this.reasonCore?.getFlag('reason')?.evaluate(context as unknown as EvaluationContext, QUIET);
    const reason = (which?.variant ?? 'percent') as CanaryReason;
    return { variant: 'canary', reason: reason === 'no_match' ? 'percent' : reason };
  }
}

function load(flagSet: CanaryFlagSet, flagKey: string, where: string, problems: string[]): FlagdCore {
  const warnings: string[] = [];
  const logger: Logger = { ...QUIET, warn: (...args: unknown[]) => warnings.push(args.map(String).join(' ')) };
  const storage = new MemoryStorage(logger);
  const core = new FlagdCore(storage, logger);
  try {
    // Strict: the flag set must pass flagd's own JSON schema, as a flagd daemon would require.
    storage.setConfigurations(JSON.stringify(flagSet), true);
    // flagd-core only warns about targeting it cannot build, then answers PARSE_ERROR on each evaluation.
    const probe = core.getFlag(flagKey)?.evaluate({}, QUIET);
    if (probe?.reason === 'ERROR' && probe.errorCode === 'PARSE_ERROR') problems.push(`${where}: ${probe.errorMessage}`);
  } catch (error) {
    problems.push(`${where}: flagd-core refused the flag definition: ${describeParseError(error)}`);
  }
  if (problems.length > 0) throw new CanaryRulesError(problems);
  return core;
}

function describeParseError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // flagd's schema errors are a JSON array; keep them on one line, shortened.
  const text = error.message.replace(/\s+/g, ' ');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

function anyOf(
  source: Source,
  matchers: Readonly<Record<string, CanaryMatcher>> | undefined,
  regexes: CompiledRegex[],
  normalise: (name: string) => string = (name) => name,
): JsonLogic | undefined {
  if (!matchers) return undefined;
  const conditions: JsonLogic[] = [];
  for (const [rawName, matcher] of Object.entries(matchers)) {
    const name = normalise(rawName);
    const value = { var: `${source}.${name}` };
    if (typeof matcher === 'string') conditions.push({ '===': [value, matcher] });
    else if (Array.isArray(matcher)) conditions.push({ in: [value, [...matcher]] });
    else {
      const id = `${source[0]}${regexes.length}`;
      regexes.push({ id, source, name, pattern: new RegExp(matcher.regex) });
      conditions.push({ '===': [{ var: `matches.${id}` }, true] });
    }
  }
  if (conditions.length === 0) return undefined;
  return conditions.length === 1 ? conditions[0] : { or: conditions };
}

function parseSticky(stickyKey: string): StickySource {
  const at = stickyKey.indexOf(':');
  const kind = stickyKey.slice(0, at);
  const name = stickyKey.slice(at + 1);
  if (kind === 'header') return { source: 'headers', name: name.toLowerCase() };
  return { source: kind === 'cookie' ? 'cookies' : 'claims', name };
}

function usesVar(flagSet: CanaryFlagSet, prefix: string): boolean {
  return JSON.stringify(flagSet).includes(`"var":"${prefix}`);
}
