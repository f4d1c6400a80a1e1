import { OVERFLOW_LABEL_VALUE } from './metrics.constants';
import { CapReachedHandler, SERIES_DROPPED, SeriesCapped } from './series-cap';

/** One value of a metric as prom-client's registry formats it. */
export interface ExposedValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string | number>>;
  /** Labels every value of one series shares; the registry formats them once per series. */
  readonly sharedLabels?: Readonly<Record<string, string>>;
  readonly metricName?: string;
}

export interface ExposedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  readonly values: ExposedValue[];
}

export interface BoundedHistogramConfig {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Strictly ascending upper bounds, without +Inf. */
  readonly buckets: readonly number[];
  readonly maxSeries: number;
  readonly onCapReached: CapReachedHandler;
}

const INF_LABELS = Object.freeze({ le: '+Inf' });
const NO_LABELS = Object.freeze({});

/**
 * One label set of a histogram. Callers on the hot path keep a reference to it and call
 * `observe()`, which costs a short bucket scan and three additions: no label hashing, no
 * allocation (prom-client's `observe()` builds and hashes a label object on every call, about
 * 30 times slower).
 */
export class HistogramSeries {
  /** Per-bucket counts (not cumulative); the last slot holds what is above the highest bound. */
  readonly bucketCounts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: Float64Array,
    private readonly histogram: BoundedHistogram | undefined,
  ) {
    this.bucketCounts = new Float64Array(bounds.length + 1);
  }

  observe(seconds: number): void {
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && seconds > bounds[i]) i++;
    this.bucketCounts[i]++;
    this.sum += seconds;
    this.count++;
    // Only the overflow series knows its histogram: the one branch ordinary series pay for.
    if (this.histogram !== undefined) this.histogram.droppedObservations++;
  }

  reset(): void {
    this.bucketCounts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/**
 * A Prometheus histogram with a cap on its series, registered in a prom-client registry (which
 * formats it like its own histograms) but recording through series references that callers cache.
 */
export class BoundedHistogram implements SeriesCapped {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly buckets: readonly number[];
  /** Observations recorded under the overflow series. */
  droppedObservations = 0;
  private readonly bounds: Float64Array;
  private readonly maxSeries: number;
  private readonly onCapReached: CapReachedHandler;
  private readonly series = new Map<string, HistogramSeries>();
  /** `{ le }` of each bucket, shared by every series' text exposition (the registry only reads them). */
  private readonly leLabels: readonly Readonly<Record<string, number>>[];
  private overflow: HistogramSeries | undefined;

  constructor(config: BoundedHistogramConfig) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = Object.freeze([...config.labelNames]);
    this.buckets = Object.freeze([...config.buckets]);
    this.bounds = Float64Array.from(config.buckets);
    this.leLabels = this.buckets.map((le) => Object.freeze({ le }));
    this.maxSeries = config.maxSeries;
    this.onCapReached = config.onCapReached;
  }

  /** The series of these label values (in `labelNames` order), created on first use; past the cap, the overflow series. */
  seriesFor(values: readonly string[]): HistogramSeries {
    const key = values.join('\u0000');
    const existing = this.series.get(key);
    if (existing) return existing;
    if (this.series.size >= this.maxSeries) return this.overflowSeries();
    const labels: Record<string, string> = {};
    this.labelNames.forEach((label, i) => (labels[label] = values[i]));
    const series = new HistogramSeries(Object.freeze(labels), this.bounds, undefined);
    this.series.set(key, series);
    return series;
  }

  /** Number of series, the overflow series included. */
  get seriesCount(): number {
    return this.series.size + (this.overflow ? 1 : 0);
  }

  [SERIES_DROPPED](): number {
    return this.droppedObservations;
  }

  /** Zeroes every series in place, so that the references callers cached stay valid. */
  reset(): void {
    for (const series of this.series.values()) series.reset();
    this.overflow?.reset();
    this.droppedObservations = 0;
  }

  /** What prom-client's registry calls to format the text exposition. */
  async getForPromString(): Promise<ExposedMetric> {
    return this.expose(false);
  }

  /** What prom-client's registry calls for JSON (and cluster aggregation). */
  async get(): Promise<ExposedMetric> {
    return this.expose(true);
  }

  private overflowSeries(): HistogramSeries {
    if (!this.overflow) {
      const labels: Record<string, string> = {};
      for (const label of this.labelNames) labels[label] = OVERFLOW_LABEL_VALUE;
      this.overflow = new HistogramSeries(Object.freeze(labels), this.bounds, this);
      this.onCapReached(this.name, this.maxSeries);
    }
    return this.overflow;
  }

  private expose(splay: boolean): ExposedMetric {
    const values: ExposedValue[] = [];
    const name = this.name;
    const bucketName = `${name}_bucket`;
    const sumName = `${name}_sum`;
    const countName = `${name}_count`;
    const buckets = this.buckets;
    const all = this.overflow ? [...this.series.values(), this.overflow] : [...this.series.values()];
    // Plain object literals of one shape, no spreads: a scrape of a thousand series builds
    // fourteen thousand of them, on the event loop that also serves requests.
    for (const series of all) {
      const shared = series.labels;
      let cumulative = 0;
      for (let i = 0; i < buckets.length; i++) {
        cumulative += series.bucketCounts[i];
        values.push(
          splay
            ? { labels: { ...shared, le: buckets[i] }, value: cumulative, metricName: bucketName }
            : { labels: this.leLabels[i], sharedLabels: shared, value: cumulative, metricName: bucketName },
        );
      }
      if (splay) {
        values.push({ labels: { ...shared, le: '+Inf' }, value: series.count, metricName: bucketName });
        values.push({ labels: { ...shared }, value: series.sum, metricName: sumName });
        values.push({ labels: { ...shared }, value: series.count, metricName: countName });
      } else {
        values.push({ labels: INF_LABELS, sharedLabels: shared, value: series.count, metricName: bucketName });
        values.push({ labels: NO_LABELS, sharedLabels: shared, value: series.sum, metricName: sumName });
        values.push({ labels: NO_LABELS, sharedLabels: shared, value: series.count, metricName: countName });
      }
    }
    return { name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
