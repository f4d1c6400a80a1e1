import type { HealthCheckDefinition } from '../health.check';
import { CheckOptions, commonFields } from './indicator.utils';

/**
 * Any dependency: `run` resolves when it is up and throws when it is down; it should honour
 * `context.signal` (the check is reported down at its timeout either way).
 */
export function customCheck(name: string, run: HealthCheckDefinition['run'], options: CheckOptions = {}): HealthCheckDefinition {
  return { name, ...commonFields(options, 'custom'), run };
}
