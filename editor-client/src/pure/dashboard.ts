// The dashboard's data: what the webview charts, built from perfd/stats notifications (live, over
// time) and from `perfd stats --history --json` (per day and per plan). Pure: no vscode, no DOM.
import type { StatsPayload } from './types';

/** A time series over the session: x in unix seconds, one y array per named series (null = no value). */
export interface Series {
  x: number[];
  ys: Record<string, (number | null)[]>;
}

/** One group of the call history (perfd's Summary), read defensively. */
export interface HistoryGroup {
  group: string | null;
  calls: number;
  cache_hits: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  tokens_saved: number;
  cost: number;
  cost_saved: number;
}

export interface HistoryData {
  by_day: HistoryGroup[];
  by_plan: HistoryGroup[];
}

/** Everything the webview draws, in one message. */
export interface DashboardData {
  latency: Series; // p50/p95 per command, milliseconds
  hitRate: Series; // the headline rate and each level's, 0..1
  model: Series; // model calls and cache hits so far
  rateWait: Series; // seconds spent waiting for rate-limit capacity so far
  history: HistoryData | undefined;
  samples: number;
}

export const MAX_SAMPLES = 600; // ten minutes at one notification a second: older points drop off
export const MAX_METHODS = 4; // the busiest commands get latency lines; more would be unreadable

function n(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Accumulates stats snapshots into series; one per dashboard panel. */
export class DashboardModel {
  private readonly times: number[] = [];
  private readonly snaps: StatsPayload[] = [];
  history: HistoryData | undefined;

  add(stats: StatsPayload, atMs: number): void {
    const t = atMs / 1000;
    // Notifications can come faster than the eye: keep at most one point per 250 ms.
    if (this.times.length && t - this.times[this.times.length - 1] < 0.25) {
      this.snaps[this.snaps.length - 1] = stats;
      return;
    }
    this.times.push(t);
    this.snaps.push(stats);
    if (this.times.length > MAX_SAMPLES) {
      this.times.shift();
      this.snaps.shift();
    }
  }

  setHistory(text: string): boolean {
    const h = parseHistory(text);
    if (h) this.history = h;
    return h !== undefined;
  }

  /** The busiest commands (most requests in the latest snapshot), by name. */
  methods(): string[] {
    const last = this.snaps[this.snaps.length - 1];
    const list = Array.isArray(last?.methods) ? last.methods : [];
    return list
      .filter((m) => m && typeof m.method === 'string' && (n(m.requests) ?? 0) > 0 && !m.method.startsWith('('))
      .sort((a, b) => (n(b.requests) ?? 0) - (n(a.requests) ?? 0))
      .slice(0, MAX_METHODS)
      .map((m) => m.method)
      .sort();
  }

  data(): DashboardData {
    const x = this.times.slice();
    const latency: Series = { x, ys: {} };
    for (const name of this.methods()) {
      latency.ys[`${name} p50`] = this.snaps.map((s) => n(s.latency?.[name]?.p50_ms));
      latency.ys[`${name} p95`] = this.snaps.map((s) => n(s.latency?.[name]?.p95_ms));
    }
    const hitRate: Series = { x, ys: { 'all levels': this.snaps.map((s) => n(s.hit_rate)) } };
    const levels = new Set<string>();
    for (const s of this.snaps) for (const lv of s.levels ?? []) levels.add(lv.name);
    for (const name of [...levels].sort()) {
      hitRate.ys[name] = this.snaps.map((s) => {
        const lv = (s.levels ?? []).find((l) => l.name === name);
        return lv && lv.hits + lv.misses > 0 ? lv.hit_rate : null;
      });
    }
    const model: Series = {
      x,
      ys: {
        'model calls': this.snaps.map((s) => n(s.llm?.calls) ?? 0),
        'from the cache': this.snaps.map((s) => n(s.llm?.cache_hits) ?? 0),
      },
    };
    const rateWait: Series = { x, ys: { 'rate-limit wait (s)': this.snaps.map((s) => n(s.llm?.rate_limit_wait_s) ?? 0) } };
    return { latency, hitRate, model, rateWait, history: this.history, samples: x.length };
  }
}

function group(v: unknown): HistoryGroup | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const g = v as Record<string, unknown>;
  const num = (k: string) => n(g[k]) ?? 0;
  return {
    group: typeof g.group === 'string' ? g.group : null,
    calls: num('calls'),
    cache_hits: num('cache_hits'),
    errors: num('errors'),
    prompt_tokens: num('prompt_tokens'),
    completion_tokens: num('completion_tokens'),
    tokens_saved: num('tokens_saved'),
    cost: num('cost'),
    cost_saved: num('cost_saved'),
  };
}

/** `perfd stats --history --json` as HistoryData (days oldest first), or undefined when it is not one. */
export function parseHistory(text: string): HistoryData | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.by_day) || !Array.isArray(o.by_plan)) return undefined;
  const list = (a: unknown[]) => a.map(group).filter((g): g is HistoryGroup => g !== undefined);
  const byDay = list(o.by_day).sort((a, b) => String(a.group).localeCompare(String(b.group)));
  return { by_day: byDay, by_plan: list(o.by_plan) };
}

/** The webview's Content-Security-Policy: nothing from the network, only our own script and styles. */
export function dashboardCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function dashboardHtml(opts: { cspSource: string; nonce: string; scriptUri: string; styleUri: string }): string {
  const { cspSource, nonce, scriptUri, styleUri } = opts;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${dashboardCsp(cspSource, nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${styleUri}">
<title>perfd Dashboard</title>
</head>
<body>
<main id="perfd-dashboard" data-charts="0" data-points="0">
<header><h1>perfd</h1><span id="perfd-updated">waiting for the first stats…</span></header>
<section class="grid" id="perfd-live"></section>
<h2>Model calls by day and by plan <small>(this workspace's call history)</small></h2>
<section class="grid" id="perfd-history"><p class="empty">No model calls recorded yet: <code>perfd run</code> records them.</p></section>
</main>
<script nonce="${nonce}" src="${scriptUri}"></script>
</body>
</html>
`;
}
