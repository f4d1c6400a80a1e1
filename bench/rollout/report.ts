import { describePhase } from './canary';
import { describeExits, describeFailures, RunResult } from './scenarios';

/** One line per run, printed as it ends. */
export function formatRunLine(r: RunResult): string {
  const o = r.options;
  const marks = r.stopped
    .map((s) => {
      const since = (t: number | undefined) => (t === undefined ? '-' : `+${t - s.signalledAt}`);
      return `${s.slot}: ready 503 ${since(s.readinessFailedAt)}, out ${since(s.balancerOutAt)}, exit ${s.exit ? since(s.exit.at) : 'never'} ms`;
    })
    .join('; ');
  return (
    `${o.scenario} ${o.balancer} ${o.load.keepAlive ? 'keep-alive' : 'close'} ${o.app}/${o.adapter}: ` +
    `${r.failed}/${r.sent} failed (${describeFailures(r.failures)})${r.failed > 0 ? ` over ${r.lossSpanMs} ms` : ''}, ` +
    `p50/p99 in the switch ${r.p50Ms}/${r.p99Ms} ms; ${marks}` +
    (r.canary ? `\n  quotes by phase: ${r.canary.map(describePhase).join('; ')}` : '')
  );
}

/**
 * The canary runs: per phase of the rules, the share of `GET /orders/1/quote` the canary answered
 * (pricing v2), next to the share flagd's cohort gives the very users who sent those requests; then
 * the quotes answered by the other variant than their user's cohort, and the users who saw both.
 */
export function formatCanaryTable(results: readonly RunResult[]): string {
  const runs = results.filter((r) => r.canary !== undefined);
  if (runs.length === 0) return '';
  const phases = runs[0].canary!.map((p) => p.name);
  const header = [
    'balancer',
    'client',
    'adapter',
    ...phases.map((p) => `${p}: canary share of quotes (cohort)`),
    'quotes off their cohort',
    'users on both variants in a phase',
  ];
  const pct = (n: number, of: number) => (of === 0 ? '-' : `${((100 * n) / of).toFixed(1)} %`);
  const rows = runs.map((r) => [
    r.options.balancer,
    r.options.load.keepAlive ? 'keep-alive' : 'close',
    r.options.adapter,
    ...r.canary!.map((p) => `${pct(p.canary, p.quotes)} of ${p.quotes} (${pct(p.expectedCanary, p.quotes)})`),
    String(r.canary!.reduce((n, p) => n + p.mismatched, 0)),
    String(r.canary!.reduce((n, p) => n + p.usersOnBoth, 0)),
  ]);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The markdown table: one row per run. */
export function formatTable(results: readonly RunResult[]): string {
  const header = [
    'scenario',
    'balancer',
    'client',
    'app',
    'adapter',
    'requests',
    'failed',
    'failures by kind',
    'loss span ms',
    'p50 / p99 ms',
    'exit s after SIGTERM',
  ];
  const rows = results.map((r) => [
    r.options.scenario,
    r.options.balancer,
    r.options.load.keepAlive ? 'keep-alive' : 'close',
    r.options.app,
    r.options.adapter,
    String(r.sent),
    String(r.failed),
    describeFailures(r.failures),
    r.failed > 0 ? String(r.lossSpanMs) : '-',
    `${r.p50Ms} / ${r.p99Ms}`,
    r.options.scenario === 'kill-9' ? '(killed)' : describeExits(r),
  ]);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * The matrix at a glance: one row per release, balancer and client, one column per app, each cell
 * the requests that failed (those reset at an nginx reload in brackets), then the slowest exit
 * after SIGTERM (`never`: still running at the bound, then killed). The sample's column comes first; a run that did not happen is `-`.
 */
export function formatSummary(results: readonly RunResult[]): string {
  const key = (r: RunResult) => `${r.options.scenario}|${r.options.balancer}|${r.options.load.keepAlive ? 'keep-alive' : 'close'}`;
  const apps = [...new Set(results.map((r) => `${r.options.app}/${r.options.adapter}`))];
  const rows = [...new Set(results.map(key))];
  const header = [
    'release',
    'balancer',
    'client',
    ...apps.map((a) => (a.startsWith('nest-rollout/') ? `**the sample**/${a.split('/')[1]}` : a)),
  ];
  const cell = (r: RunResult | undefined): string => {
    if (r === undefined) return '-';
    // Resets at an nginx reload hit every app alike (see "Counting"): shown apart.
    const lost = r.failed - r.failures.resetAtReload;
    const failed =
      (r.options.app === 'nest-rollout' ? `**${lost}**` : String(lost)) +
      (r.failures.resetAtReload > 0 ? ` (+${r.failures.resetAtReload} at reloads)` : '');
    if (r.options.scenario === 'kill-9') return failed;
    const exits = r.stopped.map((s) => (s.exit ? s.exit.at - s.signalledAt : undefined));
    const slowest = exits.includes(undefined) ? 'never' : `${(Math.max(...(exits as number[])) / 1000).toFixed(1)} s`;
    return `${failed} · ${slowest}`;
  };
  const body = rows.map((row) => [
    ...row.split('|'),
    ...apps.map((app) => cell(results.find((r) => key(r) === row && `${r.options.app}/${r.options.adapter}` === app))),
  ]);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...body.map(line)].join('\n');
}
