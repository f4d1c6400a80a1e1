import type { DiscoveryService } from '@nestjs/core';

const SHUTDOWN_HOOKS = ['onModuleDestroy', 'beforeApplicationShutdown', 'onApplicationShutdown'] as const;
export type ShutdownHookName = (typeof SHUTDOWN_HOOKS)[number];

const WRAPPED = Symbol('nest-rollout:wrapped-hook');

/**
 * Nest stops its shutdown sequence at the first hook that throws, so the server would stay open
 * and later hooks (closing pools, deregistering) would never run. Each provider's and controller's
 * shutdown hook is wrapped so that its error goes to `onError` and the sequence goes on.
 *
 * Each wrapped hook also runs at most once: when the lifecycle closed the application itself
 * (no `attachLifecycle(app)`), a later `app.close()` must not close pools a second time.
 */
export function containShutdownHookErrors(
  discovery: DiscoveryService,
  skip: object,
  onError: (hook: ShutdownHookName, provider: string, error: unknown) => void,
): void {
  const wrappers = [...discovery.getProviders(), ...discovery.getControllers()];
  for (const wrapper of wrappers) {
    const instance = wrapper.instance as Record<string, unknown> | undefined;
    if (!instance || typeof instance !== 'object' || instance === skip) continue;
    for (const hook of SHUTDOWN_HOOKS) {
      const original = instance[hook];
      if (typeof original !== 'function' || (original as { [WRAPPED]?: boolean })[WRAPPED]) continue;
      const owner = String(wrapper.name ?? instance.constructor?.name ?? 'unknown');
      let ran = false;
      const wrapped = async (...args: unknown[]) => {
        if (ran) return;
        ran = true;
        try {
          await (original as (...a: unknown[]) => unknown).apply(instance, args);
        } catch (error) {
          onError(hook, owner, error);
        }
      };
      Object.defineProperty(wrapped, WRAPPED, { value: true });
      instance[hook] = wrapped;
    }
  }
}
