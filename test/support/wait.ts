/**
 * Polls `condition` until it holds and resolves with the time (epoch ms) at which it was seen to
 * hold; rejects naming `what` once `timeoutMs` has passed. For waiting on something that happens
 * elsewhere (another process, a registry, a socket) instead of sleeping for a guessed period.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
  everyMs = 25,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return Date.now();
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
