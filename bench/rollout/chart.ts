import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isOk } from '../../test/support/load';
import { RunResult } from './scenarios';

const BUCKET_MS = 100;
const SHARE_BUCKET_MS = 500;

// vega and vega-lite ship as ES modules only; this CommonJS build loads them with a real import().
const importEsm = new Function('specifier', 'return import(specifier)') as <T>(specifier: string) => Promise<T>;

interface VegaLite {
  compile(spec: unknown): { spec: unknown };
}
interface Vega {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
}

/**
 * One SVG per scenario × balancer × client mode × adapter: answered and failed requests per 100 ms
 * through the release, one line per app, with the sample's markers (SIGTERM, readiness 503, the
 * balancer taking the instance out, exit) as rules. Returns the files written.
 */
export async function renderCharts(results: readonly RunResult[], folder: string): Promise<string[]> {
  const vl = await importEsm<VegaLite>('vega-lite');
  const vega = await importEsm<Vega>('vega');
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const o = r.options;
    const key = `${o.scenario}-${o.balancer}-${o.load.keepAlive ? 'keep-alive' : 'close'}-${o.adapter}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const written: string[] = [];
  for (const [key, runs] of groups) {
    const svg = await renderSvg(vl, vega, chartSpec(key, runs));
    const file = join(folder, `${key}.svg`);
    writeFileSync(file, svg);
    written.push(file);
  }
  return written;
}

export function chartSpec(title: string, runs: readonly RunResult[]): unknown {
  const series: { app: string; t: number; answered: number; failed: number }[] = [];
  // The canary runs: who answered the quote route, per 500 ms (per 100 ms there are too few quotes for a share).
  const shares: { app: string; t: number; share: number }[] = [];
  const marks: { app: string; t: number; kind: string; label: string }[] = [];
  for (const run of runs) {
    const buckets = new Map<number, { answered: number; failed: number }>();
    for (const r of run.records) {
      const b = Math.floor((r.startedAt - run.startedAt) / BUCKET_MS);
      const cell = buckets.get(b) ?? { answered: 0, failed: 0 };
      if (isOk(r)) cell.answered += 1;
      else cell.failed += 1;
      buckets.set(b, cell);
    }
    const last = Math.max(0, ...buckets.keys());
    for (let b = 0; b <= last; b += 1) {
      const cell = buckets.get(b) ?? { answered: 0, failed: 0 };
      series.push({ app: run.options.app, t: (b * BUCKET_MS) / 1000, ...cell });
    }
    if (run.canary) {
      const quotes = new Map<number, { v2: number; all: number }>();
      for (const r of run.records) {
        if (r.label === undefined || !isOk(r)) continue;
        const b = Math.floor((r.startedAt - run.startedAt) / SHARE_BUCKET_MS);
        const cell = quotes.get(b) ?? { v2: 0, all: 0 };
        cell.all += 1;
        if (r.label === 'v2') cell.v2 += 1;
        quotes.set(b, cell);
      }
      for (const [b, cell] of [...quotes].sort(([a], [c]) => a - c)) {
        shares.push({ app: run.options.app, t: (b * SHARE_BUCKET_MS) / 1000, share: (100 * cell.v2) / cell.all });
      }
    }
    for (const m of run.markers) {
      marks.push({
        app: run.options.app,
        t: (m.at - run.startedAt) / 1000,
        kind: m.kind,
        label: run.options.app === 'nest-rollout' ? `${m.kind} ${m.slot}` : '',
      });
    }
  }
  const x = { field: 't', type: 'quantitative', title: 'seconds since the load began' };
  const color = { field: 'app', type: 'nominal', title: 'app' };
  const rules = {
    data: { values: marks },
    mark: { type: 'rule', strokeDash: [3, 3], opacity: 0.6 },
    encoding: { x, color },
  };
  const panel = (field: string, title: string) => ({
    width: 760,
    height: 170,
    layer: [
      {
        data: { values: series },
        mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
        encoding: { x, y: { field, type: 'quantitative', title }, color },
      },
      rules,
    ],
  });
  const sharePanel = {
    width: 760,
    height: 120,
    layer: [
      {
        data: { values: shares },
        mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
        encoding: {
          x,
          y: { field: 'share', type: 'quantitative', title: '% of quotes by the canary', scale: { domain: [0, 100] } },
          color,
        },
      },
      rules,
      {
        data: { values: marks.filter((m) => m.kind === 'rules' && m.label !== '') },
        mark: { type: 'text', angle: 270, align: 'right', baseline: 'bottom', fontSize: 8, dy: -2 },
        encoding: { x, y: { value: 4 }, text: { field: 'label' } },
      },
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: title,
      subtitle: 'dashed rules: SIGTERM / SIGKILL, readiness 503, balancer out, exit, switch, canary rules written (labels: the sample)',
    },
    vconcat: [
      ...(shares.length > 0 ? [sharePanel] : []),
      panel('answered', 'answered per 100 ms'),
      {
        width: 760,
        height: 170,
        layer: [
          {
            data: { values: series },
            mark: { type: 'line', interpolate: 'step-after', strokeWidth: 1.2 },
            encoding: { x, y: { field: 'failed', type: 'quantitative', title: 'failed per 100 ms' }, color },
          },
          rules,
          {
            data: { values: marks.filter((m) => m.label !== '') },
            mark: { type: 'text', angle: 270, align: 'left', baseline: 'bottom', fontSize: 8, dy: -2 },
            encoding: { x, y: { value: 165 }, text: { field: 'label' } },
          },
        ],
      },
    ],
  };
}

async function renderSvg(vl: VegaLite, vega: Vega, spec: unknown): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
