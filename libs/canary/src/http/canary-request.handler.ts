import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { describeError } from '@nest-rollout/lifecycle';
import { CANARY_FORWARDER, CANARY_OPTIONS, CanaryEvent } from '../canary.constants';
import { CanaryContext } from '../canary.context';
import type { ResolvedCanaryOptions } from '../canary.options';
import { optionalProvider } from '../canary.providers';
import { CanaryService } from '../canary.service';
import type { CanaryDecision, CanaryForwarder, CanaryRouteOptions } from '../canary.types';

/** Where the decision sits on the raw request, for `@CanaryDecision()` and the handler's context. */
export const CANARY_DECISION_KEY = Symbol('canary.decision');

/** The raw request once decided. */
export interface DecidedRequest extends IncomingMessage {
  [CANARY_DECISION_KEY]?: CanaryDecision;
}

/** One `@Canary()` route as the adapter hooks know it. */
export interface CanaryHttpRoute {
  /** The template Nest registered (`/orders/:id/quote`): the `route` label. */
  readonly template: string;
  readonly options: CanaryRouteOptions;
}

/** What the adapter does once the request is decided. */
export interface CanaryRequestSteps {
  /** Continue to the body parser and the handler (Express `next`, Fastify `done`). */
  proceed(): void;
  /** The forwarder takes the response over: Fastify must let go of `reply.raw`. */
  commit?(): void;
}

/**
 * What runs, per request, on a `@Canary()` route, before the body is parsed: decides, records the
 * decision on the raw request, sets the sticky cookie or header, and on a stable instance streams a
 * canary request to the forwarder while the body is still unread. Adapter-agnostic: the Express and
 * Fastify hooks only find the route and call `handle`.
 */
@Injectable()
export class CanaryRequestHandler {
  private readonly logger = new Logger('Canary');

  private forwarder: CanaryForwarder | undefined;

  constructor(
    private readonly service: CanaryService,
    private readonly context: CanaryContext,
    @Inject(CANARY_OPTIONS) private readonly options: ResolvedCanaryOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  /**
   * Finds the `CANARY_FORWARDER` provider wherever the application declares it (its own module
   * included, not only a global one), once every provider exists.
   */
  resolveForwarder(): void {
    this.forwarder = optionalProvider<CanaryForwarder>(this.moduleRef, CANARY_FORWARDER);
  }

  handle(req: DecidedRequest, res: ServerResponse, route: CanaryHttpRoute, steps: CanaryRequestSteps): void {
    let decided: CanaryDecision | Promise<CanaryDecision>;
    try {
      decided = this.service.decide(req, route.template);
    } catch (error) {
      this.failed(req, route, error, steps);
      return;
    }
    if (decided instanceof Promise) {
      decided.then(
        (decision) => this.proceed(decision, req, res, route, steps),
        (error: unknown) => this.failed(req, route, error, steps),
      );
    } else {
      this.proceed(decided, req, res, route, steps);
    }
  }

  /** Runs `fn` (the route's handler) with the request's decision as `CanaryContext.current()`. */
  runHandler<T>(req: DecidedRequest, fn: () => T): T {
    const decision = req[CANARY_DECISION_KEY];
    return decision === undefined ? fn() : this.context.runForRequest(decision, fn);
  }

  private proceed(
    decision: CanaryDecision,
    req: DecidedRequest,
    res: ServerResponse,
    route: CanaryHttpRoute,
    steps: CanaryRequestSteps,
  ): void {
    this.stick(res, decision);
    if (decision.variant === 'stable') return this.serve(req, decision, steps);
    const local = this.servedLocallyBecause(route);
    if (local !== undefined) return this.serve(req, { ...decision, servedLocally: local }, steps);
    const forwarder = this.forwarder as CanaryForwarder;
    forwarder.forward(req, res, decision, { onCommit: steps.commit }).then(
      (result) => {
        // Forwarded: the response is written (or being written); the handler must not run.
        if (result !== 'forwarded') this.serve(req, { ...decision, servedLocally: result.servedLocally }, steps);
      },
      (error: unknown) => {
        // The contract says a forwarder does not throw; one that does has written nothing we know of.
        this.logger.error({ event: CanaryEvent.FORWARD_FAILED, route: route.template, error: describeError(error) });
        if (!res.headersSent && !res.destroyed) this.serve(req, { ...decision, servedLocally: 'forwarder_error' }, steps);
      },
    );
  }

  private serve(req: DecidedRequest, decision: CanaryDecision, steps: CanaryRequestSteps): void {
    req[CANARY_DECISION_KEY] = decision;
    steps.proceed();
  }

  /** Never a 500 for a decision: the request is served as stable. */
  private failed(req: DecidedRequest, route: CanaryHttpRoute, error: unknown, steps: CanaryRequestSteps): void {
    this.logger.error({ event: CanaryEvent.DECISION_FAILED, route: route.template, error: describeError(error) });
    this.serve(req, { variant: 'stable', reason: 'evaluation_error', route: route.template }, steps);
  }

  private servedLocallyBecause(route: CanaryHttpRoute): string | undefined {
    if (this.service.track === 'canary') return 'on_canary';
    if (route.options.forward === false) return 'not_forwarded';
    if (!this.forwarder) return 'no_forwarder';
    return undefined;
  }

  private stick(res: ServerResponse, decision: CanaryDecision): void {
    const { stickyHeader, stickyCookie } = this.options;
    if (stickyHeader === undefined && stickyCookie === undefined) return;
    if (res.headersSent) return;
    if (stickyHeader) res.setHeader(stickyHeader, decision.variant);
    if (stickyCookie) {
      const cookie = `${stickyCookie}=${decision.variant}; Path=/; SameSite=Lax; HttpOnly`;
      const previous = res.getHeader('set-cookie');
      res.setHeader('set-cookie', previous === undefined ? cookie : [...(Array.isArray(previous) ? previous : [String(previous)]), cookie]);
    }
  }
}
