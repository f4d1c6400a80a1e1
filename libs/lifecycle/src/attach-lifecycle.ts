import type { INestApplication } from '@nestjs/common';
import { LifecycleService } from './lifecycle.service';

/**
 * Hands the application's HTTP server and shutdown signals to the lifecycle. Call it after
 * `NestFactory.create()` and before `app.listen()`, instead of `app.enableShutdownHooks()`.
 */
export function attachLifecycle(app: INestApplication): LifecycleService {
  const lifecycle = app.get(LifecycleService);
  lifecycle.attach(app);
  return lifecycle;
}
