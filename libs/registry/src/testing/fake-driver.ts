import type { DiscoveryFeedQuery, DiscoverySink, HeartbeatResult, RegistryDriver } from '../drivers/registry.driver';
import type { ServiceRegistration } from '../registry.types';

type Behaviour<T> = (registration: ServiceRegistration, signal: AbortSignal) => Promise<T>;

/** A registry driver whose every answer the spec decides; records each call. */
export class FakeDriver implements RegistryDriver {
  readonly kind = 'consul' as const;
  readonly target = 'fake://registry';
  expiresAfterMs: number | undefined = undefined;
  heartbeatIntervalMs: number | undefined = undefined;
  readonly calls: { op: string; id?: string; healthy?: boolean }[] = [];
  /** The registry's content: what register put and deregister removed. */
  readonly held = new Set<string>();
  register: Behaviour<void> = async (r) => {
    this.calls.push({ op: 'register', id: r.id });
    this.held.add(r.id);
  };
  deregister: Behaviour<void> = async (r) => {
    this.calls.push({ op: 'deregister', id: r.id });
    this.held.delete(r.id);
  };
  heartbeatResult: (registration: ServiceRegistration, healthy: boolean, signal: AbortSignal) => Promise<HeartbeatResult> = async (r) =>
    this.held.has(r.id) ? 'ok' : 'lost';
  isRegistered: Behaviour<boolean> = async (r) => {
    this.calls.push({ op: 'isRegistered', id: r.id });
    return this.held.has(r.id);
  };
  /** Discovery: the spec pushes through `sink`; `fail()` breaks the current feed. */
  sinks: DiscoverySink[] = [];
  watchCalls = 0;
  private failCurrent: ((error: Error) => void) | undefined;
  closed = false;

  heartbeat(registration: ServiceRegistration, healthy: boolean, signal: AbortSignal): Promise<HeartbeatResult> {
    this.calls.push({ op: 'heartbeat', id: registration.id, healthy });
    return this.heartbeatResult(registration, healthy, signal);
  }

  watch(_query: DiscoveryFeedQuery, sink: DiscoverySink, signal: AbortSignal): Promise<void> {
    this.watchCalls += 1;
    this.sinks.push(sink);
    return new Promise<void>((resolve, reject) => {
      this.failCurrent = reject;
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  fail(error = new Error('connection refused')): void {
    this.failCurrent?.(error);
    this.failCurrent = undefined;
  }

  get sink(): DiscoverySink {
    return this.sinks[this.sinks.length - 1];
  }

  ops(op: string): number {
    return this.calls.filter((c) => c.op === op).length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A promise that never settles: a registry that accepted the connection and never answers. */
export function hang<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}
