import { DynamicModule, Module } from '@nestjs/common';
import { HealthModule } from '@nest-rollout/health';
import { LifecycleModule } from '@nest-rollout/lifecycle';
import { LoggingModule } from '@nest-rollout/logging';
import { DemoController } from './demo/demo.controller';
import { OrdersModule } from './orders/orders.module';
import type { SampleConfig } from './sample.config';
import { SAMPLE_CONFIG } from './sample.constants';

@Module({})
export class AppModule {
  static forRoot(config: SampleConfig): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        LoggingModule.forRoot({ level: config.logLevel, pretty: config.logPretty }),
        LifecycleModule.forRoot({
          drainDelayMs: config.drainDelayMs,
          shutdownTimeoutMs: config.shutdownTimeoutMs,
          minReadyDelayMs: config.minReadyDelayMs,
          hardDeadlineMs: config.hardDeadlineMs,
          color: config.color,
          version: config.version,
        }),
        HealthModule.forRoot(),
        OrdersModule,
      ],
      controllers: [DemoController],
      providers: [{ provide: SAMPLE_CONFIG, useValue: config }],
      exports: [SAMPLE_CONFIG],
    };
  }
}
