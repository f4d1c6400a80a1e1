/** Injection tokens and stable event names of @nest-rollout/lifecycle. */
export const LIFECYCLE_OPTIONS = 'LIFECYCLE:RESOLVED_OPTIONS';
export const LIFECYCLE_CLOCK = 'LIFECYCLE:CLOCK';
export const LIFECYCLE_PROCESS = 'LIFECYCLE:PROCESS';

/** Log event names; one event per line, with stable names that dashboards can match. */
export const LifecycleEvent = {
  STATE_CHANGED: 'lifecycle.state_changed',
  ATTACHED: 'lifecycle.attached',
  NO_HTTP_SERVER: 'lifecycle.no_http_server',
  WARMUP_TASK_DONE: 'lifecycle.warmup_task_done',
  WARMUP_TASK_FAILED: 'lifecycle.warmup_task_failed',
  DRAIN_TASK_DONE: 'lifecycle.drain_task_done',
  DRAIN_TASK_FAILED: 'lifecycle.drain_task_failed',
  SIGNAL_RECEIVED: 'lifecycle.signal_received',
  DRAIN_DELAY_SKIPPED: 'lifecycle.drain_delay_skipped',
  REQUESTS_CUT: 'lifecycle.requests_cut',
  HOOK_FAILED: 'lifecycle.hook_failed',
  DEADLINE_EXCEEDED: 'lifecycle.deadline_exceeded',
  SHUTDOWN_FAILED: 'lifecycle.shutdown_failed',
  EXIT: 'lifecycle.exit',
} as const;
