// The dashboard webview: charts (uPlot, bundled) of what the extension posts: live series from the
// perfd/stats notifications and the call history by day and by plan. No network (the panel's CSP).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './dashboard.css';
import type { DashboardData, HistoryGroup, Series } from '../pure/dashboard';

interface VsCodeApi {
  postMessage(msg: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
const root = document.getElementById('perfd-dashboard') as HTMLElement;
const live = document.getElementById('perfd-live') as HTMLElement;
const hist = document.getElementById('perfd-history') as HTMLElement;
const updated = document.getElementById('perfd-updated') as HTMLElement;
const charts = new Map<string, { plot: uPlot; keys: string }>();
let last: DashboardData | undefined;

/** The theme's colours, read from VS Code's CSS variables (they change with the theme). */
function palette(): { fg: string; grid: string; series: string[] } {
  const css = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    fg: v('--vscode-foreground', '#888'),
    grid: v('--vscode-editorWidget-border', v('--vscode-panel-border', 'rgba(128,128,128,0.3)')),
    series: ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple',
      '--vscode-charts-red', '--vscode-charts-yellow', '--vscode-charts-foreground', '--vscode-terminal-ansiCyan']
      .map((name, i) => v(name, ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700', '#ccc', '#29b8db'][i])),
  };
}

function card(parent: HTMLElement, id: string, title: string, note = ''): HTMLElement {
  let el = document.getElementById(id);
  if (!el) {
    el = document.createElement('div');
    el.id = id;
    el.className = 'chart';
    const h = document.createElement('h3');
    h.textContent = title;
    el.appendChild(h);
    const body = document.createElement('div');
    body.className = 'plot';
    el.appendChild(body);
    const p = document.createElement('p');
    p.className = 'note';
    el.appendChild(p);
    parent.appendChild(el);
  }
  (el.querySelector('.note') as HTMLElement).textContent = note;
  return el.querySelector('.plot') as HTMLElement;
}

function width(el: HTMLElement): number {
  return Math.max(200, (el.parentElement?.clientWidth ?? 440) - 18);
}

type Kind = 'time' | 'bars';

/** Draw (or update) one chart; `labels` name the x positions of a bar chart. */
function draw(id: string, parent: HTMLElement, title: string, kind: Kind, x: number[],
  ys: Record<string, (number | null)[]>, fmt: (v: number) => string, opts: { labels?: string[]; note?: string; scale?: [number, number] } = {}): void {
  const el = card(parent, id, title, opts.note);
  const names = Object.keys(ys);
  const points = x.length * names.length;
  el.dataset.points = String(x.length ? points : 0);
  const keys = `${kind}|${names.join('|')}|${document.body.className}`;
  const data = [x, ...names.map((k) => ys[k])] as uPlot.AlignedData;
  const existing = charts.get(id);
  if (existing && existing.keys === keys) {
    existing.plot.setData(data);
    return;
  }
  existing?.plot.destroy();
  const p = palette();
  const axis = { stroke: p.fg, grid: { stroke: p.grid, width: 1 }, ticks: { stroke: p.grid, width: 1 } };
  // Bars of each series side by side around their x (grouped), not drawn over each other.
  const barPaths = (i: number) => uPlot.paths.bars?.({
    size: [names.length > 1 ? 0.4 : 0.6, 48], align: names.length > 1 ? (i === 0 ? -1 : 1) : 0 });
  const labels = opts.labels ?? [];
  const ticks = x.map((_, i) => i);
  const plot = new uPlot({
    width: width(el),
    height: 220,
    scales: { x: kind === 'bars' ? { time: false, range: () => [-0.6, Math.max(0, x.length - 1) + 0.6] } : { time: true }, y: opts.scale ? { range: opts.scale } : { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
    axes: [
      kind === 'bars' ? { ...axis, splits: () => ticks, values: (_u, splits) => splits.map((s) => labels[s] ?? '') } : axis,
      { ...axis, values: (_u, splits) => splits.map(fmt), size: 72 },
    ],
    series: [
      kind === 'bars' ? { value: (_u, v) => (v == null ? '' : labels[Math.round(v)] ?? '') } : {},
      ...names.map((label, i) => ({
        label,
        stroke: p.series[i % p.series.length],
        fill: kind === 'bars' ? p.series[i % p.series.length] + '99' : undefined,
        width: 2,
        paths: kind === 'bars' ? barPaths(i) : undefined,
        points: { show: kind === 'time' && x.length < 3 },
        value: (_u: uPlot, v: number | null) => (v == null ? '–' : fmt(v)),
        spanGaps: false,
      })),
    ],
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  }, data, el);
  charts.set(id, { plot, keys });
}

const ms = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : v >= 10 ? `${Math.round(v)} ms` : `${v.toFixed(2)} ms`);
const pct = (v: number) => `${Math.round(v * 100)}%`;
// Counts are whole: a split between two whole numbers (a small range) gets no label.
const count = (v: number) => (!Number.isInteger(v) ? '' : Math.abs(v) >= 10000 ? `${Math.round(v / 1000)}k` : String(v));
const money = (v: number) => v.toFixed(v && Math.abs(v) < 0.01 ? 4 : 2);
const secs = (v: number) => `${v.toFixed(1)} s`;

function liveCharts(d: DashboardData): void {
  const s = (series: Series) => series.ys;
  draw('chart-latency', live, 'Request latency (p50 / p95) by command', 'time', d.latency.x, s(d.latency), ms,
    { note: Object.keys(d.latency.ys).length ? '' : 'no requests yet' });
  draw('chart-hit-rate', live, 'Cache hit rate', 'time', d.hitRate.x, s(d.hitRate), pct,
    { scale: [0, 1], note: 'all levels: hits over lookups of answers, files and model responses' });
  draw('chart-model', live, 'Model calls', 'time', d.model.x, s(d.model), count, { note: 'since the daemon started' });
  draw('chart-rate-wait', live, 'Rate-limit waits', 'time', d.rateWait.x, s(d.rateWait), secs,
    { note: 'time callers waited for rpm/tpm capacity' });
}

function historyCharts(groups: { by_day: HistoryGroup[]; by_plan: HistoryGroup[] }): void {
  if (!groups.by_day.length && !groups.by_plan.length) return;
  hist.querySelector('.empty')?.remove();
  const days = groups.by_day;
  const dayLabels = days.map((g) => (g.group ?? '').slice(5)); // MM-DD
  const idx = (a: unknown[]) => a.map((_, i) => i);
  const tokens = (g: HistoryGroup) => g.prompt_tokens + g.completion_tokens;
  draw('chart-day-tokens', hist, 'Tokens per day', 'bars', idx(days),
    { paid: days.map(tokens), 'saved by the cache': days.map((g) => g.tokens_saved) }, count, { labels: dayLabels });
  draw('chart-day-cost', hist, 'Cost per day', 'bars', idx(days),
    { paid: days.map((g) => g.cost), 'saved by the cache': days.map((g) => g.cost_saved) }, money,
    { labels: dayLabels, note: 'at the prices in [llm] (0 when none are set)' });
  draw('chart-day-calls', hist, 'Model calls and cache hits per day', 'bars', idx(days),
    { calls: days.map((g) => g.calls), 'cache hits': days.map((g) => g.cache_hits) }, count, { labels: dayLabels });
  const plans = groups.by_plan.slice(0, 12);
  const planLabels = plans.map((g) => g.group ?? '(none)');
  draw('chart-plan-tokens', hist, 'Tokens per plan', 'bars', idx(plans),
    { paid: plans.map(tokens), 'saved by the cache': plans.map((g) => g.tokens_saved) }, count, { labels: planLabels });
  draw('chart-plan-cost', hist, 'Cost per plan', 'bars', idx(plans),
    { paid: plans.map((g) => g.cost), 'saved by the cache': plans.map((g) => g.cost_saved) }, money, { labels: planLabels });
}

function render(d: DashboardData): void {
  last = d;
  liveCharts(d);
  if (d.history) historyCharts(d.history);
  const all = [...document.querySelectorAll<HTMLElement>('.chart .plot')];
  root.dataset.charts = String(all.filter((el) => el.querySelector('canvas')).length);
  root.dataset.points = String(all.reduce((sum, el) => sum + Number(el.dataset.points ?? 0), 0));
  updated.textContent = d.samples ? `live · ${d.samples} samples · updated ${new Date().toLocaleTimeString()}` : 'waiting for the first stats…';
}

window.addEventListener('message', (e: MessageEvent) => {
  const msg = e.data as { type?: string; data?: DashboardData };
  if (msg?.type === 'data' && msg.data) render(msg.data);
});

// A theme change recolours every chart: they are rebuilt from the last data.
new MutationObserver(() => last && render(last)).observe(document.body, { attributes: true, attributeFilter: ['class'] });
window.addEventListener('resize', () => {
  for (const { plot } of charts.values()) plot.setSize({ width: width(plot.root.parentElement as HTMLElement), height: 220 });
});
vscode.postMessage({ type: 'ready' });
