import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type INestApplication, Logger, Module } from '@nestjs/common';
import { type GrpcOptions, Transport } from '@nestjs/microservices';
import type { Server } from '@grpc/grpc-js';
import { HEALTH_GRPC_PACKAGE, HEALTH_GRPC_PROTO_PATH } from '@nest-rollout/health';
import { attachLifecycle, systemClock } from '@nest-rollout/lifecycle';
import { connectMicroserviceWithMetrics } from '@nest-rollout/metrics';
import { DatabaseModule } from '../database/database.module';
import { OrdersModule } from '../orders/orders.module';
import { SampleEvent } from '../sample.constants';
import { DemoGrpcController } from './demo.grpc-controller';
import { GRPC_CLOCK, GrpcDrain } from './grpc-drain';
import { OrdersGrpcController } from './orders.grpc-controller';
import { SAMPLE_GRPC_SERVICES } from './sample-grpc.constants';

/** The .proto files are not where the build expects them: the gRPC server cannot start. */
export class SampleProtoMissingError extends Error {
  readonly code = 'SAMPLE_GRPC_PROTO_MISSING';
  constructor(candidates: readonly string[]) {
    super(`apps/sample/proto/orders.proto not found (looked in ${candidates.join(', ')}); ship apps/sample/proto with the build`);
    this.name = 'SampleProtoMissingError';
  }
}

/**
 * Where the .proto files are: they ship beside the sources (apps/sample/proto), since the build
 * (tsc) copies no assets. From src/grpc (specs) that is two folders up; from dist/apps/sample/grpc
 * (the build) it is under the repository root. An image must carry that folder beside dist.
 */
export function sampleProtoDir(from = __dirname): string {
  const candidates = [join(from, '..', '..', 'proto'), join(from, '..', '..', '..', '..', 'apps', 'sample', 'proto')];
  const found = candidates.find((dir) => existsSync(join(dir, 'orders.proto')));
  if (!found) throw new SampleProtoMissingError(candidates);
  return found;
}

/** The gRPC endpoint: the orders, the demo call and grpc.health.v1 (HealthModule with `grpc: true`). */
@Module({
  imports: [OrdersModule, DatabaseModule],
  controllers: [OrdersGrpcController, DemoGrpcController],
  providers: [{ provide: GRPC_CLOCK, useValue: systemClock }, GrpcDrain],
})
export class SampleGrpcModule {}

/** `onServer` receives the grpc-js server once Nest has created it (before it serves a call). */
export function sampleGrpcOptions(port: number, host: string, onServer: (server: Server) => void = () => undefined): GrpcOptions {
  const protoDir = sampleProtoDir();
  return {
    transport: Transport.GRPC,
    options: {
      url: `${host.includes(':') ? `[${host}]` : host}:${port}`,
      package: [HEALTH_GRPC_PACKAGE, 'orders.v1', 'demo.v1'],
      protoPath: [HEALTH_GRPC_PROTO_PATH, join(protoDir, 'orders.proto'), join(protoDir, 'demo.proto')],
      // Fields in camelCase on the handlers' side (created_at is createdAt); unset fields as their defaults.
      loader: { keepCase: false, defaults: true },
      // Nest's gRPC transport does not `unwrap()` its server; this hook is where it hands it out.
      onLoadPackageDefinition: (_definition: unknown, server: Server) => onServer(server),
    },
  };
}

/**
 * Connects the gRPC server to the application (a hybrid application), before `app.init()`:
 * `rpc_server_duration_seconds` on every call, GrpcDrain handed the server, and the lifecycle
 * handed the application, so that its shutdown ends with `app.close()`, which closes the gRPC
 * server too. `start()`, after `app.init()` and before `app.listen()`, binds the port, so the
 * instance turns ready only with gRPC listening.
 */
export function connectSampleGrpc(app: INestApplication, port: number, host: string): { start(): Promise<void> } {
  attachLifecycle(app);
  const drain = app.get(GrpcDrain);
  connectMicroserviceWithMetrics<GrpcOptions>(
    app,
    sampleGrpcOptions(port, host, (server) => drain.serve(server)),
  );
  return {
    async start() {
      await app.startAllMicroservices();
      new Logger('Grpc').log({ event: SampleEvent.GRPC_LISTENING, host, port, services: SAMPLE_GRPC_SERVICES });
    },
  };
}
