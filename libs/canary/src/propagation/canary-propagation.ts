import type { Dispatcher } from 'undici';
import { CANARY_FORCE_HEADER } from '../canary.constants';
import type { CanaryDecision, CanaryVariant } from '../canary.types';
import { mergeBaggage } from './baggage';
import type { BaggageHeaderValue } from './baggage';
import { BAGGAGE_HEADER, CANARY_BAGGAGE_KEY } from './propagation.constants';

/** What propagation needs of a decision: only the side. */
export type PropagatedDecision = Pick<CanaryDecision, 'variant'>;

/**
 * Where the decision of the request being served is read from, at the moment a downstream call is
 * made: the `CanaryContext` (its AsyncLocalStorage), or any function returning the decision.
 * Undefined outside a decorated request: nothing is added then.
 */
export type CanaryDecisionSource = (() => PropagatedDecision | undefined) | { current(): PropagatedDecision | undefined };

/** The headers a downstream call carries for a decision. */
export interface CanaryPropagationHeaders {
  /** `always` on canary, `never` on stable: the downstream service stays on the same side. */
  readonly [CANARY_FORCE_HEADER]: 'always' | 'never';
  /** The caller's baggage with `feature_flag.result.variant=<variant>` set. */
  readonly [BAGGAGE_HEADER]: string;
}

/** `always` for the canary, `never` for stable: the values downstream force rules understand. */
export function forceHeaderValue(variant: CanaryVariant): 'always' | 'never' {
  return variant === 'canary' ? 'always' : 'never';
}

/**
 * The headers that carry `decision` downstream, to spread into a `fetch` init, an undici request,
 * or the headers of a Nest microservice record (`NatsRecordBuilder.setHeaders`,
 * `RmqRecordBuilder.setOptions({ headers })`, a Kafka message's `headers`). `baggage` is the
 * baggage the call would otherwise carry (the incoming request's, when it is passed on), merged.
 * Without a decision, nothing: `{ ...canaryHeaders(undefined) }` adds no header.
 *
 * ```ts
 * await fetch(url, { headers: { ...canaryHeaders(ctx.current(), req.headers.baggage) } });
 * ```
 */
export function canaryHeaders(
  decision: PropagatedDecision | undefined,
  baggage?: BaggageHeaderValue,
): CanaryPropagationHeaders | Record<string, never> {
  if (!decision) return {};
  return {
    [CANARY_FORCE_HEADER]: forceHeaderValue(decision.variant),
    [BAGGAGE_HEADER]: mergeBaggage(baggage, CANARY_BAGGAGE_KEY, decision.variant),
  };
}

/**
 * An undici interceptor that adds the decision of the current request to every call made through
 * the dispatcher, merging with the call's own `baggage` and replacing any `x-canary` it carries:
 *
 * ```ts
 * const downstream = new Agent().compose(canaryPropagationInterceptor(canaryContext));
 * await request(url, { dispatcher: downstream });        // or fetch(url, { dispatcher: downstream })
 * ```
 *
 * The source is read when the call is dispatched, inside the request's async context; calls made
 * outside a decorated request pass through untouched.
 */
export function canaryPropagationInterceptor(source: CanaryDecisionSource): Dispatcher.DispatcherComposeInterceptor {
  const current = typeof source === 'function' ? source : () => source.current();
  return (dispatch) => (options, handler) => {
    const decision = current();
    if (!decision) return dispatch(options, handler);
    return dispatch({ ...options, headers: withCanaryHeaders(options.headers, decision) }, handler);
  };
}

/**
 * `headers` (any form undici accepts: object, flat `[name, value, ...]` array, or pairs) as a flat
 * array with the decision's headers set.
 */
export function withCanaryHeaders(headers: Dispatcher.DispatchOptions['headers'], decision: PropagatedDecision): string[] {
  const flat: string[] = [];
  const baggage: string[] = [];
  const add = (name: string, value: string | readonly string[] | undefined): void => {
    if (value === undefined) return;
    const lower = name.toLowerCase();
    if (lower === CANARY_FORCE_HEADER) return;
    for (const one of typeof value === 'string' ? [value] : value) {
      if (lower === BAGGAGE_HEADER) baggage.push(one);
      else flat.push(name, one);
    }
  };
  if (Array.isArray(headers) && (headers.length === 0 || typeof headers[0] === 'string')) {
    const list = headers as readonly string[];
    for (let i = 0; i + 1 < list.length; i += 2) add(list[i], list[i + 1]);
  } else if (headers && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>) add(name, value);
  } else if (headers) {
    for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) add(name, value);
  }
  flat.push(CANARY_FORCE_HEADER, forceHeaderValue(decision.variant));
  flat.push(BAGGAGE_HEADER, mergeBaggage(baggage, CANARY_BAGGAGE_KEY, decision.variant));
  return flat;
}

/**
 * What `applyCanaryMetadata` needs of a gRPC `Metadata` (@grpc/grpc-js's class has this shape; it
 * is not a dependency of this lib).
 */
export interface CanaryMetadataCarrier {
  get(key: string): unknown[];
  set(key: string, value: string): void;
}

/**
 * Sets the decision on the metadata of an outgoing gRPC call (`x-canary` and merged `baggage`
 * entries, the same as over HTTP) and returns it; without a decision the metadata is untouched.
 *
 * ```ts
 * client.getQuote(request, applyCanaryMetadata(new Metadata(), canaryContext.current()), callback);
 * ```
 */
export function applyCanaryMetadata<M extends CanaryMetadataCarrier>(metadata: M, decision: PropagatedDecision | undefined): M {
  if (!decision) return metadata;
  const baggage = metadata.get(BAGGAGE_HEADER).filter((value): value is string => typeof value === 'string');
  metadata.set(CANARY_FORCE_HEADER, forceHeaderValue(decision.variant));
  metadata.set(BAGGAGE_HEADER, mergeBaggage(baggage, CANARY_BAGGAGE_KEY, decision.variant));
  return metadata;
}
