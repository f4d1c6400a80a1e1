import type { MetricReading, MetricsPublisher } from '@nest-rollout/lifecycle';

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
