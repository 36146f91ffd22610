import { describe, expect, it } from 'vitest';
import {
  achievementMessage,
  achievementPickItems,
  errorMessage,
  formatDuration,
  formatMs,
  generatedMessage,
  headlineLatencyMs,
  parseStatsJson,
  planPickItems,
  planStatusMarkdown,
  promptDocName,
  stateLabel,
  statsLines,
  statsMarkdown,
  statusBarModel,
  workspaceStatusMarkdown,
} from '../src/pure/format';
import type { GenerateResult, PlanStatus, StatsPayload } from '../src/pure/types';

const stats: StatsPayload = {
  cache: { entries: 42, hits: 94, misses: 6, hit_rate: 0.94, evictions: 1, expirations: 2, lookup_p50_us: 300, lookup_p99_us: 1500 },
  uptime_s: 125,
};

describe('status bar', () => {
  it('shows the headline hit rate over every cache level, not the file cache alone', () => {
    // A warm daemon: answers from the memo, no file lookup hits at all.
    const warm: StatsPayload = {
      ...stats,
      cache: { ...stats.cache, hits: 0, misses: 33, hit_rate: 0 },
      hit_rate: 15 / 51,
      levels: [
        { name: 'answers', hits: 15, misses: 3, hit_rate: 15 / 18 },
        { name: 'files', hits: 0, misses: 33, hit_rate: 0 },
      ],
    };
    expect(statusBarModel('running', warm).text).toBe('perfd 29% · 0.3 ms');
    const lines = statsLines(warm).join('\n');
    expect(lines).toContain('- cache hit rate: 29% over every level (answers 15/18, files 0/33)');
    expect(lines).toContain('- file cache hit rate: 0% (0 hits, 33 misses)');
  });

  it('shows a plan\'s single parallel option', () => {
    const md = workspaceStatusMarkdown({
      root: '/r',
      plans: [{ plan: 'API', path: '/r/PLAN_API.md', title: 'Api', state: 'no_subplan', next: '2.1', done: 1, total: 4, source: 'review files', parallel_options: ['2.2'] }],
      problems: [],
    });
    expect(md).toContain('| @API | Api | 📄 no SUBPLAN yet | 2.1 | 1/4 | parallel: 2.2 |');
  });

  it('shows hit rate and cache lookup p50 without a latency key', () => {
    const m = statusBarModel('running', stats);
    expect(m.text).toBe('perfd 94% · 0.3 ms');
    expect(m.warning).toBe(false);
    expect(m.tooltip).toContain('42');
    expect(m.tooltip).toContain('94 hits, 6 misses');
    expect(m.tooltip).toContain('p50 300 µs');
    expect(m.tooltip).toContain('uptime: 2m 5s');
    expect(m.tooltip).toContain('Click for perfd stats');
  });

  it('says which folders the watcher could not watch, and the limit to raise', () => {
    const watcher = {
      backend: 'inotify', synced: true, watched: 8, max_user_watches: 8, watches_needed: 3,
      unwatched: [{ path: 'work-space/plans/B', reason: 'the inotify watch limit is reached' }],
    };
    const m = statusBarModel('running', { ...stats, watcher } as StatsPayload);
    expect(m.text).toBe('perfd 94% · 0.3 ms $(eye-closed) unwatched');
    expect(m.tooltip).toContain('not watched: work-space/plans/B (the inotify watch limit is reached): checked by stat');
    expect(m.tooltip).toContain('raise fs.inotify.max_user_watches from 8 to at least 11');
    const hostile = { ...watcher, unwatched: [{ path: 'plans/[x](https:evil.example)<b>', reason: '*r*' }] };
    const tip = statusBarModel('running', { ...stats, watcher: hostile } as StatsPayload).tooltip;
    expect(tip).toContain('plans/\\[x\\]\\(https:evil.example\\)\\<b\\>');
    expect(tip).toContain('(\\*r\\*)');
    const healthy = statusBarModel('running', { ...stats, watcher: { ...watcher, unwatched: [] } } as StatsPayload);
    expect(healthy.text).toBe('perfd 94% · 0.3 ms');
  });

  it('warns when the team\'s Redis is down', () => {
    const team = { redis: 'redis://cache:6379/0', state: 'down', fail: 'open' };
    const s = { ...stats, llm: { team } } as unknown as StatsPayload;
    const m = statusBarModel('running', s);
    expect(m.text).toBe('perfd 94% · 0.3 ms $(warning) Redis down');
    expect(m.warning).toBe(true);
    expect(m.tooltip).toContain('running on local limits and cache');
    const closed = { ...stats, llm: { team: { ...team, fail: 'closed' } } } as unknown as StatsPayload;
    expect(statusBarModel('running', closed).tooltip).toContain('model calls are refused');
    const up = { ...stats, llm: { team: { ...team, state: 'up' } } } as unknown as StatsPayload;
    expect(statusBarModel('running', up).warning).toBe(false);
  });

  it('prefers latency.generate.p50_ms when present', () => {
    const s = { ...stats, latency: { generate: { p50_ms: 1.234, p95_ms: 3, p99_ms: 12.6 }, codeLens: { p50_ms: 0.05 } } };
    expect(statusBarModel('running', s).text).toBe('perfd 94% · 1.2 ms');
    expect(headlineLatencyMs(s)).toEqual({ ms: 1.234, what: 'generate p50' });
    const tip = statusBarModel('running', s).tooltip;
    expect(tip).toContain('- generate: p50 1.2 ms · p95 3.0 ms · p99 13 ms');
    expect(tip).toContain('- codeLens: p50 0.05 ms');
  });

  it('falls back to the cache when latency has no generate entry, and accepts perfd.generate', () => {
    expect(headlineLatencyMs({ ...stats, latency: { hover: { p50_ms: 9 } } })?.what).toBe('cache lookup p50');
    expect(headlineLatencyMs({ latency: { 'perfd.generate': { p50_ms: 2 } } })?.ms).toBe(2);
    expect(headlineLatencyMs({ latency: null as never })).toBeUndefined();
  });

  it('shows a dash before any lookup and copes with an empty payload', () => {
    const s = { cache: { entries: 0, hits: 0, misses: 0, hit_rate: 0, lookup_p50_us: 0 } };
    expect(statusBarModel('running', s).text).toBe('perfd –% · 0.00 ms');
    expect(statusBarModel('running', {}).text).toBe('perfd –%');
  });

  it('shows the daemon counters beside the spinner while the session starts, not once it stopped', () => {
    const m = statusBarModel('starting', stats);
    expect(m.text).toBe('perfd 94% · 0.3 ms $(sync~spin)');
    expect(m.tooltip).toContain('language server: starting');
    expect(m.tooltip).toContain('94 hits, 6 misses');
    expect(statusBarModel('starting').text).toBe('perfd $(sync~spin)');
    expect(statusBarModel('stopped', stats).tooltip).not.toContain('94 hits');
  });

  it.each([
    ['idle', 'perfd', false],
    ['stopped', 'perfd $(debug-disconnect) stopped', true],
    ['missing', 'perfd $(warning) not found', true],
    ['failed', 'perfd $(error) failed', true],
  ] as const)('state %s', (state, text, warning) => {
    const m = statusBarModel(state, stats, 'detail here');
    expect(m.text).toBe(text);
    expect(m.warning).toBe(warning);
    expect(m.tooltip).toContain('detail here');
    expect(m.tooltip).toContain(warning ? 'Click to restart' : 'Click for perfd stats');
  });

  it('reads what `perfd stats --json` prints, with latency by method from the methods list', () => {
    const snap = {
      version: '0.1.0', pid: 7, root: '/ws', uptime_s: 0.2,
      cache: { entries: 3, capacity: 4096, hits: 9, misses: 1, hit_rate: 0.9, lookup_p50_us: 4.5, lookup_p99_us: 20 },
      methods: [
        { method: 'generate', requests: 4, errors: 0, latency: { count: 4, errors: 0, p50_ms: 0.25, p95_ms: 1, p99_ms: 1, max_ms: 1 } },
        { method: 'cli', requests: 1, errors: 0, latency: { count: 1, errors: 0, p50_ms: 3, p95_ms: 3, p99_ms: 3, max_ms: 3 } },
        { method: 7 },
        null,
      ],
    };
    const s = parseStatsJson(JSON.stringify(snap) + '\n')!;
    expect(s.latency?.generate?.p50_ms).toBe(0.25);
    expect(Object.keys(s.latency!)).toEqual(['generate', 'cli']);
    expect(statusBarModel('running', s).text).toBe('perfd 90% · 0.3 ms');
    // a payload that already has `latency` keeps it
    expect(parseStatsJson(JSON.stringify({ cache: {}, latency: { hover: { p50_ms: 1 } }, methods: [] }))?.latency).toEqual({ hover: { p50_ms: 1 } });
    for (const bad of ['', 'perfd: no daemon', '[]', 'null', '{"cache": 3}', '{"pid": 1}']) expect(parseStatsJson(bad)).toBeUndefined();
  });

  it('running without stats yet', () => {
    expect(statusBarModel('running').text).toBe('perfd');
  });
});

describe('numbers', () => {
  it('formats milliseconds and durations', () => {
    expect(formatMs(0.04)).toBe('0.04 ms');
    expect(formatMs(0.3)).toBe('0.3 ms');
    expect(formatMs(9.94)).toBe('9.9 ms');
    expect(formatMs(12.4)).toBe('12 ms');
    expect(formatDuration(5)).toBe('5s');
    expect(formatDuration(3700)).toBe('1h 1m');
    expect(formatDuration(90000)).toBe('1d 1h');
  });
});

describe('documents', () => {
  it('stats markdown has the summary and the raw payload', () => {
    const md = statsMarkdown(stats, 'running', new Date('2024-01-01T00:00:00Z'));
    expect(md).toContain('# perfd stats');
    expect(md).toContain('**running**');
    expect(md).toContain('"hit_rate": 0.94');
    expect(statsMarkdown(undefined, 'stopped')).toContain('No stats received yet.');
  });

  it('workspace status lists actionable plans first', () => {
    const md = workspaceStatusMarkdown({
      root: '/r',
      plans: [
        { plan: 'DONE', path: '/r/PLAN_DONE.md', title: 'Done | x', state: 'plan_complete', next: null, done: 3, total: 3, source: 'review files' },
        { plan: 'API', path: '/r/PLAN_API.md', title: 'Api', state: 'no_subplan', next: '1.2', done: 1, total: 4, source: 'review files', parallel_options: ['1.2', '1.3'], pending_fixes: ['1.1'] },
      ],
      problems: [],
    });
    expect(md.indexOf('@API')).toBeLessThan(md.indexOf('@DONE'));
    expect(md).toContain('| @API | Api | 📄 no SUBPLAN yet | 1.2 | 1/4 | fixes: 1.1; parallel: 1.3 |');
    expect(md).toContain('Done \\| x');
    expect(workspaceStatusMarkdown({ root: '/r', plans: [], problems: [] })).toContain('No plans found.');
  });

  it('workspace status shows each plan summary\'s problem_count', () => {
    const row = (problem_count?: number) =>
      workspaceStatusMarkdown({
        root: '/r',
        plans: [
          { plan: 'API', path: '/r/PLAN_API.md', title: 'Api', state: 'no_subplan', next: '1.2', done: 1, total: 4, source: 'review files', problem_count },
        ],
        problems: [],
      })
        .split('\n')
        .find((l) => l.startsWith('| @API'));
    expect(row(2)).toBe('| @API | Api | 📄 no SUBPLAN yet | 1.2 | 1/4 | 2 problems |');
    expect(row(1)).toBe('| @API | Api | 📄 no SUBPLAN yet | 1.2 | 1/4 | 1 problem |');
    expect(row(undefined)).toBe('| @API | Api | 📄 no SUBPLAN yet | 1.2 | 1/4 |  |'); // omitted when 0
  });

  it('workspace status lists documents that are not plans apart, with why, and names plans by their label', () => {
    const md = workspaceStatusMarkdown({
      root: '/r/',
      plans: [
        { plan: 'API', path: '/r/plans/API/PLAN_API.md', title: 'Api', state: 'no_subplan', next: '1.1', done: 0, total: 2, source: 'plan marks', label: '' },
        { plan: 'API', path: '/r/plans/archive/API/PLAN_API.md', title: 'Old api', state: 'plan_complete', next: null, done: 2, total: 2, source: 'plan marks', label: 'archive/API' },
        { plan: 'NOTES', path: '/r/plans/NOTES/PLAN_NOTES.md', title: 'Notes', state: 'no_subplan', next: null, done: 0, total: 0, source: 'plan marks' },
        { plan: 'API_DONE', path: '/r/plans/API/PLAN_API_DONE.md', title: 'Done', state: 'no_subplan', next: null, done: 0, total: 0, source: 'plan marks', not_plan: 'a completion summary | final' },
      ],
      problems: [],
    });
    const rows = md.split('\n').filter((l) => l.startsWith('| @'));
    expect(rows.map((r) => r.split(' | ')[0])).toEqual(['| @API', '| @archive/API', '| @NOTES']);
    expect(rows[2]).toContain('| 0/0 | no achievements read |'); // a plan read without achievements, as the CLI warns
    expect(rows.join('\n')).not.toContain('API_DONE');
    expect(md.indexOf('## Not plans')).toBeGreaterThan(md.indexOf('| @NOTES'));
    expect(md).toContain('- `plans/API/PLAN_API_DONE.md`: not a plan: a completion summary \\| final');
    // only documents that are not plans: no table, and the list
    const only = workspaceStatusMarkdown({ root: '/r', plans: [{ plan: 'X', path: '/elsewhere/PLAN_X.md', title: 'X', state: 'no_subplan', next: null, done: 0, total: 0, source: 'plan marks', not_plan: 'done' }], problems: [] });
    expect(only).toContain('No plans found.');
    expect(only).not.toContain('| Plan |');
    expect(only).toContain('- `/elsewhere/PLAN_X.md`: not a plan: done');
  });

  it('plan status of a document that is not a plan says so, and why, without a state', () => {
    const md = planStatusMarkdown({ ...plan, path: '/r/PLAN_API-CLIENT_DONE.md', achievements: [], not_plan: 'a completion summary' });
    expect(md.split('\n')[0]).toBe('# PLAN_API-CLIENT_DONE.md — not a plan');
    expect(md).toContain('not a plan: a completion summary');
    expect(md).not.toContain('State:');
  });

  it('plan status marks the next achievement', () => {
    const md = planStatusMarkdown(plan);
    expect(md).toContain('| 1.2 ⬅ next | Second | ▶ active execution | yes |');
    expect(md).toContain('| 1.3 | Third | 📄 no SUBPLAN yet | blocked |');
  });
});

const plan: PlanStatus = {
  plan: 'API-CLIENT',
  path: '/r/PLAN_API-CLIENT.md',
  title: 'API client',
  state: 'active_execution',
  next: '1.2',
  done: 1,
  total: 3,
  source: 'review files',
  achievements: [
    { number: '1.1', title: 'First', state: 'complete' },
    { number: '1.3', title: 'Third', state: 'no_subplan', ready: false, dependencies: ['1.2'] },
    { number: '1.10', title: 'Tenth', state: 'no_subplan' },
    { number: '1.2', title: 'Second', state: 'active_execution', active_execution: '/r/x/EXECUTION_TASK_API-CLIENT_12_01.md' },
  ],
};

describe('quick picks', () => {
  it('orders achievements: next, open (numerically), approved', () => {
    const items = achievementPickItems(plan);
    expect(items.map((i) => i.value.number)).toEqual(['1.2', '1.3', '1.10', '1.1']);
    expect(items[0].description).toBe('▶ active execution · next');
    expect(items[1].description).toBe('📄 no SUBPLAN yet (blocked)');
    expect(items[1].detail).toBe('depends on 1.2');
    expect(items[3].description).toBe('✅ approved');
  });

  it('plan items', () => {
    const items = planPickItems([
      { plan: 'B', path: '/b', title: 'Bee', state: 'plan_complete', next: null, done: 2, total: 2, source: 'plan marks' },
      { plan: 'A', path: '/a', title: 'Ay', state: 'no_subplan', next: '2.1', done: 0, total: 5, source: 'plan marks' },
    ]);
    expect(items.map((i) => i.label)).toEqual(['@A', '@B']);
    expect(items[0].description).toBe('next 2.1 · 0/5');
    expect(items[1].description).toBe('✅ plan complete · 2/2');
  });

  it('plan items name a plan by its label, and leave out documents that are not plans', () => {
    const items = planPickItems([
      { plan: 'A', path: '/p/archive/A/PLAN_A.md', title: 'Old', state: 'plan_complete', next: null, done: 1, total: 1, source: 'plan marks', label: 'archive/A' },
      { plan: 'A', path: '/p/A/PLAN_A.md', title: 'Ay', state: 'no_subplan', next: '1.1', done: 0, total: 1, source: 'plan marks', label: '' },
      { plan: 'A_DONE', path: '/p/A/PLAN_A_DONE.md', title: 'Done', state: 'no_subplan', next: null, done: 0, total: 0, source: 'plan marks', not_plan: 'a completion summary' },
    ]);
    expect(items.map((i) => i.label)).toEqual(['@A', '@archive/A']);
  });
});

describe('messages', () => {
  const r: GenerateResult = {
    plan: 'API-CLIENT', plan_path: '/r/PLAN_API-CLIENT.md', achievement: '1.2', state: 'no_subplan', source: 'plan marks',
    prompt: 'Do it', parallel_options: ['1.2', '1.3'], problems: [], write_path: '/r/subplans/SUBPLAN_API-CLIENT_12.md',
  };
  it('generated', () => {
    const m = generatedMessage(r, true);
    expect(m.info).toBe(
      'perfd: prompt for @API-CLIENT 1.2 (📄 no SUBPLAN yet) copied to the clipboard. The model should write SUBPLAN_API-CLIENT_12.md. Also ready in parallel: 1.3.',
    );
    expect(m.warning).toBeUndefined();
    expect(generatedMessage({ ...r, write_path: null, parallel_options: [] }, false).info).toBe(
      'perfd: prompt for @API-CLIENT 1.2 (📄 no SUBPLAN yet) generated.',
    );
  });
  it('problems become a warning, info-level ones do not', () => {
    const w = generatedMessage({ ...r, problems: [{ code: 'x', message: 'bad index', severity: 'error' }, { code: 'y', message: 'meh', severity: 'warning' }] }, true);
    expect(w.warning).toBe('perfd: 2 problems in @API-CLIENT: bad index');
    expect(generatedMessage({ ...r, problems: [{ code: 'i', message: 'fyi', severity: 'info' }] }, true).warning).toBeUndefined();
  });
  it('prompt document names are file-name safe', () => {
    expect(promptDocName(r)).toBe('API-CLIENT 1.2 prompt.md');
    expect(promptDocName({ ...r, plan: 'a/b c', achievement: null })).toBe('a_b_c next prompt.md');
  });
  it('achievement message', () => {
    expect(achievementMessage(plan, '1.3')).toBe('perfd: @API-CLIENT 1.3 Third — 📄 no SUBPLAN yet · blocked by 1.2');
    expect(achievementMessage(plan, '1.2')).toContain('active: EXECUTION_TASK_API-CLIENT_12_01.md');
    expect(achievementMessage(plan, '9.9')).toBe('perfd: @API-CLIENT has no achievement 9.9.');
  });
  it('state labels and errors', () => {
    expect(stateLabel('fix_pending')).toBe('🔧 fix pending');
    expect(stateLabel('some_new_state')).toBe('some new state');
    expect(stateLabel(undefined)).toBe('unknown');
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage({ code: -32603, message: 'unknown plan @X' })).toBe('unknown plan @X');
    expect(errorMessage('s')).toBe('s');
  });
});
