import { z } from 'zod';

/** Where the dynamic configuration is read from when DYNAMIC_CONFIG_FILE is unset, relative to the working directory. */
export const DEFAULT_DYNAMIC_CONFIG_FILE = 'config/dynamic.yaml';

/** A message for a value that is not a map at all; zod's own for the rest (an unknown key names it). */
const notAMap = (message: string) => (issue: { code: string }) => (issue.code === 'invalid_type' ? message : undefined);

/**
 * What a valid config/dynamic.yaml is. Strict where the sample reads it, so that a misspelt key
 * (`orders-list`) is rejected with the last good version kept, rather than silently ignored.
 */
export const sampleDynamicConfigSchema = z.strictObject(
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
     * The canary module's rules, read by it once it is wired in. Until then any map passes, so that
     * the file can carry them already; the canary module brings their real schema.
     */
    canary: z.record(z.string(), z.unknown(), { error: 'must be a map' }).optional(),
  },
  { error: notAMap('must be a map with the keys degrade and canary') },
);

export type SampleDynamicConfig = z.output<typeof sampleDynamicConfigSchema>;

/** The degrade switches the sample's routes can be tied to with `@Degradable()`. */
export type DegradeSwitch = Exclude<keyof SampleDynamicConfig['degrade'], 'retry_after_seconds'>;
