import type { INestApplication } from '@nestjs/common';

/*
 * `app.enableShutdownHooks()` and the lifecycle cannot both own the shutdown signals: Nest's handler
 * runs app.close() at once (no drain, no readiness flip) and then re-kills the process before the
 * logs are flushed. These two checks find Nest's handler so that the conflict fails at boot.
 */

/** Nest 12 keeps the handlers in `shutdownCleanupRefs`, Nest 11 the signal names in `activeShutdownSignals`. */
export function nestShutdownHooksEnabled(app: INestApplication): boolean {
  const context = app as unknown as { shutdownCleanupRefs?: Map<string, unknown>; activeShutdownSignals?: string[] };
  return (context.shutdownCleanupRefs?.size ?? 0) > 0 || (context.activeShutdownSignals?.length ?? 0) > 0;
}

/**
 * Without the application object: Nest 11 and 12 both install a process listener named `cleanup`
 * that ends by re-sending the signal (`process.kill(process.pid, signal)`) or calling `process.exit`.
 */
export function nestSignalHandlerInstalled(signals: readonly NodeJS.Signals[]): boolean {
  return signals.some((signal) =>
    process.listeners(signal).some((listener) => listener.name === 'cleanup' && /process\.(kill|exit)\(/.test(String(listener))),
  );
}
