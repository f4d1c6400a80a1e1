import type { INestApplication, INestMicroservice, NestHybridApplicationOptions } from '@nestjs/common';
import { RpcMetricsInterceptor } from './rpc-metrics.interceptor';

/**
 * `app.connectMicroservice()` with `rpc_server_duration_seconds` on every handler of that
 * microservice, and no interceptor on the HTTP side.
 *
 * Nest registers a connected microservice's handlers, and reads its global interceptors, as soon as
 * it is connected, so the interceptor must be in place before: the connection is deferred, the
 * interceptor added, and the handlers registered by `startAllMicroservices()`. A deferred
 * microservice would also run the application's init and bootstrap hooks a second time; the
 * application runs them, so the microservice is told they ran, as Nest does for the immediate case.
 */
export function connectMicroserviceWithMetrics<T extends object>(
  app: INestApplication,
  options: T,
  hybridOptions: Omit<NestHybridApplicationOptions, 'deferInitialization'> = {},
): INestMicroservice {
  const microservice = app.connectMicroservice<T>(options, { ...hybridOptions, deferInitialization: true });
  microservice.useGlobalInterceptors(app.get(RpcMetricsInterceptor));
  (microservice as INestMicroservice & { setIsInitHookCalled?(called: boolean): void }).setIsInitHookCalled?.(true);
  return microservice;
}
