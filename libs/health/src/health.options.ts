import { HealthOptionsError } from './health.errors';

/** Options of `HealthModule.forRoot()`; every field is optional. */
export interface HealthModuleOptions {
  /**
   * Put the lifecycle state (`STARTING`, `READY`, `DRAINING`, ...) in every probe body, so that
   * an operator can tell "draining" from "a dependency is down" at a glance.
   * @default true
   */
  exposeState?: boolean;
}

export interface ResolvedHealthOptions {
  readonly exposeState: boolean;
}

export const DEFAULT_HEALTH_OPTIONS: ResolvedHealthOptions = { exposeState: true };

/**
 * Route prefix of the three probes; a static extra of `forRoot`/`forRootAsync` because Nest reads
 * controller paths when the module is defined, before any async option resolves.
 * @default 'health'
 */
export const DEFAULT_HEALTH_PATH = 'health';

export function resolveHealthOptions(input: HealthModuleOptions = {}): ResolvedHealthOptions {
  const problems: string[] = [];
  if (input.exposeState !== undefined && typeof input.exposeState !== 'boolean') {
    problems.push(`exposeState must be a boolean (got ${JSON.stringify(input.exposeState)})`);
  }
  if (problems.length > 0) throw new HealthOptionsError(problems);
  return Object.freeze({ exposeState: input.exposeState ?? DEFAULT_HEALTH_OPTIONS.exposeState });
}

export function validateHealthPath(path: unknown): string {
  if (typeof path !== 'string' || !/^[A-Za-z0-9_\-/]+$/.test(path) || path.replace(/\//g, '') === '') {
    throw new HealthOptionsError([`path must be a URL path such as "health" or "ops/health" (got ${JSON.stringify(path)})`]);
  }
  return path.replace(/^\/+|\/+$/g, '');
}
