import { Injectable, Type } from '@nestjs/common';
import { MetadataScanner, ModulesContainer } from '@nestjs/core';
import { CANARY_ROUTE_CONFIG_KEY, CANARY_ROUTE_METADATA } from './canary.constants';
import { CanaryInterceptor } from './canary.interceptor';
import type { CanaryRouteOptions } from './canary.types';

/**
 * Nest's metadata keys, by value: `@nestjs/common`'s PATH_METADATA and INTERCEPTORS_METADATA,
 * `@nestjs/microservices`' PATTERN_METADATA and `@nestjs/platform-fastify`'s route config key, the
 * same strings in Nest 11 and 12. By value so that this lib needs neither the microservices
 * package nor the Fastify adapter.
 */
const PATH_METADATA = 'path';
const INTERCEPTORS_METADATA = '__interceptors__';
const PATTERN_METADATA = 'microservices:pattern';
const FASTIFY_ROUTE_CONFIG_METADATA = '__fastify_route_config__';

export interface CanaryRouteCount {
  readonly http: number;
  readonly rpc: number;
}

/**
 * Prepares `@Canary()` handlers before Nest registers them, once the decorators have all run (so
 * their order on a method does not matter):
 *
 * - HTTP routes: the options go on the method itself (a controller-wide `@Canary()` included),
 *   where Nest copies them onto the handler it gives Express, and into the route config Nest's
 *   Fastify adapter passes to Fastify, merged with any `@RouteConfig()`. The interceptor
 *   `@Canary()` attached is taken off: over HTTP the adapter's hooks decide, before the body
 *   parser, at a fraction of an interceptor's cost.
 * - Microservice handlers (gRPC): the interceptor stays, on the method.
 */
@Injectable()
export class CanaryRoutes {
  private prepared: CanaryRouteCount | undefined;
  private readonly scanner = new MetadataScanner();

  constructor(private readonly modules: ModulesContainer) {}

  prepare(): CanaryRouteCount {
    if (this.prepared) return this.prepared;
    let http = 0;
    let rpc = 0;
    for (const module of this.modules.values()) {
      for (const wrapper of module.controllers.values()) {
        const controller = wrapper.metatype as Type | null;
        if (!controller?.prototype) continue;
        const counted = this.prepareController(controller);
        http += counted.http;
        rpc += counted.rpc;
      }
    }
    this.prepared = { http, rpc };
    return this.prepared;
  }

  private prepareController(controller: Type): CanaryRouteCount {
    const prototype = controller.prototype as Record<string, unknown>;
    const classOptions = Reflect.getMetadata(CANARY_ROUTE_METADATA, controller) as CanaryRouteOptions | undefined;
    const classWide = withoutCanaryInterceptor(controller);
    let http = 0;
    let rpc = 0;
    for (const name of this.scanner.getAllMethodNames(prototype)) {
      const method = prototype[name] as object;
      const options = (Reflect.getMetadata(CANARY_ROUTE_METADATA, method) as CanaryRouteOptions | undefined) ?? classOptions;
      if (options === undefined) continue;
      if (Reflect.hasMetadata(PATTERN_METADATA, method)) {
        // The controller-wide interceptor moves to each handler that needs it.
        if (classWide) addInterceptor(method);
        rpc++;
      } else if (Reflect.hasMetadata(PATH_METADATA, method)) {
        Reflect.defineMetadata(CANARY_ROUTE_METADATA, options, method);
        const config = (Reflect.getMetadata(FASTIFY_ROUTE_CONFIG_METADATA, method) as Record<string, unknown> | undefined) ?? {};
        Reflect.defineMetadata(FASTIFY_ROUTE_CONFIG_METADATA, { ...config, [CANARY_ROUTE_CONFIG_KEY]: options }, method);
        withoutCanaryInterceptor(method);
        http++;
      }
    }
    return { http, rpc };
  }
}

/** Takes CanaryInterceptor off a class's or method's interceptors; true if it was there. */
function withoutCanaryInterceptor(target: object): boolean {
  const interceptors = Reflect.getMetadata(INTERCEPTORS_METADATA, target) as unknown[] | undefined;
  if (!interceptors?.includes(CanaryInterceptor)) return false;
  Reflect.defineMetadata(
    INTERCEPTORS_METADATA,
    interceptors.filter((interceptor) => interceptor !== CanaryInterceptor),
    target,
  );
  return true;
}

function addInterceptor(method: object): void {
  const interceptors = (Reflect.getMetadata(INTERCEPTORS_METADATA, method) as unknown[] | undefined) ?? [];
  if (!interceptors.includes(CanaryInterceptor))
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [CanaryInterceptor, ...interceptors], method);
}
