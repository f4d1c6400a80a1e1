import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { ManagementServer } from '@nest-rollout/health';
import { attachLifecycle } from '@nest-rollout/lifecycle';
import { Logger } from '@nest-rollout/logging';
import { MetricsService } from '@nest-rollout/metrics';
import { AppModule } from './app.module';
import { loadSampleConfig } from './sample.config';

async function bootstrap(): Promise<void> {
  const config = loadSampleConfig();
  const adapter = config.adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(AppModule.forRoot(config), adapter, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  // Instead of app.enableShutdownHooks(): drain, then close, then Nest's hooks, then exit.
  attachLifecycle(app);
  // With PORT_MANAGEMENT, /metrics moves to the management port with the probes.
  if (config.managementPort !== undefined) app.get(ManagementServer).addRoute(app.get(MetricsService).managementRoute());
  await app.listen(config.port, config.host);
}

bootstrap().catch((error: unknown) => {
  // Options and environment errors name what to fix; print them plainly, not as a stack dump.
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
