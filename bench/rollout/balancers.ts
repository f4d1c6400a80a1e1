import { startHaproxy } from '../../test/support/haproxy';
import { httpGet } from '../../test/support/http';
import { startNginx } from '../../test/support/nginx';
import { delay } from '../../test/support/process';
import { Slot } from './apps';

export type BalancerKind = 'haproxy-http' | 'haproxy-tcp' | 'nginx' | 'nginx-controller';

export const BALANCER_KINDS: readonly BalancerKind[] = ['haproxy-http', 'haproxy-tcp', 'nginx', 'nginx-controller'];

/** HAProxy's check interval (fall 2 at `inter` then `fastinter`) and the nginx controller's poll. */
export const CHECK_INTERVAL_MS = 200;
export const CONTROLLER_POLL_MS = 200;
/**
 * Failed polls in a row before the controller takes an instance out, as HAProxy's `fall 2`: on a
 * busy machine one probe of a healthy instance can miss its 1 s timeout, and a controller that
 * acts on a single miss removes instances nobody stopped.
 */
export const CONTROLLER_FALL = 2;

/** A moment the balancer acted on an instance. */
export interface BalancerEvent {
  readonly at: number;
  readonly slot: string;
  /**
   * `out`: no new request goes to it from here on (DOWN in HAProxy, reload done for nginx);
   * `reload`: nginx was sent SIGHUP (slot `all`).
   */
  readonly kind: 'out' | 'in' | 'reload';
}

/**
 * A balancer as a release drives it. Instances are placed in slots known in advance (HAProxy's
 * servers are fixed in its config; a slot not started yet stays in maintenance, so it is never UP
 * before it runs: the trap of HAProxy starting every server UP until its checks fail).
 */
export interface Balancer {
  readonly kind: BalancerKind;
  readonly url: string;
  /** The response header naming who served, and how to read a slot name out of it. */
  readonly serverHeader: string;
  serverName(header: string | undefined): string | undefined;
  /** Puts started, ready instances in rotation; resolves once the balancer routes to them. */
  add(slots: readonly Slot[]): Promise<void>;
  /** Blue-green: `to` takes all new traffic and `from` none, in one step. `to` must be started and ready. */
  switch(from: readonly Slot[], to: readonly Slot[]): Promise<void>;
  /** The release told this instance to stop (SIGTERM or kill). */
  stopping(slot: Slot): void;
  /** The instance's process is gone: the release's own clean-up (an nginx reload without it). */
  exited(slot: Slot): Promise<void>;
  readonly events: readonly BalancerEvent[];
  readonly log: readonly string[];
  stop(): Promise<void>;
}

export async function startBalancer(kind: BalancerKind, slots: readonly Slot[]): Promise<Balancer> {
  return kind.startsWith('haproxy') ? startHaproxyBalancer(kind, slots) : startNginxBalancer(kind, slots);
}

async function startHaproxyBalancer(kind: BalancerKind, slots: readonly Slot[]): Promise<Balancer> {
  const haproxy = await startHaproxy({
    mode: kind === 'haproxy-tcp' ? 'tcp' : 'http',
    healthPath: slots[0].readyPath,
    checkIntervalMs: CHECK_INTERVAL_MS,
    servers: slots.map((s) => ({
      name: s.name,
      port: s.port,
      checkPort: s.probePort === s.port ? undefined : s.probePort,
      disabled: true,
    })),
  });
  const events: BalancerEvent[] = [];
  const state = new Map<string, string>();
  let watching = true;
  // HAProxy decides on its own when an instance is out: its stats are polled to see when.
  const watcher = (async () => {
    while (watching) {
      const stats = await haproxy.serverStats().catch(() => undefined);
      for (const [name, row] of stats ?? []) {
        const up = row.status.startsWith('UP');
        const was = state.get(name);
        if (was === 'UP' && !up) events.push({ at: Date.now(), slot: name, kind: 'out' });
        if (was !== undefined && was !== 'UP' && up) events.push({ at: Date.now(), slot: name, kind: 'in' });
        state.set(name, up ? 'UP' : row.status);
      }
      await delay(25);
    }
  })();
  const command = async (cmd: string) => {
    const answer = (await haproxy.command(cmd)).trim();
    if (answer !== '') throw new Error(`haproxy "${cmd}": ${answer}`);
  };
  const add = async (added: readonly Slot[]) => {
    for (const s of added) await command(`set server app/${s.name} state ready`);
    await haproxy.waitForServers(
      'UP',
      added.map((s) => s.name),
      10_000,
    );
  };
  return {
    kind,
    url: haproxy.url,
    serverHeader: 'x-served-by',
    serverName: (header) => header,
    add,
    async switch(from, to) {
      // The green servers are brought up at weight 0 (checked, no traffic), then one line of
      // commands gives them the traffic and takes it from blue at once.
      for (const s of to) await command(`set weight app/${s.name} 0`);
      await add(to);
      await command([...to.map((s) => `set weight app/${s.name} 100`), ...from.map((s) => `set weight app/${s.name} 0`)].join('; '));
    },
    stopping() {},
    async exited(slot) {
      await haproxy.command(`set server app/${slot.name} state maint`).catch(() => undefined);
    },
    events,
    get log() {
      return haproxy.process.stdout;
    },
    async stop() {
      watching = false;
      await watcher;
      await haproxy.stop();
    },
  };
}

async function startNginxBalancer(kind: BalancerKind, slots: readonly Slot[]): Promise<Balancer> {
  const members = new Map<string, Slot>();
  const byPort = new Map(slots.map((s) => [`127.0.0.1:${s.port}`, s.name]));
  const nginx = await startNginx({ upstreamPorts: [slots[0].port] });
  const events: BalancerEvent[] = [];
  const reload = async () => {
    events.push({ at: Date.now(), slot: 'all', kind: 'reload' });
    await nginx.reload([...members.values()].map((s) => s.port));
  };
  const remove = async (slot: Slot) => {
    if (!members.delete(slot.name)) return;
    await reload();
    events.push({ at: Date.now(), slot: slot.name, kind: 'out' });
  };
  // The controller (nginx-controller only): as ingress-nginx follows endpoints, an instance whose
  // readiness stops answering 200 (CONTROLLER_FALL polls in a row) is taken out of the upstream by
  // a reload, and one it took out that answers 200 again is put back.
  let controlling = kind === 'nginx-controller';
  const misses = new Map<string, number>();
  const takenOut = new Map<string, Slot>();
  const controller = (async () => {
    while (controlling) {
      await Promise.all([
        ...[...members.values()].map(async (s) => {
          if (await isReady(s)) return misses.delete(s.name);
          const missed = (misses.get(s.name) ?? 0) + 1;
          misses.set(s.name, missed);
          if (missed < CONTROLLER_FALL || !members.has(s.name)) return;
          takenOut.set(s.name, s);
          await remove(s);
        }),
        ...[...takenOut.values()].map(async (s) => {
          if (!(await isReady(s))) return;
          takenOut.delete(s.name);
          misses.delete(s.name);
          members.set(s.name, s);
          await reload();
          events.push({ at: Date.now(), slot: s.name, kind: 'in' });
        }),
      ]);
      await delay(CONTROLLER_POLL_MS);
    }
  })();
  return {
    kind,
    url: nginx.url,
    serverHeader: 'x-served-by',
    serverName: (header) => (header === undefined ? undefined : (byPort.get(header.split(',').pop()!.trim()) ?? header)),
    async add(added) {
      for (const s of added) members.set(s.name, s);
      await reload();
      for (const s of added) events.push({ at: Date.now(), slot: s.name, kind: 'in' });
    },
    async switch(from, to) {
      for (const s of from) members.delete(s.name);
      for (const s of to) members.set(s.name, s);
      await reload();
      const at = Date.now();
      for (const s of from) events.push({ at, slot: s.name, kind: 'out' });
      for (const s of to) events.push({ at, slot: s.name, kind: 'in' });
    },
    stopping() {},
    // Without a controller, the release script takes an instance out once it is gone.
    exited: (slot) => {
      takenOut.delete(slot.name);
      return remove(slot);
    },
    events,
    get log() {
      return nginx.process.stderr.filter((l) => !l.includes('[notice]'));
    },
    async stop() {
      controlling = false;
      await controller;
      await nginx.stop();
    },
  };
}

async function isReady(slot: Slot): Promise<boolean> {
  // A connection of its own each time (Connection: close): a kept-alive probe connection would
  // hold up the instance's own shutdown.
  return httpGet(`http://127.0.0.1:${slot.probePort}${slot.readyPath}`, 1000).then(
    (answer) => answer.status === 200,
    () => false,
  );
}
