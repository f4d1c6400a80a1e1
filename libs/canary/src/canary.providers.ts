import type { ModuleRef } from '@nestjs/core';

/**
 * An optional provider the application declares for the canary module (`CANARY_FORWARDER`,
 * `CANARY_RULES_SOURCE`), looked up in every module rather than only in the canary module's scope:
 * a provider in the application's own module, exported or not, is found. Undefined when there is
 * none. Call it once every provider exists (from `configure` or `onModuleInit` on).
 */
export function optionalProvider<T>(moduleRef: ModuleRef, token: string): T | undefined {
  try {
    return moduleRef.get<T>(token, { strict: false }) ?? undefined;
  } catch {
    return undefined;
  }
}
