import type { IncomingHttpHeaders } from 'node:http';
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { describeError, METRICS_PUBLISHER } from '@nest-rollout/lifecycle';
import type { LifecycleClock, MetricsPublisher } from '@nest-rollout/lifecycle';
import { CANARY_CLOCK, CANARY_FORCE_HEADER, CANARY_OPTIONS, CANARY_RULES_SOURCE, CanaryEvent, CanaryMetric } from './canary.constants';
import { parseCookies, withoutCookie } from './canary.cookies';
import { CanaryRulesError } from './canary.errors';
import { optionalProvider } from './canary.providers';
import { ClaimsReader } from './canary.jwt';
import { parseCanaryRules } from './canary.options';
import type { ResolvedCanaryOptions } from './canary.options';
import { CompiledCanaryRules } from './canary.rules';
import type { CanaryEvaluationContext, CanaryFlagSet, RuleOutcome } from './canary.rules';
import { TrustPolicy } from './canary.trust';
import type { CanaryDecision, CanaryRequestView, CanaryRulesSource } from './canary.types';

const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});
const NO_COOKIES: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Decides, per request, stable or canary. Precedence: a trusted `x-canary: never`, then a trusted
 * `x-canary: always`, then the rules (header, cookie, claim matches, then the percentage), else
 * stable. Rules come from the options and, live, from `CANARY_RULES_SOURCE`; an invalid live rule
 * set is logged and the last good one stays.
 */
@Injectable()
export class CanaryService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Canary');
  private compiled: CompiledCanaryRules;
  private readonly claims: ClaimsReader | undefined;
  private readonly trust: TrustPolicy;
  private unsubscribe: (() => void) | undefined;

  constructor(
    @Inject(CANARY_OPTIONS) private readonly options: ResolvedCanaryOptions,
    @Inject(CANARY_CLOCK) clock: LifecycleClock,
    private readonly moduleRef: ModuleRef,
    @Optional() @Inject(METRICS_PUBLISHER) private readonly metrics?: MetricsPublisher,
  ) {
    // At boot an invalid rule set stops the start (CanaryRulesError names each problem).
    this.compiled = CompiledCanaryRules.compile(options.rules);
    this.claims = options.jwt ? new ClaimsReader(options.jwt) : undefined;
    this.trust = new TrustPolicy(options.trust, clock);
  }

  get track(): 'stable' | 'canary' {
    return this.options.track;
  }

  /** The flagd flag set in force: load it into an OpenFeature flagd provider to compute the same cohorts at an edge. */
  flagSet(): CanaryFlagSet {
    return this.compiled.flagSet;
  }

  onModuleInit(): void {
    // Wherever the application declares it, its own module included.
    const source = optionalProvider<CanaryRulesSource>(this.moduleRef, CANARY_RULES_SOURCE);
    if (!source) return;
    const subscription = source.subscribe((rules) => this.applyRules(rules));
    this.unsubscribe = typeof subscription === 'function' ? subscription : () => subscription.unsubscribe();
  }

  onModuleDestroy(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Validates, compiles and applies a rule set from the rules source; false (and a log line) when refused. */
  applyRules(input: unknown): boolean {
    try {
      const compiled = CompiledCanaryRules.compile(parseCanaryRules(input, this.options.jwt));
      this.compiled = compiled;
      this.logger.log({ event: CanaryEvent.RULES_APPLIED, flagKey: compiled.flagKey });
      return true;
    } catch (error) {
      const problems = error instanceof CanaryRulesError ? error.problems : [describeError(error)];
      this.logger.warn({ event: CanaryEvent.RULES_REJECTED, problems });
      return false;
    }
  }

  /**
   * The decision for one request. Synchronous unless a token has to be verified. Strips routing
   * headers (and the routing cookie) that the peer was not trusted to send.
   */
  decide(req: CanaryRequestView, route: string): CanaryDecision | Promise<CanaryDecision> {
    const compiled = this.compiled;
    const headers = req.headers;

    // No closure and no cookie parse per request unless a cookie is read: this runs on every request of the route.
    const forced = headers[CANARY_FORCE_HEADER] === undefined && !mentionsForceCookie(headers.cookie) ? undefined : this.forced(req);
    if (forced)
      return this.record({
        variant: forced === 'never' ? 'stable' : 'canary',
        reason: forced === 'never' ? 'forced_never' : 'forced_always',
        route,
      });

    if (compiled.needs.claims && this.claims) {
      let cookies: Readonly<Record<string, string>> | undefined;
      const readCookies = () => (cookies ??= parseCookies(headers.cookie));
      const token = this.claims.token(headers, readCookies);
      return this.claims.read(token).then((result) => {
        const claims = 'claims' in result ? result.claims : NO_CLAIMS;
        const outcome = this.evaluate(compiled, headers, compiled.needs.cookies ? readCookies() : NO_COOKIES, claims);
        // A refused token only matters when the rules picked nothing else.
        if ('refused' in result && outcome.variant === 'stable' && token !== undefined) {
          return this.record({ variant: 'stable', reason: 'token_invalid', detail: result.refused, route });
        }
        return this.record(decisionOf(outcome, route));
      });
    }
    const cookies = compiled.needs.cookies ? parseCookies(headers.cookie) : NO_COOKIES;
    return this.record(decisionOf(this.evaluate(compiled, headers, cookies, NO_CLAIMS), route));
  }

  private evaluate(
    compiled: CompiledCanaryRules,
    headers: IncomingHttpHeaders,
    cookies: Readonly<Record<string, string>>,
    claims: Readonly<Record<string, unknown>>,
  ): RuleOutcome {
    let targetingKey: string | undefined;
    if (compiled.sticky) {
      const { source, name } = compiled.sticky;
      const value = (source === 'headers' ? headers : source === 'cookies' ? cookies : claims)[name];
      if ((typeof value === 'string' && value !== '') || typeof value === 'number') targetingKey = String(value);
    }
    // One literal per case, each of a fixed shape (a property added later would change the object's shape).
    const context: CanaryEvaluationContext =
      targetingKey === undefined ? { headers, cookies, claims } : { targetingKey, headers, cookies, claims };
    return compiled.evaluate(context);
  }

  /** `always` / `never` when the request asks for a side and may; otherwise strips what it sent. */
  private forced(req: CanaryRequestView): 'always' | 'never' | undefined {
    const header = req.headers[CANARY_FORCE_HEADER];
    const hasCookie = mentionsForceCookie(req.headers.cookie);
    if (header === undefined && !hasCookie) return undefined;
    const value =
      typeof header === 'string'
        ? header.trim().toLowerCase()
        : hasCookie
          ? parseCookies(req.headers.cookie)[CANARY_FORCE_HEADER]?.toLowerCase()
          : undefined;
    if ((value === 'always' || value === 'never') && this.trust.mayForce(req, value)) return value;
    // Untrusted (or meaningless): nothing downstream or at the canary may see it as a routing instruction.
    delete req.headers[CANARY_FORCE_HEADER];
    if (hasCookie && typeof req.headers.cookie === 'string') req.headers.cookie = withoutCookie(req.headers.cookie, CANARY_FORCE_HEADER);
    return undefined;
  }

  private record(decision: CanaryDecision): CanaryDecision {
    if (this.options.onDecision) this.announce(this.options.onDecision, decision);
    this.metrics?.increment(CanaryMetric.DECISIONS_TOTAL, { route: decision.route, variant: decision.variant, reason: decision.reason });
    // The trace id is added to the line by the logger (@nest-rollout/logging reads the request's trace context).
    // `no_match` (no rule applied: what an undecorated route does) is counted, not logged: with a
    // logger Nest cannot ask for its level (nestjs-pino's), the line would be built on every request
    // of the route only for the logger to drop it.
    if (decision.reason !== 'no_match' && Logger.isLevelEnabled('debug')) {
      this.logger.debug({
        event: CanaryEvent.DECISION,
        route: decision.route,
        variant: decision.variant,
        reason: decision.reason,
        detail: decision.detail,
      });
    }
    return decision;
  }

  private announce(onDecision: (decision: CanaryDecision) => void, decision: CanaryDecision): void {
    try {
      onDecision(decision);
    } catch (error) {
      this.logger.warn({ event: CanaryEvent.ON_DECISION_FAILED, route: decision.route, error: describeError(error) });
    }
  }
}

/**
 * The decision for `route`, as an object literal of one fixed shape: a spread (`{ ...outcome, route }`)
 * makes V8 build it property by property, slower to create and to read on every request.
 */
function decisionOf(outcome: RuleOutcome, route: string): CanaryDecision {
  return outcome.detail === undefined
    ? { variant: outcome.variant, reason: outcome.reason, route }
    : { variant: outcome.variant, reason: outcome.reason, detail: outcome.detail, route };
}

/** Whether a Cookie header may hold the force cookie (a cheap test before any parse). */
function mentionsForceCookie(cookie: string | string[] | undefined): boolean {
  return typeof cookie === 'string' && cookie.includes(CANARY_FORCE_HEADER);
}
