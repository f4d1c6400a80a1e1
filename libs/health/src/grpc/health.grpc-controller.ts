import { join } from 'node:path';
import { Controller, Inject, Type } from '@nestjs/common';
import { hasReached, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { map, Observable, of, concat, NEVER, distinctUntilChanged } from 'rxjs';
import { HEALTH_GRPC_SERVICE, HEALTH_OPTIONS } from '../health.constants';
import type { ResolvedHealthOptions } from '../health.options';
import { ReadinessService } from '../readiness.service';

/** Path of the grpc.health.v1 proto shipped with this package, for the microservice's `protoPath`. */
export const HEALTH_GRPC_PROTO_PATH = join(__dirname, '..', '..', 'proto', 'health.proto');

/** grpc.health.v1 `HealthCheckResponse.ServingStatus`. */
export const GrpcServingStatus = {
  UNKNOWN: 0,
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;
export type GrpcServingStatus = (typeof GrpcServingStatus)[keyof typeof GrpcServingStatus];

export interface GrpcHealthCheckRequest {
  service?: string;
}
export interface GrpcHealthCheckResponse {
  status: GrpcServingStatus;
}

/** gRPC status code NOT_FOUND, which the health spec asks Check to return for an unknown service. */
const GRPC_NOT_FOUND = 5;

type Probe = 'liveness' | 'readiness' | 'startup';

/**
 * grpc.health.v1 for Nest gRPC microservices, answering from the same state as the HTTP probes, so
 * Kubernetes' native gRPC probes work: service `''` and `readiness` (and every `grpcServices` name)
 * follow readiness, `liveness` is SERVING while the process runs, `startup` from READY on.
 *
 * Built on demand, so that `@nestjs/microservices` is only loaded by applications that ask for it.
 */
export function createHealthGrpcController(): Type<unknown> {
  // Loaded here, not at the top: the package is an optional peer dependency.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { GrpcMethod, RpcException } = require('@nestjs/microservices') as typeof import('@nestjs/microservices');

  @Controller()
  class HealthGrpcController {
    constructor(
      private readonly readiness: ReadinessService,
      private readonly lifecycle: LifecycleService,
      @Inject(HEALTH_OPTIONS) private readonly options: ResolvedHealthOptions,
    ) {}

    @GrpcMethod(HEALTH_GRPC_SERVICE, 'Check')
    check(request: GrpcHealthCheckRequest): GrpcHealthCheckResponse {
      const probe = this.probeOf(request?.service ?? '');
      if (!probe) throw new RpcException({ code: GRPC_NOT_FOUND, message: `unknown service ${JSON.stringify(request?.service)}` });
      return { status: this.passes(probe) ? GrpcServingStatus.SERVING : GrpcServingStatus.NOT_SERVING };
    }

    /** The current status at once, then every change; the stream stays open as the spec asks. */
    @GrpcMethod(HEALTH_GRPC_SERVICE, 'Watch')
    watch(request: GrpcHealthCheckRequest): Observable<GrpcHealthCheckResponse> {
      const probe = this.probeOf(request?.service ?? '');
      if (!probe) return concat(of({ status: GrpcServingStatus.SERVICE_UNKNOWN }), NEVER);
      const source: Observable<boolean> =
        probe === 'readiness'
          ? this.readiness.ready$
          : probe === 'startup'
            ? this.lifecycle.state$.pipe(map((state) => hasReached(state, LifecycleState.READY)))
            : concat(of(true), NEVER);
      return source.pipe(
        distinctUntilChanged(),
        map((up) => ({ status: up ? GrpcServingStatus.SERVING : GrpcServingStatus.NOT_SERVING })),
      );
    }

    private probeOf(service: string): Probe | undefined {
      if (service === '' || service === 'readiness' || this.options.grpcServices.includes(service)) return 'readiness';
      if (service === 'liveness' || service === 'startup') return service;
      return undefined;
    }

    private passes(probe: Probe): boolean {
      if (probe === 'liveness') return true;
      if (probe === 'startup') return this.lifecycle.hasReached(LifecycleState.READY);
      return this.readiness.isReady();
    }
  }
  return HealthGrpcController;
}
