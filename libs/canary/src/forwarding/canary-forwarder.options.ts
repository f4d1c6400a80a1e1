import { z } from 'zod';
import { optionGroup, parseModuleOptions } from '@nest-rollout/lifecycle';
import { CanaryOptionsError } from '../canary.errors';
import { CANARY_HOP_HEADER } from './forwarding.constants';

export const DEFAULT_CANARY_FORWARDING_OPTIONS = {
  connectTimeoutMs: 1_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  keepAliveTimeoutMs: 4_000,
  connectionsPerOrigin: 128,
  hopHeader: CANARY_HOP_HEADER,
} as const;

const MILLISECONDS = 'must be a whole number of milliseconds > 0';
const milliseconds = z.int({ error: MILLISECONDS }).positive({ error: MILLISECONDS });
const COUNT = 'must be a whole number > 0';
const HEADER_NAME = 'must be a lower-case header name such as "x-canary-hop"';

const canaryForwardingOptionsSchema = optionGroup({
  /**
   * Time to open a connection to a canary instance. A connection that fails within it (refused,
   * unreachable, timed out) has sent nothing, so the request is served locally (`connect_failed`).
   * @default 1000
   */
  connectTimeoutMs: milliseconds.default(DEFAULT_CANARY_FORWARDING_OPTIONS.connectTimeoutMs),
  /**
   * Time from the end of the request until the canary's response headers. Past it the client gets a
   * 502 (`canary_no_response`); the request is not replayed, the canary may have acted on it. A
   * safe request without a body (a GET) is served locally instead (`canary_failed`).
   * @default 30000
   */
  headersTimeoutMs: milliseconds.default(DEFAULT_CANARY_FORWARDING_OPTIONS.headersTimeoutMs),
  /**
   * Longest silence between two chunks of the canary's response body; past it the response is cut.
   * @default 30000
   */
  bodyTimeoutMs: milliseconds.default(DEFAULT_CANARY_FORWARDING_OPTIONS.bodyTimeoutMs),
  /**
   * How long an idle connection to a canary is kept for reuse. Below the canary's own keep-alive
   * timeout (Node's default is 5 s), so that the canary never closes a connection the forwarder is
   * about to write on; the canary's `Keep-Alive: timeout=` hint lowers it further.
   * @default 4000
   */
  keepAliveTimeoutMs: milliseconds.default(DEFAULT_CANARY_FORWARDING_OPTIONS.keepAliveTimeoutMs),
  /**
   * Most connections open to one canary instance; further requests queue for a free one.
   * @default 128
   */
  connectionsPerOrigin: z.int({ error: COUNT }).positive({ error: COUNT }).default(DEFAULT_CANARY_FORWARDING_OPTIONS.connectionsPerOrigin),
  /**
   * Header that marks a forwarded request (value `1`); a request carrying it is served locally.
   * @default 'x-canary-hop'
   */
  hopHeader: z
    .string({ error: HEADER_NAME })
    .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, { error: HEADER_NAME })
    .default(DEFAULT_CANARY_FORWARDING_OPTIONS.hopHeader),
});

/** Forwarding options as given; every field is optional. */
export type CanaryForwardingOptions = z.input<typeof canaryForwardingOptionsSchema>;
/** Forwarding options after defaults. */
export type ResolvedCanaryForwardingOptions = z.output<typeof canaryForwardingOptionsSchema>;

/**
 * Validates forwarding options and applies the defaults; every problem is reported at once in a
 * CanaryOptionsError, each named `forwarding.<option>`.
 */
export function resolveCanaryForwardingOptions(options?: CanaryForwardingOptions): ResolvedCanaryForwardingOptions {
  return parseModuleOptions(
    canaryForwardingOptionsSchema,
    options,
    (problems) =>
      new CanaryOptionsError(
        problems.map((problem) => (problem.startsWith('options ') ? `forwarding ${problem.slice(8)}` : `forwarding.${problem}`)),
      ),
  );
}
