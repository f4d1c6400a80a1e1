import { Controller, Get, Inject, NotFoundException, Type } from '@nestjs/common';
import { HealthCheck, HealthCheckResult } from '@nestjs/terminus';
import { HEALTH_OPTIONS } from './health.constants';
import { HealthProbeName, HealthProbes } from './health.probes';
import type { ResolvedHealthOptions } from './health.options';

/**
 * The three probes of DESIGN.md on the application's own port: liveness never touches dependencies
 * and stays up while draining (terminus' usual set-up answers 503 on both, which gets a draining
 * pod restarted); readiness is up at READY with every critical check up; startup passes from READY on.
 */
export function createHealthController(path: string): Type<unknown> {
  @Controller(path)
  class HealthController {
    constructor(
      private readonly probes: HealthProbes,
      @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
    ) {}

    @Get('live')
    @HealthCheck()
    live(): Promise<HealthCheckResult> {
      return this.serve('live');
    }

    @Get('ready')
    @HealthCheck()
    ready(): Promise<HealthCheckResult> {
      return this.serve('ready');
    }

    @Get('startup')
    @HealthCheck()
    startup(): Promise<HealthCheckResult> {
      return this.serve('startup');
    }

    private serve(probe: HealthProbeName): Promise<HealthCheckResult> {
      // With a management port the probes leave the public port, unless asked to stay; decided per
      // request rather than by leaving the controller out, because forRootAsync options resolve
      // after Nest has read the module's controllers.
      const management = this.options.management;
      if (management && !management.alsoOnAppPort) throw new NotFoundException();
      return this.probes.check(probe);
    }
  }
  return HealthController;
}
