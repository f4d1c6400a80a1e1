import { ConfigurableModuleBuilder, Type } from '@nestjs/common';
import { HEALTH_PATH } from './health.constants';
import { createHealthController } from './health.controller';
import type { HealthModuleOptions } from './health.options';
import { DEFAULT_HEALTH_PATH, validateHealthPath } from './health.options';
import { createHealthGrpcController } from './grpc/health.grpc-controller';

/** Options Nest reads when the module is defined, so they cannot come from forRootAsync's factory. */
export interface HealthModuleExtras {
  /** @default false */
  isGlobal?: boolean;
  /** @default 'health' */
  path?: string;
  /**
   * Serve grpc.health.v1 (Check, Watch) from this module in a Nest gRPC microservice; needs
   * `@nestjs/microservices`, `@grpc/grpc-js` and `@grpc/proto-loader`, and `HEALTH_GRPC_PROTO_PATH`
   * among the microservice's proto files.
   * @default false
   */
  grpc?: boolean;
}

/** A class for `forRootAsync({ useClass })` / `({ useExisting })`. */
export interface HealthOptionsFactory {
  createHealthOptions(): HealthModuleOptions | Promise<HealthModuleOptions>;
}

export const {
  ConfigurableModuleClass: HealthConfigurableModule,
  MODULE_OPTIONS_TOKEN: HEALTH_MODULE_OPTIONS,
  OPTIONS_TYPE: HEALTH_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<HealthModuleOptions>({ moduleName: 'Health' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createHealthOptions')
  .setExtras<HealthModuleExtras>({ isGlobal: false, path: DEFAULT_HEALTH_PATH, grpc: false }, (definition, extras) => {
    const path = validateHealthPath(extras.path);
    // A controller class per module instance: the path is metadata on the class, and sharing one
    // class between two apps in one process (tests) would let the last forRoot win.
    const controllers: Type<unknown>[] = [createHealthController(path)];
    if (extras.grpc) controllers.push(createHealthGrpcController());
    return {
      ...definition,
      global: extras.isGlobal,
      controllers: [...(definition.controllers ?? []), ...controllers],
      providers: [...(definition.providers ?? []), { provide: HEALTH_PATH, useValue: path }],
    };
  })
  .build();
