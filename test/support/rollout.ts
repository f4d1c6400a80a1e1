import { Adapter, AppInstance, PlainVariant, startPlainApp, startSample } from './apps';
import { Haproxy, startHaproxy } from './haproxy';
import { isOk, LoadResult, RequestRecord, runLoad } from './load';
import { freePorts } from './ports';
import { delay, ProcessExit } from './process';

/** What runs behind the load balancer: the nest-rollout sample or a plain Nest baseline. */
export type RolloutApp = 'nest-rollout' | `plain:${PlainVariant}`;

export const ROLLOUT_APPS: readonly RolloutApp[] = ['nest-rollout', 'plain:default', 'plain:force-close', 'plain:return-503'];

export interface RolloutScenarioOptions {
  readonly app: RolloutApp;
  readonly adapter: Adapter;
  /** @default 8000 */
  readonly loadMs?: number;
  /** When, after the load started, the first instance gets SIGTERM. @default 2500 */
  readonly stopAfterMs?: number;
  /** @default 32 */
  readonly connections?: number;
  /** The sample's DRAIN_DELAY_MS (unused by the plain app). @default 2000 */
  readonly drainDelayMs?: number;
}

export interface RolloutResult {
  readonly app: RolloutApp;
  readonly adapter: Adapter;
  readonly load: LoadResult;
  /** The instance that got SIGTERM. */
  readonly stopped: {
    readonly name: string;
    /** Epoch ms of the SIGTERM. */
    readonly signalledAt: number;
    /** When HAProxy's stats first showed it DOWN (polled every 25 ms); undefined if never seen. */
    readonly downAt: number | undefined;
    /** Undefined if it did not exit within the bound (it was then killed). */
    readonly exit: ProcessExit | undefined;
    /** Requests it answered that were sent before the SIGTERM. */
    readonly servedBeforeSignal: number;
    /** Requests it answered that were sent after the SIGTERM (during the drain). */
    readonly servedAfterSignal: number;
    /** Requests it answered that were sent after HAProxy had marked it DOWN: must be 0. */
    readonly servedAfterDown: number;
    readonly stdout: readonly string[];
  };
  /** Requests the other instance answered that were sent after the stopped one exited. */
  readonly survivorServedAfterExit: number;
  /** Failed requests, first few, for diagnostics. */
  readonly failures: readonly RequestRecord[];
  /** HAProxy's log: abnormal requests and health-check changes only. */
  readonly haproxyLog: readonly string[];
}

const INSTANCE_NAMES = ['a', 'b'] as const;

/**
 * The rollout proof's scenario: two instances behind HAProxy, steady load through HAProxy, SIGTERM
 * to instance `a` after `stopAfterMs`, then the load runs on to its end against `b` alone. Every
 * request is recorded; everything started here is stopped before it returns, failure or not.
 */
export async function runRolloutScenario(options: RolloutScenarioOptions): Promise<RolloutResult> {
  const loadMs = options.loadMs ?? 8000;
  const stopAfterMs = options.stopAfterMs ?? 2500;
  const drainDelayMs = options.drainDelayMs ?? 2000;
  const ports = await freePorts(INSTANCE_NAMES.length);
  const instances: AppInstance[] = [];
  let haproxy: Haproxy | undefined;
  const scenarioOver = new AbortController();
  try {
    const started = await Promise.allSettled(
      INSTANCE_NAMES.map((name, i) =>
        options.app === 'nest-rollout'
          ? startSample({
              name,
              adapter: options.adapter,
              port: ports[i],
              env: {
                DRAIN_DELAY_MS: String(drainDelayMs),
                SHUTDOWN_TIMEOUT_MS: '5000',
                MIN_READY_DELAY_MS: '100',
                APP_COLOR: 'blue',
              },
            })
          : startPlainApp({ name, adapter: options.adapter, variant: options.app.slice('plain:'.length) as PlainVariant, port: ports[i] }),
      ),
    );
    for (const s of started) if (s.status === 'fulfilled') instances.push(s.value);
    const failedStart = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failedStart) throw failedStart.reason;
    const [victim, survivor] = instances;

    haproxy = await startHaproxy({ servers: instances.map((i) => ({ name: i.name, port: i.port })) });
    await haproxy.waitForServers('UP', INSTANCE_NAMES, 10_000);

    const load = runLoad({ url: haproxy.url, durationMs: loadMs, connections: options.connections ?? 32, signal: scenarioOver.signal });
    await delay(stopAfterMs);
    const signalledAt = Date.now();
    victim.process.signal('SIGTERM');
    const exitBoundMs = drainDelayMs + 10_000;
    const downAt = watchUntilDown(haproxy, victim.name, exitBoundMs, scenarioOver.signal);
    const exit = await victim.process.waitForExit(exitBoundMs).catch(() => undefined);
    const result = await load;
    const down = await downAt;

    const answeredBy = (name: string, from: number) =>
      result.records.filter((r) => r.server === name && r.status !== undefined && r.startedAt >= from).length;
    return {
      app: options.app,
      adapter: options.adapter,
      load: result,
      stopped: {
        name: victim.name,
        signalledAt,
        downAt: down,
        exit,
        servedBeforeSignal: result.records.filter((r) => r.server === victim.name && r.startedAt < signalledAt).length,
        servedAfterSignal: answeredBy(victim.name, signalledAt),
        servedAfterDown: down === undefined ? 0 : answeredBy(victim.name, down),
        stdout: victim.process.stdout,
      },
      survivorServedAfterExit: exit ? answeredBy(survivor.name, exit.at) : 0,
      failures: result.records.filter((r) => !isOk(r)).slice(0, 20),
      haproxyLog: [...haproxy.process.stdout],
    };
  } finally {
    scenarioOver.abort();
    await Promise.all([haproxy?.stop(), ...instances.map((i) => i.stop(2000))]);
  }
}

/**
 * Polls HAProxy's stats every 25 ms until `server` shows DOWN; resolves with that moment, or with
 * undefined once `timeoutMs` passed or `stop` aborted.
 */
async function watchUntilDown(haproxy: Haproxy, server: string, timeoutMs: number, stop: AbortSignal): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (!stop.aborted && Date.now() < deadline) {
    const status = (await haproxy.serverStats().catch(() => undefined))?.get(server)?.status;
    if (status?.startsWith('DOWN')) return Date.now();
    await delay(25);
  }
  return undefined;
}

/** One line per run: app, adapter, sent, failed, failure kinds. */
export function formatRolloutTable(results: readonly RolloutResult[]): string {
  const header = ['app', 'adapter', 'sent', 'ok', 'failed', 'failure kinds', 'stopped instance exit'];
  const rows = results.map((r) => [
    r.app,
    r.adapter,
    String(r.load.sent),
    String(r.load.ok),
    String(r.load.failed),
    failureKinds(r.load.records),
    r.stopped.exit ? (r.stopped.exit.signal ? `signal ${r.stopped.exit.signal}` : `code ${r.stopped.exit.code}`) : 'did not exit',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/**
 * "503 from haproxy x12, 503 from app x3, socket hang up x2": a status HAProxy relayed carries the
 * server header; one without it was made by HAProxy itself (no server reachable, connection reset).
 */
export function failureKinds(records: readonly RequestRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) {
    if (isOk(r)) continue;
    const kind = r.error ?? `${r.status} from ${r.server === undefined ? 'haproxy' : 'app'}`;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts.size === 0 ? '-' : [...counts].map(([kind, n]) => `${kind} x${n}`).join(', ');
}
