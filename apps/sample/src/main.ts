import 'reflect-metadata';
import { INestApplication, Logger as NestLogger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { ManagementServer } from '@nest-rollout/health';
import { describeError } from '@nest-rollout/lifecycle';
import { AppLogger } from '@nest-rollout/logging';
import { MetricsService } from '@nest-rollout/metrics';
import { AppModule } from './app.module';
import { sampleLogFields } from './sample-logging';
import { sampleConfig, type SampleConfig } from './sample.config';
import { SampleEvent } from './sample.constants';
import { writeStartupFailure } from './startup-failure';

async function bootstrap(): Promise<void> {
  // The logger exists before anything else, so that every line is JSON from the first one on,
  // including the error of an environment that does not parse (logged with the defaults then).
  // The environment is validated here, before Nest, because the adapter, the logger and the port
  // come from it; the application's providers get the same values through sampleConfig.KEY.
  let config: SampleConfig;
  let logger: AppLogger;
  try {
    config = sampleConfig.parse();
    logger = new AppLogger({ level: config.logLevel, pretty: config.logPretty, ...sampleLogFields(config) });
  } catch (error) {
    return failStart(new AppLogger(), error);
  }
  const adapter = config.adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  // gRPC only with PORT_GRPC, and its packages loaded only then.
  let grpc: typeof import('./grpc/sample-grpc.js') | undefined;
  try {
    if (config.grpcPort !== undefined) grpc = await import('./grpc/sample-grpc.js');
  } catch (error) {
    return failStart(logger, error);
  }
  let app: INestApplication;
  try {
    app = await NestFactory.create(AppModule.forRoot(logger, { grpc: grpc?.SampleGrpcModule }), adapter, {
      logger,
      // Nest holds its first lines until LoggingModule knows the lifecycle, so that they carry its
      // boot trace id like every line after them until READY.
      bufferLogs: true,
      // A boot that fails rejects here, instead of Nest ending the process by itself.
      abortOnError: false,
    });
  } catch (error) {
    // Nest logged it already, as JSON through this logger (its ExceptionHandler line).
    return failStart(logger, error, true);
  }
  try {
    // With PORT_MANAGEMENT, /metrics moves to the management port with the probes.
    if (config.managementPort !== undefined) app.get(ManagementServer).addRoute(app.get(MetricsService).managementRoute());
    // The orders and grpc.health.v1 over gRPC, listening before the HTTP server so that the
    // instance turns ready with both, and drained with it on SIGTERM.
    const grpcServer = grpc && config.grpcPort !== undefined ? grpc.connectSampleGrpc(app, config.grpcPort, config.host) : undefined;
    await app.init();
    await grpcServer?.start();
  } catch (error) {
    return failStart(logger, error);
  }
  try {
    // LifecycleModule takes the server from here: warm-up once it listens (the database connects
    // then), READY, and the graceful drain on SIGTERM.
    await app.listen(config.port, config.host);
  } catch (error) {
    // Nest logged the server's error already (a port in use).
    failStart(logger, error, true);
  }
}

/** One JSON error line for the log collector, one plain message on standard error, exit 1. */
function failStart(logger: AppLogger, error: unknown, logged = false): never {
  // Lines Nest still holds (bufferLogs) come before the error.
  NestLogger.flush();
  if (!logged) logger.error({ event: SampleEvent.START_FAILED, error: describeError(error) }, 'Bootstrap');
  // Options and environment errors name what to fix; a stack trace would only bury that.
  writeStartupFailure(error instanceof Error ? error.message : String(error));
  // The logger writes what it still buffers on exit.
  process.exit(1);
}

void bootstrap();
