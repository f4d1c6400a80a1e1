import { DiskHealthIndicator, MemoryHealthIndicator } from '@nestjs/terminus';
import type { HealthCheckDefinition } from '../health.check';
import { CheckOptions, commonFields, fromTerminus } from './indicator.utils';

export interface MemoryCheckOptions extends CheckOptions {
  /** Down when the V8 heap in use exceeds this many bytes. */
  readonly maxHeapBytes?: number;
  /** Down when the resident set size exceeds this many bytes. */
  readonly maxRssBytes?: number;
}

/** Memory thresholds with @nestjs/terminus' `MemoryHealthIndicator` (heap, RSS, or both). */
export function memoryCheck(name: string, options: MemoryCheckOptions): HealthCheckDefinition {
  return {
    name,
    ...commonFields(options, 'memory'),
    run: async (context) => {
      const indicator = await context.terminus(MemoryHealthIndicator);
      if (options.maxHeapBytes !== undefined) fromTerminus(await indicator.checkHeap(name, options.maxHeapBytes), name);
      if (options.maxRssBytes !== undefined) fromTerminus(await indicator.checkRSS(name, options.maxRssBytes), name);
      const { heapUsed, rss } = process.memoryUsage();
      return { heapUsedBytes: heapUsed, rssBytes: rss };
    },
  };
}

export interface DiskCheckOptions extends CheckOptions {
  /** A path on the file system to watch. */
  readonly path: string;
  /** Down when used space exceeds this fraction of the disk (0.9 = 90 %). */
  readonly thresholdPercent?: number;
  /** Down when used space exceeds this many bytes. */
  readonly thresholdBytes?: number;
}

/** Disk usage with @nestjs/terminus' `DiskHealthIndicator`. */
export function diskCheck(name: string, options: DiskCheckOptions): HealthCheckDefinition {
  return {
    name,
    ...commonFields(options, 'disk'),
    run: async (context) => {
      const indicator = await context.terminus(DiskHealthIndicator);
      const result =
        options.thresholdBytes !== undefined
          ? await indicator.checkStorage(name, { path: options.path, threshold: options.thresholdBytes })
          : await indicator.checkStorage(name, { path: options.path, thresholdPercent: options.thresholdPercent ?? 0.9 });
      return fromTerminus(result, name);
    },
  };
}
