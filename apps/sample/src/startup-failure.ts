/**
 * The plain half of a failed start-up, next to its JSON line: one message on standard error for
 * whoever reads a terminal or `kubectl logs --previous`, without JSON or a stack to dig through.
 */
export function writeStartupFailure(message: string): void {
  process.stderr.write(`Start-up failed: ${message}\n`);
}
