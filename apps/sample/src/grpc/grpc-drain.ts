import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { type LifecycleClock, LifecycleService, LifecycleState } from '@nest-rollout/lifecycle';
import { filter, type Subscription, take } from 'rxjs';
import { SampleEvent } from '../sample.constants';

/** The clock the drain's deadline runs on: `systemClock`, or a `ManualClock` in unit tests. */
export const GRPC_CLOCK = 'SAMPLE:GRPC_CLOCK';

/** The part of a grpc-js `Server` the drain uses. */
export interface DrainableGrpcServer {
  tryShutdown(callback: (error?: Error) => void): void;
  forceShutdown(): void;
}

/**
 * Drains the gRPC server as the lifecycle drains the HTTP one, with the same budget. While
 * DRAINING, calls are served as before; grpc.health.v1 already answers NOT_SERVING, so load
 * balancers and clients that watch it move away. At STOPPING (when the HTTP server stops
 * accepting), `tryShutdown`: no new calls, a GOAWAY that sends every client to reconnect
 * elsewhere, and the calls in flight finish; once `shutdownTimeoutMs` has passed, `forceShutdown`
 * cuts what is left (a health Watch stream never ends by itself). Nest's own close could only cut
 * every call at once, or (`gracefulShutdown`) wait for them without bound, past the hard deadline.
 */
@Injectable()
export class GrpcDrain implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('Grpc');
  private server: DrainableGrpcServer | undefined;
  private subscription: Subscription | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(GRPC_CLOCK) private readonly clock: LifecycleClock,
  ) {}

  /** Takes the server over once it listens. */
  serve(server: DrainableGrpcServer): void {
    this.server = server;
    this.subscription = this.lifecycle.state$
      .pipe(
        filter((state) => state === LifecycleState.STOPPING),
        take(1),
      )
      .subscribe(() => void this.stop());
  }

  /** Before Nest closes the microservice: by then the drain is under way, or starts now (a direct `app.close()`). */
  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
  }

  /** Resolves once the server is down; the same promise on every call. */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const server = this.server;
      if (!server) return resolve();
      const startedAt = this.clock.now();
      const budgetMs = this.lifecycle.options.shutdownTimeoutMs;
      let done = false;
      const finish = (forced: boolean, error?: Error) => {
        if (done) return;
        done = true;
        cancelDeadline();
        this.logger.log({
          event: SampleEvent.GRPC_STOPPED,
          forced,
          duration_ms: this.clock.now() - startedAt,
          ...(error ? { error: error.message } : {}),
        });
        resolve();
      };
      const cancelDeadline = this.clock.setTimer(budgetMs, () => {
        server.forceShutdown();
        finish(true);
      });
      server.tryShutdown((error) => finish(false, error));
    });
    return this.stopped;
  }
}
