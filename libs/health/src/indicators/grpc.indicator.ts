import { GRPCHealthIndicator } from '@nestjs/terminus';
import type { HealthCheckDefinition } from '../health.check';
import { CheckOptions, commonFields, fromTerminus, terminusTimeoutMs } from './indicator.utils';

export interface GrpcCheckOptions extends CheckOptions {
  /** `host:port` of the upstream. */
  readonly url: string;
  /**
   * The service name sent in `HealthCheckRequest`; `''` asks for the server as a whole.
   * @default ''
   */
  readonly service?: string;
  /** Channel credentials etc., passed to Nest's gRPC client as `options` (e.g. `credentials`). */
  readonly clientOptions?: Readonly<Record<string, unknown>>;
}

/**
 * A gRPC upstream through the standard grpc.health.v1 `Check`, with @nestjs/terminus'
 * `GRPCHealthIndicator`, which keeps one channel per check open across runs.
 * Needs `@nestjs/microservices`, `@grpc/grpc-js` and `@grpc/proto-loader`.
 */
export function grpcCheck(name: string, options: GrpcCheckOptions): HealthCheckDefinition {
  return {
    name,
    ...commonFields(options, 'grpc'),
    run: async (context) => {
      const indicator = await context.terminus(GRPCHealthIndicator);
      const attempt = indicator.checkService(name, options.service ?? '', {
        ...options.clientOptions,
        url: options.url,
        timeout: terminusTimeoutMs(context.timeoutMs),
      });
      return fromTerminus(await attempt, name);
    },
  };
}
