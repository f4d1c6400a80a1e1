import type { LifecycleProcess, MetricReading, MetricsPublisher } from '@nest-rollout/lifecycle';

/** LIFECYCLE_PROCESS for specs: signals are emitted by the spec, exit codes recorded instead of ending the runner. */
export class FakeProcess implements LifecycleProcess {
  readonly exitCodes: number[] = [];
  private readonly handlers = new Map<NodeJS.Signals, Set<() => void>>();

  onSignal(signal: NodeJS.Signals, handler: () => void): void {
    const set = this.handlers.get(signal) ?? new Set();
    set.add(handler);
    this.handlers.set(signal, set);
  }

  offSignal(signal: NodeJS.Signals, handler: () => void): void {
    this.handlers.get(signal)?.delete(handler);
  }

  exit(code: number): void {
    this.exitCodes.push(code);
  }

  activeResources(): string[] {
    return [];
  }

  /** Delivers `signal` to its handlers, as the OS would. */
  emit(signal: NodeJS.Signals): void {
    for (const handler of [...(this.handlers.get(signal) ?? [])]) handler();
  }

  listenerCount(signal: NodeJS.Signals): number {
    return this.handlers.get(signal)?.size ?? 0;
  }
}

/** METRICS_PUBLISHER for specs: counters and gauges by name and labels, observed gauges read on demand. */
export class FakeMetrics implements MetricsPublisher {
  private readonly values = new Map<string, number>();
  private readonly readers = new Map<string, () => Iterable<MetricReading>>();

  increment(name: string, labels: Readonly<Record<string, string>>, value = 1): void {
    const key = series(name, labels);
    this.values.set(key, (this.values.get(key) ?? 0) + value);
  }

  set(name: string, labels: Readonly<Record<string, string>>, value: number): void {
    this.values.set(series(name, labels), value);
  }

  observe(name: string, read: () => Iterable<MetricReading>): () => void {
    this.readers.set(name, read);
    return () => this.readers.delete(name);
  }

  /** A counter's or set gauge's value, undefined if never published. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    return this.values.get(series(name, labels));
  }

  /** What a scrape would read from an observed gauge now. */
  scrape(name: string): MetricReading[] {
    return [...(this.readers.get(name)?.() ?? [])];
  }

  observing(name: string): boolean {
    return this.readers.has(name);
  }
}

function series(name: string, labels: Readonly<Record<string, string>>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((key) => `${key}=${labels[key]}`);
  return `${name}{${sorted.join(',')}}`;
}
