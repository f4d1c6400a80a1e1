/**
 * Series counting for the cap of `maxSeriesPerMetric`. A metric that enforces the cap exposes the
 * number of observations it sent to its `__overflow__` series under this symbol, and
 * `metrics_series_dropped_total` reads it from every metric of the registry at scrape time: the hot
 * path only bumps a number.
 */
export const SERIES_DROPPED = Symbol.for('@nest-rollout/metrics:series-dropped');

export interface SeriesCapped {
  readonly name: string;
  [SERIES_DROPPED](): number;
}

export function isSeriesCapped(metric: unknown): metric is SeriesCapped {
  return typeof metric === 'object' && metric !== null && typeof (metric as Partial<SeriesCapped>)[SERIES_DROPPED] === 'function';
}

/** Called once per metric, the first time it reaches its cap. */
export type CapReachedHandler = (metric: string, maxSeries: number) => void;

/**
 * The label sets a prom-client counter or gauge has seen, up to `maxSeries`. Label sets beyond it
 * are replaced by the overflow set; keys are the label values joined by a character no label
 * value of ours holds.
 */
export class LabelSetCap {
  private readonly seen = new Set<string>();
  private reported = false;
  dropped = 0;

  constructor(
    private readonly metric: string,
    private readonly maxSeries: number,
    private readonly onCapReached: CapReachedHandler,
  ) {}

  /** True when this label set may have a series of its own. */
  admit(values: readonly string[]): boolean {
    const key = values.join('\u0000');
    if (this.seen.has(key)) return true;
    if (this.seen.size < this.maxSeries) {
      this.seen.add(key);
      return true;
    }
    this.dropped++;
    if (!this.reported) {
      this.reported = true;
      this.onCapReached(this.metric, this.maxSeries);
    }
    return false;
  }
}
