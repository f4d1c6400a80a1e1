import { DynamicModule, Module } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import { HealthModule } from '@nest-rollout/health';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { AppLogger, LoggingModule } from '@nest-rollout/logging';
import { MetricsModule } from '@nest-rollout/metrics';
import { RegistryModule } from '@nest-rollout/registry';
import { CacheModule, REDIS_CLIENT } from './cache/cache.module';
import { DatabaseModule } from './database/database.module';
import { DemoController } from './demo/demo.controller';
import { sampleHealthOptions } from './health/sample-health';
import { OrdersModule } from './orders/orders.module';
import type { SampleConfig } from './sample.config';
import { SAMPLE_CONFIG } from './sample.constants';

@Module({})
export class AppModule {
  /** `logger` is the one main.ts handed to NestFactory.create: the module reuses it. */
  static forRoot(config: SampleConfig, logger: AppLogger): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        LoggingModule.forLogger(logger),
        LifecycleModule.forRoot({
          drainDelayMs: config.drainDelayMs,
          shutdownTimeoutMs: config.shutdownTimeoutMs,
          minReadyDelayMs: config.minReadyDelayMs,
          hardDeadlineMs: config.hardDeadlineMs,
          color: config.color,
          version: config.version,
        }),
        DatabaseModule,
        CacheModule,
        // Async, because the checks borrow the DataSource and the Redis client the orders use.
        HealthModule.forRootAsync({
          inject: [SAMPLE_CONFIG, getDataSourceToken(), REDIS_CLIENT],
          useFactory: sampleHealthOptions,
        }),
        // /metrics on the public port, unless a management port serves it with the probes (main.ts).
        MetricsModule.forRoot({ serveOnAppPort: config.managementPort === undefined, track: config.registry.track }),
        RegistryModule.forRoot({
          driver: config.registry.driver,
          service: 'orders',
          track: config.registry.track,
          // LISTEN_HOST=127.0.0.1 must be advertised as such; on 0.0.0.0 the module detects the address.
          ...(config.host !== '0.0.0.0' && config.host !== '::' ? { address: config.host } : {}),
          ...(config.registry.consulUrl ? { consul: { url: config.registry.consulUrl } } : {}),
          ...(config.registry.etcdEndpoints ? { etcd: { endpoints: config.registry.etcdEndpoints } } : {}),
        }),
        OrdersModule,
      ],
      controllers: [DemoController],
      providers: [{ provide: SAMPLE_CONFIG, useValue: config }],
      exports: [SAMPLE_CONFIG],
    };
  }
}
