import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { hasReached, LifecycleService, LifecycleState, LifecycleStateChange } from '@nest-rollout/lifecycle';
import { Counter, Gauge } from 'prom-client';
import type { Subscription } from 'rxjs';
import { METRIC_CATALOGUE } from './metrics.catalogue';
import { METRICS_CLOCK, METRICS_OPTIONS, MetricName } from './metrics.constants';
import type { MetricsClock } from './metrics.clock';
import type { ResolvedMetricsOptions } from './metrics.options';
import { acquireMetric, latestOwner, releaseMetric } from './shared-metric';

const STATES = Object.values(LifecycleState);

/**
 * What one application says about itself: build info, lifecycle state and transitions, shutdown
 * duration, requests in flight. Read at scrape time (prom-client's `collect`), so none of it costs
 * anything per request.
 *
 * Several applications may share one registry (tests, hot reload). The in-flight gauge then sums
 * them, and the transitions counter counts them all; `app_info`, the state and the shutdown
 * duration describe the most recently started application still open.
 */
@Injectable()
export class InstanceMetrics implements OnApplicationShutdown {
  /** Scrapes of the endpoint on the application's port running now: the lifecycle counts them in flight. */
  scrapesInFlight = 0;
  private shutdownStartedAt: number | undefined;
  private shutdownEndedAt: number | undefined;
  private readonly subscription: Subscription | undefined;
  private readonly transitions: Counter<string>;
  private readonly acquired: object[] = [];

  constructor(
    @Inject(METRICS_OPTIONS) private readonly options: ResolvedMetricsOptions,
    @Inject(METRICS_CLOCK) private readonly clock: MetricsClock,
    private readonly lifecycle: LifecycleService,
  ) {
    const registry = options.registry;
    const gauge = (name: keyof typeof GAUGE_READERS) => {
      const { help, labelNames } = METRIC_CATALOGUE[name];
      const read = GAUGE_READERS[name];
      return acquireMetric(registry, name, `gauge[${labelNames.join(',')}]`, this as InstanceMetrics, (owners) => {
        return new Gauge({
          name,
          help,
          labelNames: [...labelNames],
          registers: [],
          collect(this: Gauge<string>) {
            this.reset();
            read(this, owners);
          },
        });
      });
    };
    this.acquired.push(
      gauge(MetricName.APP_INFO),
      gauge(MetricName.LIFECYCLE_STATE),
      gauge(MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS),
      gauge(MetricName.HTTP_REQUESTS_IN_FLIGHT),
    );
    const { help, labelNames } = METRIC_CATALOGUE[MetricName.LIFECYCLE_TRANSITIONS_TOTAL];
    this.transitions = acquireMetric(
      registry,
      MetricName.LIFECYCLE_TRANSITIONS_TOTAL,
      `counter[${labelNames.join(',')}]`,
      this as InstanceMetrics,
      () => new Counter({ name: MetricName.LIFECYCLE_TRANSITIONS_TOTAL, help, labelNames: [...labelNames], registers: [] }),
    );
    this.acquired.push(this.transitions);
    // From construction on, before the server can listen: the first transition (STARTING ->
    // WARMING_UP) comes with the listen, and none may be missed.
    this.subscription = lifecycle.changes$.subscribe((change) => this.onTransition(change));
  }

  get appInfoLabels(): Record<string, string> {
    const { version, color, instanceId } = this.lifecycle.identity;
    // `instance_id`, not `instance`: Prometheus sets `instance` to the scrape target and would
    // rename ours to `exported_instance`.
    return { version, color, track: this.options.track, commit: this.options.commit, instance_id: instanceId };
  }

  get state(): LifecycleState {
    return this.lifecycle.state;
  }

  get inFlightRequests(): number {
    return Math.max(0, this.lifecycle.inFlightRequests - this.scrapesInFlight);
  }

  /** Seconds since the shutdown began, frozen when it ended; 0 before. */
  get shutdownSeconds(): number {
    if (this.shutdownStartedAt === undefined) return 0;
    return ((this.shutdownEndedAt ?? this.clock.now()) - this.shutdownStartedAt) / 1000;
  }

  onApplicationShutdown(): void {
    // Still subscribed: the lifecycle reaches STOPPED after Nest's shutdown hooks, and the shutdown
    // duration freezes there. The subscription ends at STOPPED, or with the lifecycle it listens to.
    for (const metric of this.acquired) releaseMetric(this.options.registry, metric, this);
    this.acquired.length = 0;
  }

  private onTransition(change: LifecycleStateChange): void {
    this.transitions.inc({ from: change.from, to: change.to });
    // The shutdown begins at DRAINING, or at STOPPING when app.close() skips the drain.
    if (this.shutdownStartedAt === undefined && hasReached(change.to, LifecycleState.DRAINING)) {
      this.shutdownStartedAt = change.at;
    }
    if (change.to === LifecycleState.STOPPED) {
      this.shutdownEndedAt = change.at;
      this.subscription?.unsubscribe();
    }
  }
}

type GaugeReader = (gauge: Gauge<string>, owners: ReadonlySet<InstanceMetrics>) => void;

const GAUGE_READERS = {
  [MetricName.APP_INFO]: (gauge, owners) => {
    const owner = latestOwner(owners);
    if (owner) gauge.set(owner.appInfoLabels, 1);
  },
  [MetricName.LIFECYCLE_STATE]: (gauge, owners) => {
    const owner = latestOwner(owners);
    if (owner) for (const state of STATES) gauge.set({ state }, state === owner.state ? 1 : 0);
  },
  [MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS]: (gauge, owners) => {
    gauge.set(latestOwner(owners)?.shutdownSeconds ?? 0);
  },
  [MetricName.HTTP_REQUESTS_IN_FLIGHT]: (gauge, owners) => {
    let sum = 0;
    for (const owner of owners) sum += owner.inFlightRequests;
    gauge.set(sum);
  },
} satisfies Record<string, GaugeReader>;
