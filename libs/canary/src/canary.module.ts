import { DynamicModule, Module, NestModule } from '@nestjs/common';
import { systemClock } from '@nest-rollout/lifecycle';
import { CANARY_CLOCK, CANARY_OPTIONS } from './canary.constants';
import { CanaryContext } from './canary.context';
import { CanaryInterceptor } from './canary.interceptor';
import { CANARY_MODULE_OPTIONS, CANARY_OPTIONS_TYPE, CanaryConfigurableModule } from './canary.module-definition';
import { CanaryModuleOptions, resolveCanaryOptions } from './canary.options';
import { CanaryRoutes } from './canary.routes';
import { CanaryService } from './canary.service';
import { CanaryHttpBinding } from './http/canary-http.binding';
import { CanaryRequestHandler } from './http/canary-request.handler';

@Module({
  providers: [
    {
      provide: CANARY_OPTIONS,
      // Validation lives in the provider so that forRoot and every forRootAsync form are covered.
      useFactory: (options: CanaryModuleOptions) => resolveCanaryOptions(options),
      inject: [CANARY_MODULE_OPTIONS],
    },
    { provide: CANARY_CLOCK, useValue: systemClock },
    CanaryService,
    CanaryContext,
    CanaryInterceptor,
    CanaryRoutes,
    CanaryRequestHandler,
    CanaryHttpBinding,
  ],
  exports: [CANARY_OPTIONS, CANARY_CLOCK, CanaryService, CanaryContext, CanaryInterceptor],
})
export class CanaryModule extends CanaryConfigurableModule implements NestModule {
  constructor(private readonly http: CanaryHttpBinding) {
    super();
  }

  /** Nest calls it in `app.init()`, after the body parsers and before the routes: where the HTTP hooks go. */
  configure(): void {
    this.http.install();
  }

  /** `forRoot()` with no argument means every default (every request stable). */
  static override forRoot(options: typeof CANARY_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
