import { DynamicModule, Module, Type } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { getDataSourceToken } from '@nestjs/typeorm';
import { CANARY_FORWARDER, CANARY_RULES_SOURCE, CanaryModule, resolveCanaryOptions } from '@nest-rollout/canary';
import type { CanaryRulesSource } from '@nest-rollout/canary';
import { DynamicConfigModule, DynamicConfigService } from '@nest-rollout/config';
import { HealthModule } from '@nest-rollout/health';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { AppLogger, LoggingModule, TraceContext } from '@nest-rollout/logging';
import { MetricsModule } from '@nest-rollout/metrics';
import { RegistryClient, RegistryModule } from '@nest-rollout/registry';
import type { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { CacheModule, REDIS_CLIENT } from './cache/cache.module';
import { sampleCanaryForwarder, sampleCanaryOptions } from './canary/sample-canary';
import { DatabaseModule } from './database/database.module';
import { DemoController } from './demo/demo.controller';
import { SAMPLE_GRPC_SERVICES } from './grpc/sample-grpc.constants';
import { sampleHealthOptions } from './health/sample-health';
import { OrdersModule } from './orders/orders.module';
import { sampleConfig, type SampleConfig } from './sample.config';
import { SERVICE_NAME } from './sample.constants';
import { sampleDynamicConfigSchemaFor, type SampleDynamicConfig } from './sample.dynamic-config';

/** What main.ts decides before the application exists. */
export interface AppModuleExtras {
  /** The gRPC endpoint's module (grpc/sample-grpc.ts), given only with PORT_GRPC: main.ts loads it then. */
  readonly grpc?: Type<unknown>;
}

@Module({})
export class AppModule {
  /** `logger` is the one main.ts handed to NestFactory.create: the module reuses it. */
  static forRoot(logger: AppLogger, extras: AppModuleExtras = {}): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        // The environment, validated before any provider is built; every module below reads it
        // typed, through sampleConfig.KEY. No .env file: a pod gets exactly what it was given.
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: [sampleConfig], validate: sampleConfig.validate }),
        LoggingModule.forLogger(logger),
        LifecycleModule.forRootAsync({
          inject: [sampleConfig.KEY],
          useFactory: (config: SampleConfig) => ({
            drainDelayMs: config.drainDelayMs,
            shutdownTimeoutMs: config.shutdownTimeoutMs,
            minReadyDelayMs: config.minReadyDelayMs,
            hardDeadlineMs: config.hardDeadlineMs,
            color: config.color,
            version: config.version,
          }),
        }),
        // Degrade switches and canary rules from DYNAMIC_CONFIG_FILE: watched, validated before
        // they apply, re-read on SIGHUP; a file that does not validate at start-up stops the boot.
        DynamicConfigModule.forRootAsync({
          inject: [sampleConfig.KEY],
          useFactory: (config: SampleConfig) => ({
            // Claim rules validate only where the canary module can verify tokens.
            schema: sampleDynamicConfigSchemaFor(resolveCanaryOptions(sampleCanaryOptions(config)).jwt),
            file: config.dynamicConfigFile,
          }),
        }),
        // After DynamicConfigModule: Nest initialises global modules in import order, and the canary
        // subscribes to the rules source in its onModuleInit, which needs the file loaded.
        // Canary decisions on a stable instance go to CANARY_FORWARDER (below) when there is a canary.
        CanaryModule.forRootAsync({
          inject: [sampleConfig.KEY, TraceContext],
          useFactory: sampleCanaryOptions,
        }),
        DatabaseModule,
        CacheModule,
        // The checks borrow the DataSource and the Redis client the orders use. With gRPC,
        // grpc.health.v1 too, reporting on the sample's own services by name as well.
        HealthModule.forRootAsync({
          grpc: extras.grpc !== undefined,
          inject: [sampleConfig.KEY, getDataSourceToken(), REDIS_CLIENT],
          useFactory: (config: SampleConfig, dataSource: DataSource, redis: Redis | null) => ({
            ...sampleHealthOptions(config, dataSource, redis),
            grpcServices: SAMPLE_GRPC_SERVICES,
          }),
        }),
        // /metrics on the public port, unless a management port serves it with the probes (main.ts).
        MetricsModule.forRootAsync({
          inject: [sampleConfig.KEY],
          useFactory: (config: SampleConfig) => ({ serveOnAppPort: config.managementPort === undefined, track: config.registry.track }),
        }),
        RegistryModule.forRootAsync({
          inject: [sampleConfig.KEY],
          useFactory: (config: SampleConfig) => ({
            driver: config.registry.driver,
            service: SERVICE_NAME,
            track: config.registry.track,
            // LISTEN_HOST=127.0.0.1 must be advertised as such; on 0.0.0.0 the module detects the address.
            ...(config.host !== '0.0.0.0' && config.host !== '::' ? { address: config.host } : {}),
            ...(config.registry.consulUrl ? { consul: { url: config.registry.consulUrl } } : {}),
            ...(config.registry.etcdEndpoints ? { etcd: { endpoints: config.registry.etcdEndpoints } } : {}),
          }),
        }),
        OrdersModule,
        ...(extras.grpc ? [extras.grpc] : []),
      ],
      controllers: [DemoController],
      // Live canary rules: the `canary` section of the dynamic configuration, which validates it with
      // the canary module's own checks (sample.dynamic-config.ts), so a rule set the canary would
      // refuse is rejected there and never reaches it.
      providers: [
        {
          provide: CANARY_RULES_SOURCE,
          inject: [DynamicConfigService],
          useFactory: (config: DynamicConfigService<SampleDynamicConfig>): CanaryRulesSource => ({
            subscribe: (apply) => config.watch('canary').subscribe(apply),
          }),
        },
        {
          provide: CANARY_FORWARDER,
          inject: [sampleConfig.KEY, RegistryClient],
          useFactory: sampleCanaryForwarder,
        },
      ],
      exports: [CANARY_RULES_SOURCE, CANARY_FORWARDER],
    };
  }
}
