import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { FlagdCore } from '@openfeature/flagd-core';
import { CompiledCanaryRules, resolveCanaryOptions } from '@nest-rollout/canary';
import type { CanaryModuleOptions } from '@nest-rollout/canary';
import { AppInstance } from '../../test/support/apps';
import { isOk, RequestRecord } from '../../test/support/load';
import { delay } from '../../test/support/process';

/** The header the load sends its user in, and the rules' sticky key on it. */
export const USER_HEADER = 'x-user';
/** The users the load draws from: enough that a 10 % cohort is about a hundred of them. */
export const USERS: readonly string[] = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
/** The `@Canary()` route of the sample; order 1 is created on every instance before it takes traffic. */
export const QUOTE_ORDER_ID = '1';
export const QUOTE_PATH = `/orders/${QUOTE_ORDER_ID}/quote`;
/** Share of the load sent to the quote route (taken from `GET /orders`). */
export const QUOTE_SHARE = 0.3;

type Rules = NonNullable<CanaryModuleOptions['rules']>;

/** A step of the release's rules: a percentage of users on the sticky key, or none (the section removed). */
export type RulesStep = { readonly percent: number } | 'removed';

export const rulesOf = (step: RulesStep): Rules | undefined =>
  step === 'removed' ? undefined : { percent: step.percent, stickyKey: `header:${USER_HEADER}` };

export const stepLabel = (step: RulesStep): string => (step === 'removed' ? 'removed' : `${step.percent} %`);

/** The pricing in a quote's body (`v1` on a stable instance, `v2` on a canary one). */
export function pricingOf(body: string): string | undefined {
  try {
    const pricing = (JSON.parse(body) as { pricing?: unknown }).pricing;
    return typeof pricing === 'string' ? pricing : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The dynamic configuration file every sample instance of the run reads (as the pods of a
 * Deployment read one ConfigMap), rewritten as deploy tools do: written aside, renamed over.
 */
export class RulesFile {
  readonly path: string;
  private readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'nest-rollout-bench-canary-'));
    this.path = join(this.dir, 'dynamic.yaml');
    this.write('removed');
  }

  /** JSON is YAML; no `canary:` section means every request stable. Returns when it was written. */
  write(step: RulesStep): number {
    const rules = rulesOf(step);
    const aside = join(this.dir, '.dynamic.yaml.tmp');
    writeFileSync(aside, JSON.stringify(rules ? { canary: rules } : {}));
    renameSync(aside, this.path);
    return Date.now();
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const APPLIED_EVENT = '"canary.rules_applied"';
const appliedCount = (instance: AppInstance) => instance.process.stdout.filter((l) => l.includes(APPLIED_EVENT)).length;

/**
 * Counts of `canary.rules_applied` per instance now, then a wait until each one logged it once
 * more. The log is buffered (up to a second), so the moment seen is a bound: by then the instance
 * decides by the new rules.
 */
export function appliedWatch(instances: readonly AppInstance[]): (timeoutMs: number) => Promise<number> {
  const before = new Map(instances.map((i) => [i, appliedCount(i)]));
  return async (timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const late = instances.filter((i) => i.process.running && appliedCount(i) <= before.get(i)!);
      if (late.length === 0) return Date.now();
      if (Date.now() > deadline)
        throw new Error(`canary rules not applied within ${timeoutMs} ms by ${late.map((i) => i.name).join(', ')}`);
      await delay(20);
    }
  };
}

/** Creates order 1 on a fresh instance (each has a database of its own), so that every instance can quote it. */
export async function seedOrder(instance: AppInstance): Promise<void> {
  // A connection of its own (agent: false): nothing kept alive that could hold up the instance's shutdown.
  const answer = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
    const req = request(
      `${instance.url}/orders`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify({ item: 'tea', quantity: 3 }));
  });
  const id = (JSON.parse(answer.body) as { id?: string }).id;
  if (answer.status !== 201 || id !== QUOTE_ORDER_ID) {
    throw new Error(`${instance.name}: seeding order ${QUOTE_ORDER_ID} answered ${answer.status} ${answer.body}`);
  }
}

/** A stretch of the release during which one set of rules was in force on every instance that decides. */
export interface CanaryPhase {
  readonly name: string;
  readonly from: number;
  readonly to: number;
  /** The rules' percentage in force (0 without rules). */
  readonly percent: number;
  /** When those rules were written; `from` is when every instance that decides had logged them applied. */
  readonly writtenAt?: number;
}

export interface CanaryPhaseReport extends CanaryPhase {
  /** Quotes answered 2xx in the phase. */
  readonly quotes: number;
  /** Of them, answered by the canary (pricing v2). */
  readonly canary: number;
  /** The canary share these very requests should get: flagd's cohort of each request's user. */
  readonly expectedCanary: number;
  /** Quotes answered by the other variant than the one the user's cohort says. */
  readonly mismatched: number;
  /** Users answered by both variants within the phase (a sticky percentage makes this 0). */
  readonly usersOnBoth: number;
}

/** Per phase: who answered the quotes, against what the rules' cohort says for the same users. */
export function canaryPhases(records: readonly RequestRecord[], phases: readonly CanaryPhase[]): CanaryPhaseReport[] {
  return phases.map((phase) => {
    const inPhase = records.filter((r) => r.path === QUOTE_PATH && isOk(r) && r.startedAt >= phase.from && r.startedAt < phase.to);
    const cohort = cohortOf(phase.percent);
    const variants = new Map<string, Set<string>>();
    let canary = 0;
    let expectedCanary = 0;
    let mismatched = 0;
    for (const r of inPhase) {
      if (r.label === 'v2') canary += 1;
      const expected = r.user === undefined ? 'stable' : cohort(r.user);
      if (expected === 'canary') expectedCanary += 1;
      if ((r.label === 'v2') !== (expected === 'canary')) mismatched += 1;
      if (r.user !== undefined) variants.set(r.user, (variants.get(r.user) ?? new Set()).add(r.label ?? '?'));
    }
    return {
      ...phase,
      quotes: inPhase.length,
      canary,
      expectedCanary,
      mismatched,
      usersOnBoth: [...variants.values()].filter((v) => v.size > 1).length,
    };
  });
}

/** The variant flagd-core gives a user under a percentage of the sticky key, as the sample compiles it. */
function cohortOf(percent: number): (user: string) => string {
  const rules = rulesOf(percent === 0 ? 'removed' : { percent });
  if (!rules) return () => 'stable';
  const compiled = CompiledCanaryRules.compile(resolveCanaryOptions({ rules }).rules);
  const core = new FlagdCore();
  core.setConfigurations(JSON.stringify(compiled.flagSet));
  const memo = new Map<string, string>();
  return (user) => {
    let variant = memo.get(user);
    if (variant === undefined) {
      variant = core.resolveStringEvaluation(compiled.flagKey, 'stable', {
        targetingKey: user,
        headers: { [USER_HEADER]: user },
        cookies: {},
        claims: {},
      }).value;
      memo.set(user, variant);
    }
    return variant;
  };
}

/** "10 % (applied +420 ms): 9.8 % canary of 1480 quotes (cohort 9.8 %), 0 off their cohort, 0 users on both". */
export function describePhase(p: CanaryPhaseReport): string {
  const pct = (n: number) => (p.quotes === 0 ? '-' : `${((100 * n) / p.quotes).toFixed(1)} %`);
  const applied = p.writtenAt === undefined ? '' : ` (applied +${p.from - p.writtenAt} ms)`;
  return (
    `${p.name}${applied}: ${pct(p.canary)} canary of ${p.quotes} quotes (cohort ${pct(p.expectedCanary)}), ` +
    `${p.mismatched} off their cohort, ${p.usersOnBoth} users on both`
  );
}
