export const HEALTH_OPTIONS = 'HEALTH:RESOLVED_OPTIONS';

/** Indicator keys in the probe bodies. */
export const HealthIndicatorKey = {
  PROCESS: 'process',
  LIFECYCLE: 'lifecycle',
} as const;
