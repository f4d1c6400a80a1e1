import type { LoggingModuleOptions } from '@nest-rollout/logging';
import { SERVICE_NAME } from './sample.constants';
import type { SampleConfig } from './sample.config';

/**
 * What every line of the sample carries besides its trace ids: the service, its track, and its
 * version and colour when the deployment names them (APP_VERSION, APP_COLOR), so that the lines of
 * a blue-green or canary release can be told apart. A request decided by the canary rules adds
 * `feature_flag.result.variant` (see sampleCanaryOptions).
 */
export function sampleLogFields(config: SampleConfig): Pick<LoggingModuleOptions, 'service' | 'base'> {
  return {
    service: SERVICE_NAME,
    base: {
      track: config.registry.track,
      ...(config.version ? { version: config.version } : {}),
      ...(config.color ? { color: config.color } : {}),
    },
  };
}
