import type { HttpAdapterHost, NestContainer } from '@nestjs/core';
import { NestApplicationContext } from '@nestjs/core';

/** What ends the application once the lifecycle has drained it. */
export interface ApplicationCloser {
  close(): Promise<void>;
}

/**
 * Nest's own shutdown sequence (onModuleDestroy → beforeApplicationShutdown → the HTTP adapter
 * closes → onApplicationShutdown), run over the application's modules when the lifecycle was not
 * handed the application object: `LifecycleModule.forRoot()` alone finds the HTTP server through
 * `HttpAdapterHost`, but nothing in Nest's container leads back to the `INestApplication`. The
 * hooks run in the order and on the modules `app.close()` would use; what this cannot reach is a
 * microservice or WebSocket server connected to the application, which ends with the process
 * (use `attachLifecycle(app)` to have `app.close()` close those too).
 */
export class ContainerCloser extends NestApplicationContext implements ApplicationCloser {
  constructor(
    container: NestContainer,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    super(container);
  }

  protected override async dispose(): Promise<void> {
    await this.adapterHost.httpAdapter?.close();
    this.adapterHost.listening = false;
  }
}
