import { HttpStatus, Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import {
  HealthCheckResult,
  HealthCheckService,
  HealthIndicatorFunction,
  HealthIndicatorResult,
  HealthIndicatorService,
} from '@nestjs/terminus';
import { hasReached, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import type { HealthCheckReport } from './health.check';
import { HEALTH_OPTIONS, HealthIndicatorKey } from './health.constants';
import type { ResolvedHealthOptions } from './health.options';
import { ReadinessService } from './readiness.service';

export type HealthProbeName = 'live' | 'ready' | 'startup';

/** A probe's answer, for transports other than Nest's router (the management server). */
export interface HealthProbeResponse {
  readonly statusCode: number;
  readonly body: HealthCheckResult;
}

/**
 * Builds the three probes' bodies with @nestjs/terminus, from the state the lifecycle and the
 * background checks already hold: answering a probe costs no I/O, whatever the dependencies do.
 */
@Injectable()
export class HealthProbes {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly lifecycle: LifecycleService,
    private readonly readiness: ReadinessService,
    @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
  ) {}

  /** Terminus' check for the probe: resolves with the body, or throws ServiceUnavailableException(body). */
  check(probe: HealthProbeName): Promise<HealthCheckResult> {
    return this.health.check(this.indicatorsFor(probe));
  }

  /** The same answer as a status code and body. */
  async respond(probe: HealthProbeName): Promise<HealthProbeResponse> {
    try {
      return { statusCode: HttpStatus.OK, body: await this.check(probe) };
    } catch (error) {
      if (error instanceof ServiceUnavailableException) {
        return { statusCode: HttpStatus.SERVICE_UNAVAILABLE, body: error.getResponse() as HealthCheckResult };
      }
      throw error;
    }
  }

  private indicatorsFor(probe: HealthProbeName): HealthIndicatorFunction[] {
    const state = this.lifecycle.state;
    const details: Record<string, string> = this.options.exposeState ? { state } : {};
    switch (probe) {
      // Liveness never looks at dependencies and stays up while draining: a slow database or a
      // drain must not get the pod restarted.
      case 'live':
        return [() => this.indicators.check(HealthIndicatorKey.PROCESS).up(details)];
      case 'startup': {
        if (hasReached(state, LifecycleState.READY)) return [() => this.lifecycleResult(true, details)];
        // Until the instance has started, the body also says what it is waiting for: the checks
        // that will hold readiness (a database that is not up yet is named here, not just "WARMING_UP").
        return [
          () => this.lifecycleResult(false, details),
          ...this.readiness.snapshot().checks.map((report) => () => this.checkResult(report)),
        ];
      }
      case 'ready': {
        const snapshot = this.readiness.snapshot();
        const lifecycleReady = snapshot.lifecycleState === LifecycleState.READY;
        const lifecycleDetails: Record<string, string> = this.options.exposeState ? { state: snapshot.lifecycleState } : {};
        return [
          () => this.lifecycleResult(lifecycleReady, lifecycleDetails),
          ...snapshot.checks.map((report) => () => this.checkResult(report)),
        ];
      }
    }
  }

  private lifecycleResult(passes: boolean, details: Record<string, string>): HealthIndicatorResult {
    const session = this.indicators.check(HealthIndicatorKey.LIFECYCLE);
    return passes ? session.up(details) : session.down(details);
  }

  /** A check in terminus' format; a non-critical check that is down is `degraded`, which keeps the probe at 200. */
  private checkResult(report: HealthCheckReport): HealthIndicatorResult {
    const data: Record<string, string | number | boolean | null> = {
      ...report.details,
      dependency: report.dependency,
      critical: report.critical,
    };
    // `status` is terminus' own key; a check's detail of that name would make it throw.
    delete data.status;
    if (report.checkedAt !== undefined) {
      data.checkedAt = new Date(report.checkedAt).toISOString();
      data.durationMs = report.durationMs ?? 0;
    }
    if (report.observed !== report.status) data.observed = report.observed;
    if (report.kind) {
      data.kind = report.kind;
      data.message = report.message ?? '';
    }
    const session = this.indicators.check(report.name);
    if (report.status === 'up') return session.up(data);
    if (report.critical) return session.down(data);
    // `degraded` (terminus 12) keeps the probe at 200; terminus 11 has no such status, so there a
    // non-critical failure is reported as up with its failure details.
    return typeof session.degraded === 'function' ? session.degraded(data) : session.up({ ...data, degraded: true });
  }
}
