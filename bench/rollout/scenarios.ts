import { Adapter, AppInstance } from '../../test/support/apps';
import { httpGet } from '../../test/support/http';
import { isOk, RequestRecord, runLoad } from '../../test/support/load';
import { freePorts } from '../../test/support/ports';
import { delay, ProcessExit } from '../../test/support/process';
import { readinessOf, RolloutAppKind, SampleTuning, Slot, startRolloutApp } from './apps';
import { Balancer, BalancerKind, startBalancer } from './balancers';
import {
  appliedWatch,
  CanaryPhase,
  canaryPhases,
  CanaryPhaseReport,
  pricingOf,
  QUOTE_PATH,
  QUOTE_SHARE,
  RulesFile,
  RulesStep,
  seedOrder,
  stepLabel,
  USER_HEADER,
  USERS,
} from './canary';

/**
 * The releases: `rolling` (3 instances replaced one at a time, surge 1, unavailable 0: the next
 * new one starts as soon as the old one got its SIGTERM), `blue-green` (3 blue, 3 green started
 * beside them, all traffic switched in one step, blue terminated 1 s later), `kill-9` (one of 3
 * killed outright, nothing replaced: the loss expected there is measured, with how long it lasts),
 * and `canary`, the sample's in-app canary release, in the order a release engineer runs it:
 *
 * 1. One canary instance of the new version (APP_TRACK=canary) is started beside the 3 stable
 *    ones and turns ready. It is not in the balancer: only the stable instances send it requests,
 *    those their rules decide canary (CANARY_URL), so the rules alone say who reaches it.
 * 2. The rules, in the dynamic configuration file every instance reads and reloads live, go to
 *    `percent: 10` on the sticky key `header:x-user`; once every stable instance logged them
 *    applied, they stay 6 s (the bake; minutes to hours in production).
 * 3. Then `percent: 100`, applied everywhere, 3 s.
 * 4. Promotion: the stable instances are replaced by new-version ones exactly as in `rolling`
 *    (surge 1, unavailable 0), while the rules stay at 100 %: the new instances read the same
 *    file and forward too, so users of the canary route stay on the new version throughout.
 * 5. Once the last old instance exited, the rules are removed: the new stable instances serve
 *    the route themselves. Only once every one of them logged that applied, and 2 s later (what
 *    a rollout controller waits before scaling the canary down), does the canary get its
 *    SIGTERM: retiring it while rules still send it traffic would leave users of the route to
 *    its drain and to the forwarder's fallback.
 *
 * The load sends every request with `x-user` drawn from 1000 users and puts 30 % of it on
 * `GET /orders/1/quote`, whose answer says which variant priced it (v2: the canary). Between a
 * write and the moment every instance applied it (a bound: the log is flushed once a second),
 * requests are left out of the phases. The sample prices by track, not by version: once the rules
 * are removed, the new stable instances answer v1 — the share counts the canary instance.
 *
 * The canary is the sample's feature: it runs for the sample only (see `scenarioSkipReason`).
 */
export type ScenarioKind = 'rolling' | 'blue-green' | 'kill-9' | 'canary';
export const SCENARIO_KINDS: readonly ScenarioKind[] = ['rolling', 'blue-green', 'kill-9', 'canary'];

/**
 * Why a scenario is not run for an app, or undefined. The peers have no canary routing; a canary
 * done instead with balancer weights would not be the same release, and its rows would mislead:
 * a weight splits every route per request (or per connection), not one route per user, so a user
 * flips between versions at every request; at 100 % by weight the stable instances get no
 * traffic at all, so their replacement risks nothing, while the sample's keep serving every other
 * route; behind HAProxy `mode tcp` (kube-proxy) a weight moves new connections only, and 32
 * kept-alive clients would not see the 10 % until their connections close. What the peers lose
 * when instances stop is what the rolling and blue-green rows measure.
 */
export function scenarioSkipReason(scenario: ScenarioKind, app: RolloutAppKind): string | undefined {
  if (scenario === 'canary' && app !== 'nest-rollout') {
    return "the canary release is in-app routing by the sample's rules; the peers have none (a balancer weight is not the same release)";
  }
  return undefined;
}

/** The canary scenario's steps and how long each is held once applied everywhere. */
const CANARY_STEPS: readonly { step: RulesStep; holdMs: number }[] = [
  { step: { percent: 10 }, holdMs: 6000 },
  { step: { percent: 100 }, holdMs: 3000 },
];
/** After the rules are removed, how long no request may have gone to the canary before it is stopped. */
const CANARY_QUIET_MS = 2000;
const RULES_APPLY_TIMEOUT_MS = 5000;

export interface LoadProfile {
  /** Client keep-alive: each connection sends request after request. */
  readonly keepAlive: boolean;
  /** @default 32 */
  readonly connections?: number;
  /** Share of `GET /demo/slow?ms=50..200`. @default 0.1 */
  readonly slowShare?: number;
  /** Share of `POST /orders`. @default 0.1 */
  readonly postShare?: number;
}

export interface RunOptions {
  readonly scenario: ScenarioKind;
  readonly balancer: BalancerKind;
  readonly app: RolloutAppKind;
  readonly adapter: Adapter;
  readonly load: LoadProfile;
  /** Load before the release begins. @default 1500 */
  readonly warmupMs?: number;
  /** Load after the last stopped instance exited. @default 1500 (kill-9: 3000) */
  readonly tailMs?: number;
  /** An instance still running this long after its SIGTERM is killed and reported "did not exit". @default 20000 */
  readonly exitBoundMs?: number;
  readonly sample?: SampleTuning;
}

export type MarkerKind = 'SIGTERM' | 'SIGKILL' | 'readiness 503' | 'balancer out' | 'exit' | 'switch' | 'rules';

export interface Marker {
  /** Epoch ms. */
  readonly at: number;
  readonly kind: MarkerKind;
  /** The instance, `all`, or for `rules` the step written (`10 %`, `100 %`, `removed`). */
  readonly slot: string;
}

export interface StoppedInstance {
  readonly slot: string;
  readonly signal: 'SIGTERM' | 'SIGKILL';
  readonly signalledAt: number;
  /** When its readiness first stopped answering 200 (polled every 25 ms). */
  readonly readinessFailedAt?: number;
  /** When the balancer took it out (HAProxy DOWN, nginx reloaded without it). */
  readonly balancerOutAt?: number;
  /** Undefined when it did not exit within the bound (it was then killed). */
  readonly exit?: ProcessExit;
  /** Its stdout, line by line (the sample's structured log events). */
  readonly stdout: readonly string[];
}

export interface FailureCounts {
  /** A 5xx the balancer made itself (no instance reachable, connection refused or cut). */
  readonly balancer5xx: number;
  /** A 5xx an instance answered (e.g. a 503 while closing). */
  readonly app5xx: number;
  /** The client's connection reset, refused or cut without a full answer. */
  readonly reset: number;
  /**
   * Of `reset`: those that ended within 500 ms after an nginx reload. On SIGHUP the old worker
   * closes the client connections it holds idle (kept alive, or accepted and not read yet); a
   * request sent on one at that moment is lost whatever runs behind nginx. Clients that retry an
   * idempotent request on a reused connection (browsers) hide these; Node's http client does not.
   */
  readonly resetAtReload: number;
  readonly timeout: number;
  /** Any other non-2xx answer. */
  readonly other: number;
}

export interface RunResult {
  readonly options: RunOptions;
  readonly startedAt: number;
  readonly records: readonly RequestRecord[];
  readonly sent: number;
  readonly failed: number;
  readonly failures: FailureCounts;
  /** From the first SIGTERM, SIGKILL or switch to the last exit. */
  readonly window: { readonly from: number; readonly to: number };
  /** Latency of the requests sent inside the window, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** First to last failed request (0 without failures). */
  readonly lossSpanMs: number;
  readonly stopped: readonly StoppedInstance[];
  readonly markers: readonly Marker[];
  readonly balancerLog: readonly string[];
  /** The canary scenario: who answered the quote route in each phase of the rules. */
  readonly canary?: readonly CanaryPhaseReport[];
}

const SETTLE_AFTER_SWITCH_MS = 1000;
/** After a kill -9, how long the balancer is given to take the instance out on its own. */
const OUT_AFTER_KILL_MS = 5000;
/** After the release script's clean-up, how long until the balancer's state shows the instance out. */
const OUT_AFTER_EXITED_MS = 1000;

/** Runs one release under load through one balancer and stops everything it started, failure or not. */
export async function runRollout(options: RunOptions): Promise<RunResult> {
  const skip = scenarioSkipReason(options.scenario, options.app);
  if (skip) throw new Error(`not run: ${skip}`);
  const canaryRun = options.scenario === 'canary';
  const names =
    options.scenario === 'rolling'
      ? ['a1', 'a2', 'a3', 'b1', 'b2', 'b3']
      : options.scenario === 'blue-green'
        ? ['b1', 'b2', 'b3', 'g1', 'g2', 'g3']
        : canaryRun
          ? ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'c1']
          : ['a1', 'a2', 'a3'];
  const readiness = readinessOf(options.app);
  const ports = await freePorts(names.length * (readiness.ownPort ? 2 : 1));
  const slots: Slot[] = names.map((name, i) => ({
    name,
    port: ports[i],
    probePort: readiness.ownPort ? ports[names.length + i] : ports[i],
    readyPath: readiness.path,
  }));
  const [first, next] = [slots.slice(0, 3), slots.slice(3, 6)];
  // The canary instance is reached only through the stable instances' forwarding, never the balancer.
  const canarySlot = canaryRun ? slots[6] : undefined;
  const rulesFile = canaryRun ? new RulesFile() : undefined;
  const tuningOf = (slot: Slot): SampleTuning | undefined => {
    if (!rulesFile || !canarySlot) return options.sample;
    const version = slot.name.startsWith('a') ? '1.0.0' : '2.0.0';
    const env: Record<string, string> =
      slot === canarySlot
        ? { APP_TRACK: 'canary', APP_VERSION: version, DYNAMIC_CONFIG_FILE: rulesFile.path }
        : {
            APP_TRACK: 'stable',
            APP_VERSION: version,
            DYNAMIC_CONFIG_FILE: rulesFile.path,
            CANARY_URL: `http://127.0.0.1:${canarySlot.port}`,
          };
    return { ...options.sample, env: { ...options.sample?.env, ...env } };
  };
  const instances = new Map<string, AppInstance>();
  const markers: Marker[] = [];
  const stopped: Promise<StoppedInstance>[] = [];
  const loadOver = new AbortController();
  let balancer: Balancer | undefined;
  const start = async (group: readonly Slot[]) => {
    const started = await Promise.allSettled(
      group.map(async (s) => {
        const instance = await startRolloutApp(options.app, options.adapter, s, tuningOf(s));
        instances.set(s.name, instance);
        if (canaryRun) await seedOrder(instance);
        return instance;
      }),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const stop = (slot: Slot, signal: 'SIGTERM' | 'SIGKILL') => {
    const instance = instances.get(slot.name)!;
    const inBalancer = slot !== canarySlot;
    const signalledAt = Date.now();
    markers.push({ at: signalledAt, kind: signal, slot: slot.name });
    instance.process.signal(signal);
    const result = (async (): Promise<StoppedInstance> => {
      const readinessFailedAt = signal === 'SIGTERM' ? watchReadiness(slot, instance) : Promise.resolve(undefined);
      const exit = await instance.process.waitForExit(options.exitBoundMs ?? 20_000).catch(() => undefined);
      if (exit) markers.push({ at: exit.at, kind: 'exit', slot: slot.name });
      else await instance.process.stop('SIGKILL', 0);
      // The release's clean-up once the process is gone; a crash (kill -9) has no release script:
      // the balancer takes the instance out by itself (HAProxy's checks, the controller), or never
      // (nginx without a controller, which only skips it for 10 s after each failed attempt).
      if (inBalancer && signal === 'SIGTERM') await balancer!.exited(slot);
      // HAProxy's DOWN (or MAINT once the release script put it there) is seen by polling its
      // stats: an instance that exits within milliseconds would otherwise show no "out" at all.
      if (inBalancer && !(signal === 'SIGKILL' && options.balancer === 'nginx')) {
        const deadline = Date.now() + (signal === 'SIGKILL' ? OUT_AFTER_KILL_MS : OUT_AFTER_EXITED_MS);
        while (Date.now() < deadline && !balancer!.events.some((e) => e.slot === slot.name && e.kind === 'out')) await delay(25);
      }
      const failedAt = await readinessFailedAt;
      if (failedAt !== undefined) markers.push({ at: failedAt, kind: 'readiness 503', slot: slot.name });
      // In blue-green the balancer took it out at the switch, before its SIGTERM. The last time it
      // went out counts: an instance a busy controller or HAProxy took out and put back earlier
      // was out then for a reason other than its stop.
      const out = balancer!.events.filter((e) => e.slot === slot.name && e.kind === 'out').pop()?.at;
      if (out !== undefined) markers.push({ at: out, kind: 'balancer out', slot: slot.name });
      return {
        slot: slot.name,
        signal,
        signalledAt,
        readinessFailedAt: failedAt,
        balancerOutAt: out,
        exit,
        stdout: instance.process.stdout,
      };
    })();
    stopped.push(result);
    return result;
  };

  try {
    if (canarySlot) await start([canarySlot]);
    await start(first);
    balancer = await startBalancer(
      options.balancer,
      slots.filter((s) => s !== canarySlot),
    );
    await balancer.add(first);
    const startedAt = Date.now();
    const loadResult = runLoad({
      url: balancer.url,
      durationMs: 10 * 60_000,
      connections: options.load.connections ?? 32,
      keepAlive: options.load.keepAlive,
      slowShare: options.load.slowShare ?? 0.1,
      postShare: options.load.postShare ?? 0.1,
      serverHeader: balancer.serverHeader,
      signal: loadOver.signal,
      ...(canaryRun
        ? { extraRoute: { path: QUOTE_PATH, share: QUOTE_SHARE, label: pricingOf }, userKey: { header: USER_HEADER, users: USERS } }
        : {}),
    });
    await delay(options.warmupMs ?? 1500);

    const phases: CanaryPhase[] = [];
    if (options.scenario === 'rolling' || canaryRun) {
      // A phase runs from the moment every deciding instance applied its rules to the next write;
      // the requests in between, decided by old or new rules depending on the instance, are left out.
      let since = startedAt;
      let writtenAt: number | undefined;
      let percent = 0;
      const phase = (name: string, to: number) => phases.push({ name, from: since, to, percent, writtenAt });
      const change = async (step: RulesStep, deciders: readonly Slot[]) => {
        const applied = appliedWatch(deciders.map((s) => instances.get(s.name)!));
        writtenAt = rulesFile!.write(step);
        markers.push({ at: writtenAt, kind: 'rules', slot: stepLabel(step) });
        since = await applied(RULES_APPLY_TIMEOUT_MS);
        percent = step === 'removed' ? 0 : step.percent;
      };
      if (canaryRun) {
        for (const { step, holdMs } of CANARY_STEPS) {
          phase(percent === 0 ? 'no rules' : `${percent} %`, Date.now());
          await change(step, first);
          await delay(holdMs);
        }
      }
      for (let i = 0; i < 3; i += 1) {
        await start([next[i]]);
        await balancer.add([next[i]]);
        void stop(first[i], 'SIGTERM');
      }
      if (canaryRun) {
        await Promise.all(stopped);
        phase(`${percent} %, rolling`, Date.now());
        await change('removed', next);
        await delay(CANARY_QUIET_MS);
        phase('removed', Date.now());
        await stop(canarySlot!, 'SIGTERM');
      }
    } else if (options.scenario === 'blue-green') {
      await start(next);
      await balancer.switch(first, next);
      markers.push({ at: Date.now(), kind: 'switch', slot: 'all' });
      await delay(SETTLE_AFTER_SWITCH_MS);
      for (const s of first) void stop(s, 'SIGTERM');
    } else {
      void stop(first[0], 'SIGKILL');
    }
    const stops = await Promise.all(stopped);
    await delay(options.tailMs ?? (options.scenario === 'kill-9' ? 3000 : 1500));
    loadOver.abort();
    const load = await loadResult;
    const records = load.records.map((r) => ({ ...r, server: balancer!.serverName(r.server) }));
    if (canaryRun) phases.push({ name: 'canary stopped', from: phases[phases.length - 1].to, to: Date.now(), percent: 0 });

    const firstAction = Math.min(...markers.filter((m) => m.kind !== 'exit').map((m) => m.at));
    const lastExit = Math.max(firstAction, ...stops.map((s) => s.exit?.at ?? s.signalledAt));
    const inWindow = records.filter((r) => r.startedAt >= firstAction && r.startedAt <= lastExit && r.status !== undefined);
    const failedRecords = records.filter((r) => !isOk(r));
    return {
      options,
      startedAt,
      records,
      sent: records.length,
      failed: failedRecords.length,
      failures: countFailures(
        records,
        options.balancer,
        balancer.events.filter((e) => e.kind === 'reload').map((e) => e.at),
      ),
      window: { from: firstAction, to: lastExit },
      p50Ms: percentile(inWindow, 0.5),
      p99Ms: percentile(inWindow, 0.99),
      lossSpanMs:
        failedRecords.length === 0
          ? 0
          : Math.max(...failedRecords.map((r) => r.endedAt)) - Math.min(...failedRecords.map((r) => r.startedAt)),
      stopped: stops,
      markers: markers.sort((a, b) => a.at - b.at),
      balancerLog: [...balancer.log],
      ...(canaryRun ? { canary: canaryPhases(records, phases) } : {}),
    };
  } finally {
    loadOver.abort();
    await Promise.allSettled(stopped);
    await Promise.all([balancer?.stop(), ...[...instances.values()].map((i) => i.stop(2000))]);
    rulesFile?.remove();
  }
}

/**
 * A failure counts where the client saw it. A 5xx is the balancer's when HAProxy (http) relayed no
 * server name, or when nginx answered 502/504 (it names the upstream it tried even then); HAProxy
 * in tcp mode makes no HTTP answers, so every 5xx through it is the app's.
 */
export function countFailures(records: readonly RequestRecord[], balancer: BalancerKind, reloads: readonly number[] = []): FailureCounts {
  const counts = { balancer5xx: 0, app5xx: 0, reset: 0, resetAtReload: 0, timeout: 0, other: 0 };
  for (const r of records) {
    if (isOk(r)) continue;
    if (r.error === 'timeout') counts.timeout += 1;
    else if (r.error !== undefined) {
      counts.reset += 1;
      if (reloads.some((at) => r.endedAt >= at && r.endedAt <= at + 500)) counts.resetAtReload += 1;
    } else if (r.status! >= 500) {
      const byBalancer =
        balancer === 'haproxy-http' ? r.server === undefined : balancer === 'haproxy-tcp' ? false : r.status === 502 || r.status === 504;
      if (byBalancer) counts.balancer5xx += 1;
      else counts.app5xx += 1;
    } else counts.other += 1;
  }
  return counts;
}

function percentile(records: readonly RequestRecord[], q: number): number {
  if (records.length === 0) return 0;
  const sorted = records.map((r) => r.endedAt - r.startedAt).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Polls the instance's readiness every 25 ms until it stops answering 200 or the process is gone. */
async function watchReadiness(slot: Slot, instance: AppInstance): Promise<number | undefined> {
  while (instance.process.running) {
    const ok = await httpGet(`http://127.0.0.1:${slot.probePort}${slot.readyPath}`, 500).then(
      (a) => a.status === 200,
      () => false,
    );
    if (!ok) return Date.now();
    await delay(25);
  }
  return undefined;
}

/** "balancer 5xx 3, reset 2" or "-". */
export function describeFailures(counts: FailureCounts): string {
  const parts = (
    [
      ['balancer 5xx', counts.balancer5xx],
      ['app 5xx', counts.app5xx],
      ['reset', counts.reset],
      ['of which at an nginx reload', counts.resetAtReload],
      ['timeout', counts.timeout],
      ['other', counts.other],
    ] as const
  )
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  return parts.length > 0 ? parts.join(', ') : '-';
}

/** Seconds from SIGTERM to exit per stopped instance ("2.1 s, 2.2 s" or "did not exit"). */
export function describeExits(run: RunResult): string {
  return run.stopped.map((s) => (s.exit ? `${((s.exit.at - s.signalledAt) / 1000).toFixed(1)}` : 'never')).join(' / ');
}
