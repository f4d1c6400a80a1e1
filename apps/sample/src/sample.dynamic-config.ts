import { CanaryRulesError, CompiledCanaryRules, parseCanaryRules } from '@nest-rollout/canary';
import type { CanaryJwtOptions, CanaryRules } from '@nest-rollout/canary';
import { z } from 'zod';

/** Where the dynamic configuration is read from when DYNAMIC_CONFIG_FILE is unset, relative to the working directory. */
export const DEFAULT_DYNAMIC_CONFIG_FILE = 'config/dynamic.yaml';

/** A message for a value that is not a map at all; zod's own for the rest (an unknown key names it). */
const notAMap = (message: string) => (issue: { code: string }) => (issue.code === 'invalid_type' ? message : undefined);

/**
 * What a valid config/dynamic.yaml is, for an instance whose canary module reads tokens with `jwt`
 * (CANARY_JWT_SECRET or CANARY_JWKS_URL) or none (claim rules are then refused). Strict where the
 * sample reads it, so that a misspelt key (`orders-list`) is rejected with the last good version
 * kept, rather than silently ignored.
 */
export const sampleDynamicConfigSchemaFor = (jwt: CanaryJwtOptions | undefined) =>
  z.strictObject(
    {
      /** Degrade switches: a route switched off answers 503 with Retry-After instead of doing its work. */
      degrade: z
        .strictObject(
          {
            /** GET /orders, the costliest read. */
            orders_list: z.boolean().default(false),
            /**
             * Retry-After of a switched-off route, in seconds: long enough that clients do not hammer a
             * service shedding load, short enough that they come back soon after it is switched on.
             */
            retry_after_seconds: z.number().int().min(1).max(3600).default(30),
          },
          { error: notAMap('must be a map of degrade switches') },
        )
        .prefault({}),
      /**
       * The canary rules of @Canary() routes (GET /orders/:id/quote), checked as the canary module
       * checks live rules, so that a rule set it would refuse is rejected here and the configuration
       * in force never differs from the rules in force. Left out: every request stable.
       */
      canary: z
        .unknown()
        .transform((input, ctx) => sampleCanaryRules(input, ctx, jwt))
        .prefault({}),
    },
    { error: notAMap('must be a map with the keys degrade and canary') },
  );

/** The schema of an instance that verifies no tokens. */
export const sampleDynamicConfigSchema = sampleDynamicConfigSchemaFor(undefined);

/**
 * The canary module's own checks, in the order it runs them on a live update: `parseCanaryRules`
 * (its rules schema, whose problems it words itself, naming an unknown key as one; claims
 * only with the `jwt` option the sample's CanaryModule was given), then compiling them for
 * flagd-core (a `flag` definition flagd refuses).
 */
function sampleCanaryRules(input: unknown, ctx: z.RefinementCtx<unknown>, jwt: CanaryJwtOptions | undefined): CanaryRules {
  try {
    const rules = parseCanaryRules(input, jwt);
    CompiledCanaryRules.compile(rules);
    return rules;
  } catch (error) {
    if (!(error instanceof CanaryRulesError)) throw error;
    for (const problem of error.problems) {
      // "rules.header.x-env: ..." names a place inside the section (one segment: a header name
      // may hold a dot); "rules: ..." and the rest are about the section itself.
      const named = /^rules(?:\.(\S+))?: ([\s\S]*)$/.exec(problem);
      const message = named ? named[2] : problem.replace(/^rules[. ]/, '');
      ctx.addIssue({ code: 'custom', path: named?.[1] ? [named[1]] : [], message, input });
    }
    return z.NEVER;
  }
}

export type SampleDynamicConfig = z.output<typeof sampleDynamicConfigSchema>;

/** The degrade switches the sample's routes can be tied to with `@Degradable()`. */
export type DegradeSwitch = Exclude<keyof SampleDynamicConfig['degrade'], 'retry_after_seconds'>;
