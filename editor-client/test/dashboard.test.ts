import { describe, expect, it } from 'vitest';
import { DashboardModel, dashboardCsp, dashboardHtml, MAX_SAMPLES, parseHistory } from '../src/pure/dashboard';
import { historyCommand, readSettings } from '../src/pure/settings';
import type { StatsPayload } from '../src/pure/types';

function snap(i: number): StatsPayload {
  return {
    hit_rate: i / 10,
    levels: [{ name: 'answers', hits: i, misses: 1, hit_rate: i / (i + 1) }],
    methods: [
      { method: 'generate', requests: 10 + i, errors: 0, latency: { count: 1, errors: 0, p50_ms: 1, p95_ms: 2, p99_ms: 3, max_ms: 4 } },
      { method: '(invalid)', requests: 99, errors: 99, latency: { count: 1, errors: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0, max_ms: 0 } },
    ],
    latency: { generate: { p50_ms: i, p95_ms: 2 * i } },
    llm: { calls: i, cache_hits: 1, rate_limit_wait_s: 0.5 * i } as StatsPayload['llm'],
  };
}

describe('dashboard model', () => {
  it('turns perfd/stats notifications into time series per command and per cache level', () => {
    const m = new DashboardModel();
    for (let i = 0; i < 3; i++) m.add(snap(i), 1000 * i);
    const d = m.data();
    expect(d.samples).toBe(3);
    expect(d.latency.x).toEqual([0, 1, 2]);
    expect(Object.keys(d.latency.ys)).toEqual(['generate p50', 'generate p95']); // not the "(invalid)" bucket
    expect(d.latency.ys['generate p95']).toEqual([0, 2, 4]);
    expect(d.hitRate.ys['all levels']).toEqual([0, 0.1, 0.2]);
    expect(d.hitRate.ys.answers).toEqual([0, 0.5, 2 / 3]);
    expect(d.model.ys['model calls']).toEqual([0, 1, 2]);
    expect(d.rateWait.ys['rate-limit wait (s)']).toEqual([0, 0.5, 1]);
  });

  it('keeps one point per quarter second and a bounded window', () => {
    const m = new DashboardModel();
    m.add(snap(1), 0);
    m.add(snap(2), 100); // replaces the last point
    expect(m.data().samples).toBe(1);
    expect(m.data().hitRate.ys['all levels']).toEqual([0.2]);
    for (let i = 1; i <= MAX_SAMPLES + 10; i++) m.add(snap(1), 1000 * i);
    expect(m.data().samples).toBe(MAX_SAMPLES);
  });

  it('reads the call history JSON, days oldest first, and refuses anything else', () => {
    const h = parseHistory(JSON.stringify({
      by_day: [{ group: '2026-11-29', calls: 2, cost: 0.5 }, { group: '2026-11-27', calls: 1, tokens_saved: 9 }],
      by_plan: [{ group: 'API', calls: 3, prompt_tokens: 10, completion_tokens: 5 }],
    }));
    expect(h?.by_day.map((g) => g.group)).toEqual(['2026-11-27', '2026-11-29']);
    expect(h?.by_day[0].tokens_saved).toBe(9);
    expect((h?.by_plan[0]?.prompt_tokens ?? 0) + (h?.by_plan[0]?.completion_tokens ?? 0)).toBe(15);
    expect(parseHistory('not json')).toBeUndefined();
    expect(parseHistory('{"path": "x"}')).toBeUndefined();
    const m = new DashboardModel();
    expect(m.setHistory('[]')).toBe(false);
    expect(m.setHistory('{"by_day": [], "by_plan": []}')).toBe(true);
  });
});

describe('dashboard page', () => {
  it('allows no network: only its own nonce-tagged script and the webview\'s own styles', () => {
    const csp = dashboardCsp('vscode-resource:', 'abc');
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'nonce-abc'");
    expect(csp).not.toMatch(/https?:|unsafe-eval|connect-src/);
    const html = dashboardHtml({ cspSource: 'vscode-resource:', nonce: 'abc', scriptUri: 'vscode-resource:/d/dashboard.js', styleUri: 'vscode-resource:/d/dashboard.css' });
    expect(html).toContain('<script nonce="abc" src="vscode-resource:/d/dashboard.js"></script>');
    expect(html).toContain(`content="${csp}"`);
    expect(html).not.toMatch(/<script(?![^>]*nonce="abc")/);
  });

  it('reads the history with perfd itself, keeping only --root of the extra arguments', () => {
    const s = readSettings((k) => ({ path: '/bin/perfd', args: ['--standalone', '--root', '/ws'] })[k], {});
    expect(historyCommand(s)).toEqual({ command: '/bin/perfd', args: ['stats', '--history', '--json', '--root', '/ws'] });
    const py = readSettings((k) => ({ path: '/venv/bin/python3' })[k], {});
    expect(historyCommand(py)).toEqual({ command: '/venv/bin/python3', args: ['-m', 'perfd', 'stats', '--history', '--json'] });
  });
});
