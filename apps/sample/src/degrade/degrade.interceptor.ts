import { CallHandler, ExecutionContext, Injectable, NestInterceptor, ServiceUnavailableException } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { DynamicConfigService } from '@nest-rollout/config';
import type { Observable } from 'rxjs';
import type { DegradeSwitch, SampleDynamicConfig } from '../sample.dynamic-config';

/** Ties a route to a degrade switch of the dynamic configuration (`degrade.<name>` in config/dynamic.yaml). */
export const Degradable = Reflector.createDecorator<DegradeSwitch>();

/**
 * Answers 503 with Retry-After, without running the handler, while the route's degrade switch is
 * on. The switch is read from the configuration in force on every request (a property access), so
 * turning it on or off in the file takes effect as soon as the change is applied.
 */
@Injectable()
export class DegradeInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly config: DynamicConfigService<SampleDynamicConfig>,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const name = this.reflector.get(Degradable, context.getHandler());
    if (name === undefined) return next.handle();
    const degrade = this.config.get('degrade');
    if (!degrade[name]) return next.handle();
    // Through the adapter, so that the header is set the same way on Express and Fastify.
    this.adapterHost.httpAdapter.setHeader(context.switchToHttp().getResponse(), 'Retry-After', String(degrade.retry_after_seconds));
    throw new ServiceUnavailableException(`switched off for now (degrade.${name} in the dynamic configuration); retry later`);
  }
}
