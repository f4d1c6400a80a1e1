import type { Logger } from '@nestjs/common';
import { MetricsEvent, OVERFLOW_LABEL_VALUE } from './metrics.constants';
import type { CapReachedHandler } from './series-cap';

/** Logged once per metric: after that, `metrics_series_dropped_total` tells how much goes to the overflow series. */
export function logCapReached(logger: Logger): CapReachedHandler {
  return (metric, maxSeries) =>
    logger.warn({
      event: MetricsEvent.SERIES_CAP_REACHED,
      metric,
      max_series: maxSeries,
      overflow_label: OVERFLOW_LABEL_VALUE,
      hint: 'a label takes unbounded values (an id, a raw URL); fix the label, or raise maxSeriesPerMetric',
    });
}
