export { describeError, untilAborted } from './abort';
export { attachLifecycle } from './attach-lifecycle';
export { etcdClientOptions } from './etcd-client-options';
export type { EtcdConnection } from './etcd-client-options';
export { LIFECYCLE_CLOCK, LIFECYCLE_OPTIONS, LIFECYCLE_PROCESS, LifecycleEvent } from './lifecycle.constants';
export { LifecycleError, LifecycleOptionsError, LifecyclePhaseError, ShutdownHooksConflictError } from './lifecycle.errors';
export { LIFECYCLE_MODULE_OPTIONS } from './lifecycle.module-definition';
export { LifecycleModule } from './lifecycle.module';
export { DEFAULT_LIFECYCLE_OPTIONS, resolveLifecycleOptions, shutdownBudgetMs } from './lifecycle.options';
export type { LifecycleModuleOptions, ResolvedLifecycleOptions } from './lifecycle.options';
export { systemClock, systemProcess } from './lifecycle.runtime';
export type { LifecycleClock, LifecycleProcess } from './lifecycle.runtime';
export { LifecycleService } from './lifecycle.service';
export type { InstanceIdentity, LifecycleTask, WarmupTask } from './lifecycle.service';
export { LIFECYCLE_TRANSITIONS, LifecycleState, hasReached, isLegalTransition } from './lifecycle.state';
export type { LifecycleStateChange } from './lifecycle.state';
export { ManualClock, settle } from './manual-clock';
export { ManualProcess } from './manual-process';
export { METRICS_PUBLISHER } from './metrics-publisher';
export type { MetricReading, MetricsPublisher } from './metrics-publisher';
export {
  EVEN_WITH_OTHER_PROBLEMS,
  describeOptionIssues,
  optionGroup,
  parseModuleOptions,
  rejected,
  withoutDefault,
} from './module-options';
export { requestStorage } from './request-store';
export type { RequestStore } from './request-store';
export { DEFAULT_BACKOFF_POLICY, backoffDelayMs, backoffOptions, bounded } from './retry';
export type { BackoffOptions, BackoffPolicy, BoundedCallOptions } from './retry';
