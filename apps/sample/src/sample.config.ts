/**
 * The sample's static settings, read once from the environment with every invalid variable named
 * in one error: the service never starts half-configured.
 */
export interface SampleConfig {
  readonly port: number;
  readonly host: string;
  readonly adapter: 'express' | 'fastify';
  readonly drainDelayMs: number | undefined;
  readonly shutdownTimeoutMs: number | undefined;
  readonly minReadyDelayMs: number | undefined;
  readonly hardDeadlineMs: number | undefined;
  readonly warmupDelayMs: number;
  readonly color: string | undefined;
  readonly version: string | undefined;
  readonly logLevel: string;
  readonly logPretty: boolean;
}

export class SampleConfigError extends Error {
  readonly code = 'SAMPLE_INVALID_ENV';
  constructor(readonly problems: readonly string[]) {
    super(`Invalid environment (fix each and restart):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SampleConfigError';
  }
}

export function loadSampleConfig(env: NodeJS.ProcessEnv = process.env): SampleConfig {
  const problems: string[] = [];
  const int = (name: string, min: number, max: number): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === '') return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return undefined;
    }
    return value;
  };
  const adapter = env.ADAPTER ?? 'express';
  if (adapter !== 'express' && adapter !== 'fastify') problems.push(`ADAPTER must be "express" or "fastify" (got ${JSON.stringify(adapter)})`);
  const logPretty = env.LOG_PRETTY ?? 'false';
  if (logPretty !== 'true' && logPretty !== 'false') problems.push(`LOG_PRETTY must be "true" or "false" (got ${JSON.stringify(logPretty)})`);
  const config: SampleConfig = {
    port: int('PORT', 0, 65535) ?? 3000,
    host: env.HOST || '0.0.0.0',
    adapter: adapter as SampleConfig['adapter'],
    drainDelayMs: int('DRAIN_DELAY_MS', 0, 600_000),
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 0, 600_000),
    minReadyDelayMs: int('MIN_READY_DELAY_MS', 0, 600_000),
    hardDeadlineMs: int('HARD_DEADLINE_MS', 0, 3_600_000),
    warmupDelayMs: int('WARMUP_DELAY_MS', 0, 600_000) ?? 0,
    color: env.COLOR || undefined,
    version: env.APP_VERSION || undefined,
    logLevel: env.LOG_LEVEL || 'info',
    logPretty: logPretty === 'true',
  };
  if (problems.length > 0) throw new SampleConfigError(problems);
  return config;
}
