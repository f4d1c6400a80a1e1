import { ServiceUnavailableException, type CallHandler, type ExecutionContext } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { DynamicConfigService } from '@nest-rollout/config';
import { lastValueFrom, of } from 'rxjs';
import type { SampleDynamicConfig } from '../sample.dynamic-config';
import { Degradable, DegradeInterceptor } from './degrade.interceptor';

class Routes {
  @Degradable('orders_list')
  list(): void {}

  get(): void {}
}

function setup(degrade: SampleDynamicConfig['degrade']) {
  const config = { get: jest.fn(() => degrade) } as unknown as DynamicConfigService<SampleDynamicConfig>;
  const headers: Record<string, string> = {};
  const adapterHost = {
    httpAdapter: { setHeader: (_res: unknown, name: string, value: string) => (headers[name] = value) },
  } as HttpAdapterHost;
  const interceptor = new DegradeInterceptor(new Reflector(), config, adapterHost);
  const call = (handler: keyof Routes) => {
    const context = {
      getHandler: () => Routes.prototype[handler],
      switchToHttp: () => ({ getResponse: () => ({}) }),
    } as unknown as ExecutionContext;
    const next: CallHandler = { handle: jest.fn(() => of('served')) };
    return { result: () => lastValueFrom(interceptor.intercept(context, next)), next };
  };
  return { call, headers, config };
}

describe('DegradeInterceptor', () => {
  it('runs the handler while the switch is off', async () => {
    const { call, headers } = setup({ orders_list: false, retry_after_seconds: 30 });
    await expect(call('list').result()).resolves.toBe('served');
    expect(headers).toEqual({});
  });

  it('answers 503 with Retry-After from the configuration while the switch is on, without running the handler', () => {
    const { call, headers } = setup({ orders_list: true, retry_after_seconds: 12 });
    const { result, next } = call('list');
    expect(result).toThrow(ServiceUnavailableException);
    expect(headers).toEqual({ 'Retry-After': '12' });
    expect(next.handle).not.toHaveBeenCalled();
  });

  it('leaves routes tied to no switch alone, without reading the configuration', async () => {
    const { call, config } = setup({ orders_list: true, retry_after_seconds: 30 });
    await expect(call('get').result()).resolves.toBe('served');
    expect(config.get).not.toHaveBeenCalled();
  });
});
