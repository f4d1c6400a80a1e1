import { spawnSync } from 'node:child_process';

export interface PromtoolResult {
  readonly status: number | null;
  readonly output: string;
}

/** `promtool check metrics` with the exposition on stdin, as the Prometheus docs run it. */
export function promtoolCheckMetrics(exposition: string): PromtoolResult {
  const result = spawnSync(process.env.PROMTOOL ?? 'promtool', ['check', 'metrics'], {
    input: exposition,
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}
