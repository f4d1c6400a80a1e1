import { Controller, Get, Inject, Type } from '@nestjs/common';
import { HealthCheck, HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { LIFECYCLE_STATE_ORDER, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { HEALTH_OPTIONS, HealthIndicatorKey } from './health.constants';
import type { ResolvedHealthOptions } from './health.options';

/**
 * The three probes of DESIGN.md: liveness never touches dependencies and stays up while draining
 * (terminus' usual set-up answers 503 on both, which gets a draining pod restarted); readiness is
 * up only at READY; startup passes from READY on.
 */
export function createHealthController(path: string): Type<unknown> {
  @Controller(path)
  class HealthController {
    constructor(
      private readonly health: HealthCheckService,
      private readonly indicators: HealthIndicatorService,
      private readonly lifecycle: LifecycleService,
      @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
    ) {}

    @Get('live')
    @HealthCheck()
    live(): Promise<HealthCheckResult> {
      return this.health.check([() => this.indicators.check(HealthIndicatorKey.PROCESS).up(this.details())]);
    }

    @Get('ready')
    @HealthCheck()
    ready(): Promise<HealthCheckResult> {
      return this.health.check([() => this.lifecycleAtLeast(LifecycleState.READY, true)]);
    }

    @Get('startup')
    @HealthCheck()
    startup(): Promise<HealthCheckResult> {
      return this.health.check([() => this.lifecycleAtLeast(LifecycleState.READY, false)]);
    }

    private lifecycleAtLeast(state: LifecycleState, onlyThat: boolean) {
      const current = this.lifecycle.state;
      const passes = onlyThat ? current === state : LIFECYCLE_STATE_ORDER[current] >= LIFECYCLE_STATE_ORDER[state];
      const session = this.indicators.check(HealthIndicatorKey.LIFECYCLE);
      return passes ? session.up(this.details()) : session.down(this.details());
    }

    private details(): Record<string, string> {
      return this.options.exposeState ? { state: this.lifecycle.state } : {};
    }
  }
  return HealthController;
}
