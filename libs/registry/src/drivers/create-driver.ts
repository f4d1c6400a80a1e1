import type { LifecycleClock } from '@nest-rollout/lifecycle';
import { RegistryDriverMissingError } from '../registry.errors';
import type { ResolvedRegistryOptions } from '../registry.options';
import { ConsulClientConstructor, ConsulDriver } from './consul.driver';
import { EtcdClientConstructor, EtcdDriver } from './etcd.driver';
import { NoneDriver } from './none.driver';
import type { RegistryDriver } from './registry.driver';

/**
 * Builds the configured driver. `consul` and `etcd3` are optional peer dependencies, loaded here
 * and only for the driver in use: an etcd user does not install Consul's client, and the other way
 * round. A missing package fails the boot with the command that fixes it.
 */
export function createRegistryDriver(options: ResolvedRegistryOptions, clock: LifecycleClock): RegistryDriver {
  switch (options.driver) {
    case 'consul':
      return new ConsulDriver(
        options,
        clock,
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when this driver is chosen
        loadOptional('consul', '^2.0.0', () => require('consul') as ConsulClientConstructor),
      );
    case 'etcd':
      return new EtcdDriver(
        options,
        clock,
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only when this driver is chosen
        loadOptional('etcd3', '^1.1.0', () => (require('etcd3') as { Etcd3: EtcdClientConstructor }).Etcd3),
      );
    default:
      return new NoneDriver();
  }
}

function loadOptional<T>(packageName: string, range: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e?.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${packageName}'`)) {
      throw new RegistryDriverMissingError(packageName === 'etcd3' ? 'etcd' : packageName, packageName, range);
    }
    throw error;
  }
}
