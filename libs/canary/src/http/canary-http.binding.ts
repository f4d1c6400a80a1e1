import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { CanaryEvent } from '../canary.constants';
import { CanaryRoutes } from '../canary.routes';
import { canaryHttpHooks, type CanaryHttpHooks } from './canary-http.hooks';
import { CanaryRequestHandler } from './canary-request.handler';

/**
 * Puts `@Canary()` HTTP routes on the adapter's hooks: `install` runs from CanaryModule's
 * `configure` (Nest calls it after installing the body parsers and before registering routes, in
 * `app.init()`, for a real application and a testing one alike), `bind` once the routes exist.
 */
@Injectable()
export class CanaryHttpBinding implements OnApplicationBootstrap {
  private readonly logger = new Logger('Canary');
  private hooks: CanaryHttpHooks | undefined;
  private expected = 0;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly routes: CanaryRoutes,
    private readonly handler: CanaryRequestHandler,
  ) {}

  install(): void {
    if (this.hooks) return;
    this.expected = this.routes.prepare().http;
    this.handler.resolveForwarder();
    const adapter = this.adapterHost.httpAdapter;
    if (this.expected === 0 || !adapter) return;
    this.hooks = canaryHttpHooks(adapter, this.handler);
    if (!this.hooks) {
      this.logger.warn({ event: CanaryEvent.ADAPTER_UNSUPPORTED, adapter: adapter.getType(), supported: ['express', 'fastify'] });
      return;
    }
    this.hooks.install();
  }

  onApplicationBootstrap(): void {
    if (!this.hooks) return;
    const bound = this.hooks.bind();
    // A route the hooks cannot see would be served without any decision: say so at start-up.
    if (bound < this.expected) {
      this.logger.warn({ event: CanaryEvent.ROUTE_NOT_FOUND, adapter: this.hooks.adapter, decorated: this.expected, bound });
    }
  }
}
