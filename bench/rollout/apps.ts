import { join } from 'node:path';
import { Adapter, AppInstance, PLAIN_APP_MAIN, ROOT, startApp, startSample } from '../../test/support/apps';

/** What runs behind the balancer. */
export type RolloutAppKind = 'nest-rollout' | 'plain:default' | 'plain:force-close' | 'plain:return-503' | 'lightship' | 'terminus';

export const ROLLOUT_APP_KINDS: readonly RolloutAppKind[] = [
  'nest-rollout',
  'plain:default',
  'plain:force-close',
  'plain:return-503',
  'lightship',
  'terminus',
];

export const PEER_APP_MAIN = join(ROOT, 'dist/test/fixtures/peer-app.js');

/** A place for one instance: its name in the balancer, its port, and the port its probes answer on. */
export interface Slot {
  readonly name: string;
  readonly port: number;
  /** Lightship serves its probes on a port of its own; the others on `port`. */
  readonly probePort: number;
  readonly readyPath: string;
}

export interface SampleTuning {
  /** The sample's DRAIN_DELAY_MS. @default 2000 */
  readonly drainDelayMs?: number;
  /** More environment for the sample: the canary scenario's APP_TRACK, APP_VERSION, CANARY_URL and DYNAMIC_CONFIG_FILE. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Where each app answers readiness, as its balancer or controller must ask it. */
export function readinessOf(app: RolloutAppKind): { path: string; ownPort: boolean } {
  return app === 'lightship' ? { path: '/ready', ownPort: true } : { path: '/health/ready', ownPort: false };
}

/** Starts `app` in `slot` and resolves once its readiness answers 200. */
export function startRolloutApp(app: RolloutAppKind, adapter: Adapter, slot: Slot, tuning: SampleTuning = {}): Promise<AppInstance> {
  const readyUrl = `http://127.0.0.1:${slot.probePort}${slot.readyPath}`;
  if (app === 'nest-rollout') {
    return startSample({
      name: slot.name,
      adapter,
      port: slot.port,
      readyUrl,
      env: {
        DRAIN_DELAY_MS: String(tuning.drainDelayMs ?? 2000),
        SHUTDOWN_TIMEOUT_MS: '5000',
        MIN_READY_DELAY_MS: '100',
        APP_COLOR: slot.name.startsWith('g') ? 'green' : 'blue',
        ...tuning.env,
      },
    });
  }
  if (app === 'lightship' || app === 'terminus') {
    return startApp({
      name: slot.name,
      script: PEER_APP_MAIN,
      port: slot.port,
      readyUrl,
      env: { ADAPTER: adapter, PEER: app, LIGHTSHIP_PORT: String(slot.probePort), ROARR_LOG: 'false' },
    });
  }
  return startApp({
    name: slot.name,
    script: PLAIN_APP_MAIN,
    port: slot.port,
    readyUrl,
    env: { ADAPTER: adapter, PLAIN_VARIANT: app.slice('plain:'.length) },
  });
}
