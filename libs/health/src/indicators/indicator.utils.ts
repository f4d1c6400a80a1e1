import type { InjectionToken } from '@nestjs/common';
import type { HealthIndicatorResult } from '@nestjs/terminus';
import type { HealthCheckContext, HealthCheckDefinition, HealthCheckDetails } from '../health.check';
import { HealthFailureKind } from '../health.constants';
import { HealthCheckError } from '../health.errors';
import { classifyFailure } from '../health.redaction';

/** Options every indicator takes besides its own. */
export type CheckOptions = Pick<
  HealthCheckDefinition,
  'timeoutMs' | 'critical' | 'intervalMs' | 'failureThreshold' | 'successThreshold'
> & {
  /** Overrides the dependency label shown in failure details. */
  readonly dependency?: string;
};

/** The application's own client, or the token of the provider that holds it. */
export type ClientRef<T> = T | InjectionToken<T>;

export function resolveClient<T>(ref: ClientRef<T>, isClient: (value: unknown) => value is T, context: HealthCheckContext): T {
  return isClient(ref) ? ref : context.get(ref as InjectionToken<T>);
}

/**
 * Turns a @nestjs/terminus indicator result into the check's outcome: `down` throws (terminus keeps
 * only the message, so the kind is read from it), `up` returns its details.
 */
export function fromTerminus(result: HealthIndicatorResult, key: string): HealthCheckDetails {
  const entry = result[key] as Record<string, unknown> | undefined;
  if (!entry) throw new HealthCheckError(HealthFailureKind.ERROR, `indicator returned no result for "${key}"`);
  const { status, message, responseTime: _responseTime, cachedResponse: _cached, ...rest } = entry;
  if (status !== 'up') {
    const text = typeof message === 'string' ? message : `status ${String(status)}`;
    throw new HealthCheckError(classifyFailure(text).kind, text);
  }
  const details: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') details[k] = v;
  }
  return details;
}

/** Shared by the indicators: the definition fields that come straight from `CheckOptions`. */
export function commonFields(options: CheckOptions, dependency: string): Omit<HealthCheckDefinition, 'name' | 'run'> {
  return {
    dependency: options.dependency ?? dependency,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.critical !== undefined ? { critical: options.critical } : {}),
    ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}),
    ...(options.failureThreshold !== undefined ? { failureThreshold: options.failureThreshold } : {}),
    ...(options.successThreshold !== undefined ? { successThreshold: options.successThreshold } : {}),
  };
}

/**
 * The timeout handed to a terminus indicator: later than the scheduler's own, which decides. The
 * scheduler forgives a timer that fires while the answer already waits in a socket buffer (after
 * the event loop was busy); terminus' timer does not.
 */
export function terminusTimeoutMs(timeoutMs: number): number {
  return timeoutMs + 1000;
}
