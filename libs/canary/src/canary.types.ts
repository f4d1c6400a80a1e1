/**
 * The shapes the canary module shares with its parts and with the code that builds on it: the
 * decision, the request context it lives in, and the hand-off to forwarding.
 */

/** The two sides of a release; the names of the variants of every compiled flagd flag. */
export type CanaryVariant = 'stable' | 'canary';

/** Release track of this instance. */
export type CanaryTrack = CanaryVariant;

/**
 * Why a request went where it went, as the `reason` label of `canary_decisions_total` and the log
 * field. A fixed set, so that the label stays bounded.
 *
 * - `forced_never` / `forced_always`: a trusted client sent `x-canary: never|always` (header or cookie).
 * - `header`, `cookie`, `claim`: a match rule picked the canary.
 * - `percent`: the request's sticky key fell in the canary share.
 * - `flag`: a full flagd definition picked the variant (its targeting is the user's own).
 * - `no_match`: no rule picked the canary.
 * - `no_sticky_key`: a percentage applies but the request has no sticky key, so it stays stable.
 * - `token_invalid`: a claim rule applies but the token is missing, forged, expired, signed with a
 *   refused algorithm, oversized or malformed; the request is evaluated without claims.
 * - `evaluation_error`: flagd-core failed on the request (never a 500: the request stays stable).
 */
export type CanaryReason =
  | 'forced_never'
  | 'forced_always'
  | 'header'
  | 'cookie'
  | 'claim'
  | 'percent'
  | 'flag'
  | 'no_match'
  | 'no_sticky_key'
  | 'token_invalid'
  | 'evaluation_error';

/** The decision for one request, as handlers, logs, metrics and the forwarder see it. */
export interface CanaryDecision {
  readonly variant: CanaryVariant;
  readonly reason: CanaryReason;
  /**
   * Details for the log line (why a token was refused, which flagd error), never a label: it may be
   * unbounded. Never holds a token, a cookie or a header value.
   */
  readonly detail?: string;
  /** The route template the decision was made for (`/orders/:id/quote`), the `route` label. */
  readonly route: string;
  /**
   * Set when a canary decision was served by this instance: `on_canary` (this is the canary),
   * `no_forwarder`, `not_forwarded` (`@Canary({ forward: false })`), `forwarder_error`, or the
   * forwarder's reason (`loop`, `no_canary_target`, `connect_failed`, `canary_failed`; over gRPC
   * also `streaming_call` and `unknown_method`).
   */
  readonly servedLocally?: string;
}

/**
 * What a decision reads of a request: its headers (names lower-case, as Node gives them; gRPC
 * metadata is turned into this shape) and the peer's address, for the proxy trust policy. The
 * decision deletes routing headers the peer was not trusted to send.
 */
export interface CanaryRequestView {
  readonly headers: import('node:http').IncomingHttpHeaders;
  readonly socket?: { readonly remoteAddress?: string };
}

/** Options of `@Canary()` on one route or controller. */
export interface CanaryRouteOptions {
  /**
   * Forward canary decisions (when a forwarder is provided). `false` only decides: the handler
   * reads the decision and serves both sides itself.
   * @default true
   */
  readonly forward?: boolean;
}

/**
 * Minimal view of the incoming request the forwarder receives: the adapter's raw Node request
 * (Express's `req` is one; Fastify's `request.raw`), so that a forwarder streams the body without
 * caring which adapter is in use.
 */
export type CanaryRawRequest = import('node:http').IncomingMessage;
/** The adapter's raw Node response (Express's `res`; Fastify's `reply.raw`). */
export type CanaryRawResponse = import('node:http').ServerResponse;

/** What the forwarder did with a canary decision. */
export type CanaryForwardResult =
  /** The response was streamed back from a canary instance; the handler must not run. */
  | 'forwarded'
  /**
   * The route's handler serves the request here: nothing was sent to a canary (none known, a loop
   * header, a connection that failed before any byte of the request went out), or a safe request
   * without a body got no answer from it. The reason is a short, bounded label such as
   * `no_canary_target`, `loop`, `connect_failed`, `canary_failed`.
   */
  | { readonly servedLocally: string };

/**
 * The hand-off from the decision to forwarding, provided under `CANARY_FORWARDER` by whoever
 * forwards (the forwarding part of this lib, or an application). The canary interceptor calls it
 * only for a `canary` decision on a `stable` instance; without a provider, canary decisions are
 * served locally with reason `no_forwarder`, and on a canary instance with `on_canary`.
 *
 * Contract: `forward` must never throw for an expected failure; it returns `servedLocally` as long
 * as it has written nothing to `res`. Once it has started the response, it owns it to the end
 * (including the error answer) and returns `'forwarded'`. A request whose body was partly sent is
 * never replayed.
 */
export interface CanaryForwarder {
  forward(
    req: CanaryRawRequest,
    res: CanaryRawResponse,
    decision: CanaryDecision,
    hooks?: CanaryForwardHooks,
  ): Promise<CanaryForwardResult>;
}

/** Adapter-specific steps around a forward. */
export interface CanaryForwardHooks {
  /**
   * Called once, when the forwarder takes the response over (it is about to write the canary's
   * answer, or a 502): from then on it answers, whatever happens. On Fastify the canary hooks pass
   * `() => reply.hijack()`, so that Fastify leaves `reply.raw` alone; Express needs nothing.
   */
  onCommit?(): void;
}

/**
 * A source of live canary rules, provided under `CANARY_RULES_SOURCE` by the application (for
 * instance on top of @nest-rollout/config's `DynamicConfigService.watch('canary')`; this lib does
 * not depend on the config lib). `subscribe` delivers the current rules at once if there are any,
 * then every change; the value has the shape of the `rules` option and is validated here: an
 * invalid value is rejected with a log line, and the last good rules stay in force.
 */
export interface CanaryRulesSource {
  subscribe(listener: (rules: unknown) => void): { unsubscribe(): void } | (() => void);
}
