import { Controller, Get, Inject, NotFoundException, Req, Res, Type, VERSION_NEUTRAL } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { markScrape } from './http/scrape-marker';
import { InstanceMetrics } from './instance.metrics';
import { METRICS_OPTIONS } from './metrics.constants';
import type { ResolvedMetricsOptions } from './metrics.options';
import { MetricsService } from './metrics.service';

/**
 * The scrape endpoint on the application's port. A class per module instance: the path is metadata
 * on the class, and sharing one class between two applications in one process would let the last
 * forRoot win (the trap @willsoto/nestjs-prometheus's shared controller falls into). Version-neutral:
 * the scrape URL in Prometheus' configuration must not move with the API's default version.
 */
export function createMetricsController(path: string): Type<unknown> {
  @Controller({ path, version: VERSION_NEUTRAL })
  class MetricsController {
    constructor(
      private readonly metrics: MetricsService,
      private readonly instance: InstanceMetrics,
      private readonly adapterHost: HttpAdapterHost,
      @Inject(METRICS_OPTIONS) private readonly options: ResolvedMetricsOptions,
    ) {}

    @Get()
    async scrape(@Req() request: unknown, @Res({ passthrough: true }) response: unknown): Promise<string> {
      // Decided per request rather than by leaving the controller out: forRootAsync options
      // resolve after Nest has read the module's controllers.
      if (!this.options.serveOnAppPort) throw new NotFoundException();
      // Out of the histogram, and out of the in-flight gauge this very scrape renders.
      markScrape(request);
      this.instance.scrapesInFlight++;
      try {
        const { contentType, body } = await this.metrics.metrics();
        this.adapterHost.httpAdapter.setHeader(response, 'Content-Type', contentType);
        this.adapterHost.httpAdapter.setHeader(response, 'Cache-Control', 'no-store');
        return body;
      } finally {
        this.instance.scrapesInFlight--;
      }
    }
  }
  return MetricsController;
}
