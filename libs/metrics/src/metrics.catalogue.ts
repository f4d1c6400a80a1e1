import { MetricName } from './metrics.constants';

export type MetricKind = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  readonly kind: MetricKind;
  readonly help: string;
  readonly labelNames: readonly string[];
}

/**
 * Type, help text and labels of every metric in `MetricName`: one place, so that the module that
 * publishes a metric, the dashboards and the alert rules agree on its shape.
 */
export const METRIC_CATALOGUE = {
  [MetricName.HTTP_REQUEST_DURATION_SECONDS]: {
    kind: 'histogram',
    help: 'Duration of the HTTP requests this instance answered, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'],
  },
  [MetricName.HTTP_REQUESTS_IN_FLIGHT]: {
    kind: 'gauge',
    help: 'HTTP requests this instance is handling now, apart from the scrape that reads this value.',
    labelNames: [],
  },
  [MetricName.RPC_SERVER_DURATION_SECONDS]: {
    kind: 'histogram',
    help: 'Duration of the microservice (gRPC, TCP, NATS, ...) handlers this instance ran, by transport, method and status code.',
    labelNames: ['transport', 'method', 'code'],
  },
  [MetricName.APP_INFO]: {
    kind: 'gauge',
    help: 'Always 1; the labels say which build this instance runs and where it stands in the release.',
    labelNames: ['version', 'color', 'track', 'commit', 'instance_id'],
  },
  [MetricName.LIFECYCLE_STATE]: {
    kind: 'gauge',
    help: 'Lifecycle state of this instance: 1 for the current state, 0 for the others.',
    labelNames: ['state'],
  },
  [MetricName.LIFECYCLE_TRANSITIONS_TOTAL]: {
    kind: 'counter',
    help: 'Lifecycle state changes of this instance.',
    labelNames: ['from', 'to'],
  },
  [MetricName.LIFECYCLE_SHUTDOWN_DURATION_SECONDS]: {
    kind: 'gauge',
    help: 'Time since the graceful shutdown began (DRAINING), frozen when it ends (STOPPED); 0 before a shutdown.',
    labelNames: [],
  },
  [MetricName.METRICS_SERIES_DROPPED_TOTAL]: {
    kind: 'counter',
    help: 'Observations recorded under the __overflow__ series because their metric reached its series cap.',
    labelNames: ['metric'],
  },
  [MetricName.CANARY_DECISIONS_TOTAL]: {
    kind: 'counter',
    help: 'Canary routing decisions, by route template, the variant chosen (stable or canary) and the rule that decided.',
    labelNames: ['route', 'variant', 'reason'],
  },
  [MetricName.REGISTRY_OPERATIONS_TOTAL]: {
    kind: 'counter',
    help: 'Service registry operations (register, deregister, heartbeat, discover), by driver and result.',
    labelNames: ['driver', 'operation', 'result'],
  },
  [MetricName.REGISTRY_REGISTERED]: {
    kind: 'gauge',
    help: '1 while this instance is registered in the service registry, 0 otherwise.',
    labelNames: ['driver'],
  },
  [MetricName.REGISTRY_REGISTRATIONS_LOST_TOTAL]: {
    kind: 'counter',
    help: 'Registrations of this instance the registry lost (agent restart, lease expiry) and that were restored.',
    labelNames: ['driver'],
  },
  [MetricName.REGISTRY_DEREGISTRATION_DURATION_SECONDS]: {
    kind: 'gauge',
    help: 'Time from the start of the shutdown (DRAINING) to the deregistration confirmed by the registry; absent before it.',
    labelNames: ['driver'],
  },
  [MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS]: {
    kind: 'gauge',
    help: 'Age of the discovery view of each service this instance watches (health "passing" or "any"): 0 while its feed is live.',
    labelNames: ['service', 'health'],
  },
  [MetricName.REGISTRY_DISCOVERY_INSTANCES]: {
    kind: 'gauge',
    help: 'Instances in the discovery view of each service this instance watches (health "passing" or "any").',
    labelNames: ['service', 'health'],
  },
  [MetricName.CONFIG_RELOADS_TOTAL]: {
    kind: 'counter',
    help: 'Dynamic configuration updates handled, by source (file, etcd, consul, reload) and result (applied, unchanged, rejected, failed).',
    labelNames: ['source', 'result'],
  },
  [MetricName.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS]: {
    kind: 'gauge',
    help: 'Unix time of the last dynamic configuration update that validated (applied or unchanged), or of the start-up load.',
    labelNames: [],
  },
  [MetricName.CONFIG_INFO]: {
    kind: 'gauge',
    help: 'Always 1; the label hash is the version of the dynamic configuration in force.',
    labelNames: ['hash'],
  },
  [MetricName.HEALTH_READINESS_CHANGES_TOTAL]: {
    kind: 'counter',
    help: 'Readiness changes of this instance, by the new value of readiness ("true" or "false").',
    labelNames: ['ready'],
  },
} as const satisfies Record<MetricName, MetricDefinition>;

type Catalogue = typeof METRIC_CATALOGUE;

/** The metrics other modules publish, by kind. */
export type PublishedCounterName =
  | typeof MetricName.CANARY_DECISIONS_TOTAL
  | typeof MetricName.REGISTRY_OPERATIONS_TOTAL
  | typeof MetricName.REGISTRY_REGISTRATIONS_LOST_TOTAL
  | typeof MetricName.CONFIG_RELOADS_TOTAL
  | typeof MetricName.HEALTH_READINESS_CHANGES_TOTAL;
export type PublishedGaugeName =
  | typeof MetricName.REGISTRY_REGISTERED
  | typeof MetricName.REGISTRY_DEREGISTRATION_DURATION_SECONDS
  | typeof MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS
  | typeof MetricName.REGISTRY_DISCOVERY_INSTANCES
  | typeof MetricName.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS
  | typeof MetricName.CONFIG_INFO;
export type PublishedMetricName = PublishedCounterName | PublishedGaugeName;

/** The label values a published metric takes, e.g. `{ route: '/orders/:id/quote', variant: 'canary', reason: 'header' }`. */
export type PublishedLabels<N extends PublishedMetricName> = { readonly [L in Catalogue[N]['labelNames'][number]]: string };

export const PUBLISHED_COUNTERS: readonly PublishedCounterName[] = [
  MetricName.CANARY_DECISIONS_TOTAL,
  MetricName.REGISTRY_OPERATIONS_TOTAL,
  MetricName.REGISTRY_REGISTRATIONS_LOST_TOTAL,
  MetricName.CONFIG_RELOADS_TOTAL,
  MetricName.HEALTH_READINESS_CHANGES_TOTAL,
];
export const PUBLISHED_GAUGES: readonly PublishedGaugeName[] = [
  MetricName.REGISTRY_REGISTERED,
  MetricName.REGISTRY_DEREGISTRATION_DURATION_SECONDS,
  MetricName.REGISTRY_DISCOVERY_STALENESS_SECONDS,
  MetricName.REGISTRY_DISCOVERY_INSTANCES,
  MetricName.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
  MetricName.CONFIG_INFO,
];
