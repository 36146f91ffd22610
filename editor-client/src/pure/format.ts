// Pure formatting: status bar, stats / status documents, quick pick items, messages.
// No `vscode` import here, so all of it is unit-tested directly.
import type {
  AchievementStatus,
  GenerateResult,
  MethodLatency,
  PlanStatus,
  PlanSummary,
  StatsPayload,
  WorkspaceStatus,
} from './types';

/** Same labels as the server's code lenses (daemon/perfd/lsp/features.py STATE_LABEL). */
export const STATE_LABEL: Record<string, string> = {
  complete: '✅ approved',
  fix_pending: '🔧 fix pending',
  no_subplan: '📄 no SUBPLAN yet',
  subplan_complete: '⏳ awaiting review',
  subplan_no_execution: '📝 no EXECUTION yet',
  active_execution: '▶ active execution',
  create_next_execution: '➕ next EXECUTION to create',
  subplan_all_executed: '🔍 ready for review',
  plan_complete: '✅ plan complete',
};

export function stateLabel(state: string | null | undefined): string {
  if (!state) return 'unknown';
  return STATE_LABEL[state] ?? state.replace(/_/g, ' ');
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** "0.3 ms", "0.04 ms", "12 ms". */
export function formatMs(ms: number): string {
  if (ms < 0.1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

export function formatPercent(rate: number): string {
  return `${Math.round(Math.max(0, Math.min(1, rate)) * 100)}%`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

function methodLatency(stats: StatsPayload, method: string): MethodLatency | undefined {
  const lat = stats.latency;
  if (!lat || typeof lat !== 'object') return undefined;
  const m = lat[method] ?? lat[`perfd.${method}`];
  return m && typeof m === 'object' ? m : undefined;
}

/** The latency shown in the status bar: generate's p50 when the server reports it, else the cache lookup p50. */
export function headlineLatencyMs(stats: StatsPayload): { ms: number; what: string } | undefined {
  const gen = num(methodLatency(stats, 'generate')?.p50_ms);
  if (gen !== undefined) return { ms: gen, what: 'generate p50' };
  const us = num(stats.cache?.lookup_p50_us);
  if (us !== undefined) return { ms: us / 1000, what: 'cache lookup p50' };
  return undefined;
}

export type ServerState = 'idle' | 'starting' | 'running' | 'stopped' | 'missing' | 'failed';

export interface StatusBarModel {
  text: string;
  tooltip: string; // markdown
  warning: boolean;
}

const STATE_TEXT: Record<ServerState, string> = {
  idle: 'perfd',
  starting: 'perfd $(sync~spin)',
  running: 'perfd',
  stopped: 'perfd $(debug-disconnect) stopped',
  missing: 'perfd $(warning) not found',
  failed: 'perfd $(error) failed',
};

export function statusBarModel(state: ServerState, stats?: StatsPayload, detail?: string): StatusBarModel {
  const warning = state === 'stopped' || state === 'missing' || state === 'failed';
  const lines: string[] = [];
  let text = STATE_TEXT[state];
  // While the editor session starts, the daemon's counters (from `perfd stats --json`) show
  // beside the spinner; once it stops or fails, old numbers would only mislead.
  const live = stats !== undefined && (state === 'running' || state === 'starting');
  if (live) {
    const { rate, lookups } = headlineHitRate(stats);
    const parts = ['perfd'];
    parts.push(lookups === 0 || rate === undefined ? '–%' : formatPercent(rate));
    const head = headlineLatencyMs(stats);
    text = head ? `${parts.join(' ')} · ${formatMs(head.ms)}` : parts.join(' ');
    if (state === 'starting') text += ' $(sync~spin)';
  }
  // --- team: the shared Redis is down (fail open: local limits; fail closed: calls refused) ---
  const teamDown = live ? teamDownLine(stats) : undefined;
  if (teamDown) text += ' $(warning) Redis down';
  // --- folders the watcher could not watch: answers stay right (checked by stat), but say so ---
  const unwatched = live ? unwatchedLine(stats) : undefined;
  if (unwatched) text += ' $(eye-closed) unwatched';
  lines.push(`**perfd** language server: ${state === 'idle' ? 'not started' : state}`);
  if (teamDown) lines.push('', teamDown);
  if (unwatched) lines.push('', unwatched);
  if (detail) lines.push('', detail);
  if (live) lines.push('', ...statsLines(stats));
  lines.push('', warning ? 'Click to restart perfd' : 'Click for perfd stats');
  return { text, tooltip: lines.join('\n'), warning: warning || teamDown !== undefined };
}

/**
 * What the file watcher could not watch (those folders are checked by stat, so answers stay right),
 * or undefined while it watches everything (or there is no report).
 */
/**
 * `text` (a folder name from the workspace, a reason from the server) as literal Markdown inline text:
 * every character that could open markup (a link, an image, HTML, emphasis, code) is backslash-escaped,
 * as perfd's own Markdown exports do (perfd.safetext.markdown_text), and line breaks become spaces.
 */
export function mdLiteral(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/[\\`*_[\]<>&|~!()#]/g, (c) => `\\${c}`);
}

export function unwatchedLine(stats: StatsPayload): string | undefined {
  const w = stats.watcher;
  if (!w || typeof w !== 'object') return undefined;
  const folders = Array.isArray(w.unwatched) ? w.unwatched : [];
  if (folders.length > 0) {
    const first = folders[0];
    const more = folders.length > 1 ? ` and ${folders.length - 1} more` : '';
    const need = num(w.watches_needed) ?? 0;
    const limit = num(w.max_user_watches) ?? 0;
    const raise = need > 0 ? `; raise fs.inotify.max_user_watches${limit ? ` from ${limit} to at least ${limit + need}` : ''}` : '';
    return `⚠ not watched: ${mdLiteral(first.path)}${more} (${mdLiteral(first.reason)}): checked by stat until watched${raise}`;
  }
  const noEvents = Array.isArray(w.no_events) ? w.no_events : [];
  if (noEvents.length > 0) {
    return `⚠ ${noEvents.map(mdLiteral).join(', ')}: a file system without change events, checked by stat`;
  }
  return undefined;
}

/** The warning for a team whose Redis is unreachable, or undefined while it is up (or there is no team). */
export function teamDownLine(stats: StatsPayload): string | undefined {
  const team = stats.llm?.team;
  if (!team || team.state !== 'down') return undefined;
  return team.fail === 'closed'
    ? `⚠ the team's Redis (${team.redis}) is unreachable: model calls are refused until it is back`
    : `⚠ the team's Redis (${team.redis}) is unreachable: running on local limits and cache`;
}

/**
 * The stats payload from what `perfd stats --json` prints (a StatsSnapshot), or undefined when
 * it is not one. The perfd/stats notification carries the same snapshot plus `latency`, a map
 * by method; here that map is built from the snapshot's `methods` list.
 */
export function parseStatsJson(text: string): StatsPayload | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const stats = v as StatsPayload;
  if (!stats.cache || typeof stats.cache !== 'object') return undefined;
  if (stats.latency === undefined && Array.isArray(stats.methods)) {
    const latency: Record<string, MethodLatency> = {};
    for (const m of stats.methods as unknown[]) {
      const rec = m as { method?: unknown; latency?: unknown } | null;
      if (rec && typeof rec.method === 'string' && rec.latency && typeof rec.latency === 'object') {
        latency[rec.method] = rec.latency as MethodLatency;
      }
    }
    stats.latency = latency;
  }
  return stats;
}

/**
 * The headline cache hit rate: every level's hits over every level's lookups (answers, files,
 * model responses), as `perfd stats` shows it; from an older server without levels, the file
 * cache's own rate.
 */
export function headlineHitRate(stats: StatsPayload): { rate: number | undefined; lookups: number } {
  const levels = Array.isArray(stats.levels) ? stats.levels : [];
  if (levels.length) {
    const lookups = levels.reduce((sum, lv) => sum + (num(lv.hits) ?? 0) + (num(lv.misses) ?? 0), 0);
    return { rate: num(stats.hit_rate), lookups };
  }
  const c = stats.cache ?? {};
  return { rate: num(c.hit_rate), lookups: (num(c.hits) ?? 0) + (num(c.misses) ?? 0) };
}

/** Bulleted markdown lines describing a stats payload (tooltip and stats document). */
export function statsLines(stats: StatsPayload): string[] {
  const out: string[] = [];
  const c = stats.cache;
  const levels = Array.isArray(stats.levels) ? stats.levels : [];
  if (levels.length) {
    const { rate, lookups } = headlineHitRate(stats);
    const each = levels.map((lv) => `${lv.name} ${lv.hits}/${lv.hits + lv.misses}`).join(', ');
    out.push(`- cache hit rate: ${lookups === 0 || rate === undefined ? '–' : formatPercent(rate)} over every level (${each})`);
  }
  if (c) {
    const hits = num(c.hits) ?? 0;
    const misses = num(c.misses) ?? 0;
    const rate = num(c.hit_rate);
    out.push(
      `- ${levels.length ? 'file cache' : 'cache'} hit rate: ${hits + misses === 0 || rate === undefined ? '–' : formatPercent(rate)} (${hits} hits, ${misses} misses)`,
    );
    out.push(`- cache entries: ${num(c.entries) ?? 0} · evictions ${num(c.evictions) ?? 0} · expirations ${num(c.expirations) ?? 0}`);
    const p50 = num(c.lookup_p50_us);
    const p99 = num(c.lookup_p99_us);
    if (p50 !== undefined || p99 !== undefined) {
      out.push(`- cache lookup: p50 ${formatUs(p50)} · p99 ${formatUs(p99)}`);
    }
  }
  const lat = stats.latency;
  if (lat && typeof lat === 'object') {
    for (const [method, m] of Object.entries(lat).sort(([a], [b]) => a.localeCompare(b))) {
      if (!m || typeof m !== 'object') continue;
      const bits = (['p50_ms', 'p95_ms', 'p99_ms'] as const)
        .filter((k) => num(m[k]) !== undefined)
        .map((k) => `${k.slice(0, 3)} ${formatMs(m[k] as number)}`);
      if (bits.length) out.push(`- ${method}: ${bits.join(' · ')}`);
    }
  }
  const up = num(stats.uptime_s);
  if (up !== undefined) out.push(`- uptime: ${formatDuration(up)}`);
  return out;
}

function formatUs(us: number | undefined): string {
  if (us === undefined) return '–';
  return us < 1000 ? `${us < 10 ? us.toFixed(1) : Math.round(us)} µs` : formatMs(us / 1000);
}

export function statsMarkdown(stats: StatsPayload | undefined, state: ServerState, at?: Date): string {
  const out = ['# perfd stats', ''];
  out.push(`Server: **${state}**${at ? ` · updated ${at.toISOString()}` : ''}`, '');
  if (!stats) {
    out.push('No stats received yet.');
    return out.join('\n') + '\n';
  }
  out.push(...statsLines(stats), '', '## Raw', '', '```json', JSON.stringify(stats, null, 2), '```');
  return out.join('\n') + '\n';
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** How a plan is named: `@NAME`, or its label (`@archive/NAME`) when another plan has the same name. */
export function planRef(p: { plan: string; label?: string }): string {
  return `@${p.label || p.plan}`;
}

/** The plans, and apart from them the documents named PLAN_ that are not plans (`not_plan` says why). */
export function splitPlans<T extends PlanSummary>(plans: T[]): { plans: T[]; notPlans: T[] } {
  return { plans: plans.filter((p) => !p.not_plan), notPlans: plans.filter((p) => p.not_plan) };
}

/** `path` relative to `root` when it is under it (as the CLI shows paths), else as it is. */
export function shownPath(root: string, path: string): string {
  const base = root.replace(/[\\/]+$/, '');
  return path.startsWith(base + '/') || path.startsWith(base + '\\') ? path.slice(base.length + 1) : path;
}

/** "not a plan: why", as the CLI lists such a document. */
export function notPlanText(p: { not_plan?: string }): string {
  return `not a plan: ${p.not_plan ?? ''}`;
}

export function workspaceStatusMarkdown(st: WorkspaceStatus): string {
  const out = ['# perfd status', '', `Root: \`${st.root}\``, ''];
  const { plans, notPlans } = splitPlans(st.plans);
  if (!plans.length) out.push('No plans found.');
  else out.push('| Plan | Title | State | Next | Done | Notes |', '| --- | --- | --- | --- | --- | --- |');
  for (const p of sortPlans(plans)) {
    const notes: string[] = [];
    if (!p.total) notes.push('no achievements read');
    if (p.pending_fixes?.length) notes.push(`fixes: ${p.pending_fixes.join(', ')}`);
    // The options beside `next` (older servers listed `next` among them): one is worth showing too.
    const parallel = (p.parallel_options ?? []).filter((n) => n !== p.next);
    if (parallel.length) notes.push(`parallel: ${parallel.join(', ')}`);
    const problems = p.problem_count ?? 0; // omitted when 0; PlanStatus lists them
    if (problems) notes.push(`${problems} problem${problems === 1 ? '' : 's'}`);
    out.push(
      `| ${esc(planRef(p))} | ${esc(p.title)} | ${stateLabel(p.state)} | ${p.next ?? '—'} | ${p.done}/${p.total} | ${esc(notes.join('; '))} |`,
    );
  }
  if (notPlans.length) {
    out.push('', '## Not plans', '', 'Documents named PLAN_ that say they are not plans (perfd does not count them):', '');
    for (const p of notPlans) out.push(`- \`${shownPath(st.root, p.path)}\`: ${esc(notPlanText(p))}`);
  }
  return out.join('\n') + '\n';
}

export function planStatusMarkdown(p: PlanStatus): string {
  if (p.not_plan) return [`# ${basename(p.path)} — not a plan`, '', `\`${p.path}\``, '', esc(notPlanText(p))].join('\n') + '\n';
  const out = [`# @${p.plan} — ${p.title}`, '', `\`${p.path}\``, ''];
  out.push(`State: **${stateLabel(p.state)}** · next: **${p.next ?? '—'}** · ${p.done}/${p.total} done`, '');
  const achs = p.achievements ?? [];
  if (achs.length) {
    out.push('| # | Achievement | State | Ready |', '| --- | --- | --- | --- |');
    for (const a of achs) {
      out.push(`| ${a.number}${a.number === p.next ? ' ⬅ next' : ''} | ${esc(a.title)} | ${stateLabel(a.state)} | ${a.ready === false ? 'blocked' : 'yes'} |`);
    }
    out.push('');
  }
  for (const pr of p.problems ?? []) out.push(`- ${pr.severity ?? 'warning'}: ${pr.message}`);
  return out.join('\n') + '\n';
}

/** Actionable plans (with a next step) first, then by name. */
export function sortPlans<T extends PlanSummary>(plans: T[]): T[] {
  return [...plans].sort((a, b) => Number(!a.next) - Number(!b.next) || a.plan.localeCompare(b.plan));
}

export interface PickItem<T> {
  label: string;
  description?: string;
  detail?: string;
  value: T;
}

/** The plans to choose from (a document that is not a plan is not one of them). */
export function planPickItems(plans: PlanSummary[]): PickItem<PlanSummary>[] {
  return sortPlans(splitPlans(plans).plans).map((p) => ({
    label: planRef(p),
    description: `${p.next ? `next ${p.next}` : stateLabel(p.state)} · ${p.done}/${p.total}`,
    detail: p.title,
    value: p,
  }));
}

function compareNumbers(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d) return d;
  }
  return 0;
}

/** Achievements with their state; the next one first, then open ones, then approved ones. */
export function achievementPickItems(p: PlanStatus): PickItem<AchievementStatus>[] {
  const achs = [...(p.achievements ?? [])];
  const rank = (a: AchievementStatus) => (a.number === p.next ? 0 : a.state === 'complete' ? 2 : 1);
  achs.sort((a, b) => rank(a) - rank(b) || compareNumbers(a.number, b.number));
  return achs.map((a) => ({
    label: `${a.number} ${a.title}`,
    description: `${stateLabel(a.state)}${a.ready === false ? ' (blocked)' : ''}${a.number === p.next ? ' · next' : ''}`,
    detail: a.dependencies?.length ? `depends on ${a.dependencies.join(', ')}` : undefined,
    value: a,
  }));
}

/** File name of the read-only document showing a prompt. */
export function promptDocName(r: GenerateResult): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._@-]+/g, '_');
  return `${safe(r.plan)} ${safe(r.achievement ?? 'next')} prompt.md`;
}

/** The message shown after a prompt was generated, and the warning about problems (if any). */
export function generatedMessage(r: GenerateResult, copied: boolean): { info: string; warning?: string } {
  const what = r.achievement ? `${r.achievement} (${stateLabel(r.state)})` : stateLabel(r.state);
  let info = `perfd: prompt for @${r.plan} ${what} ${copied ? 'copied to the clipboard' : 'generated'}.`;
  if (r.write_path) info += ` The model should write ${basename(r.write_path)}.`;
  const others = (r.parallel_options ?? []).filter((n) => n !== r.achievement);
  if (others.length) info += ` Also ready in parallel: ${others.join(', ')}.`;
  const serious = (r.problems ?? []).filter((p) => p.severity !== 'info');
  let warning: string | undefined;
  if (serious.length) {
    warning = `perfd: ${serious.length} problem${serious.length === 1 ? '' : 's'} in @${r.plan}: ${serious[0].message}`;
  }
  return { info, warning };
}

export function achievementMessage(plan: PlanStatus, number: string): string {
  const a = (plan.achievements ?? []).find((x) => x.number === number);
  if (!a) return `perfd: @${plan.plan} has no achievement ${number}.`;
  const bits = [`perfd: @${plan.plan} ${a.number} ${a.title} — ${stateLabel(a.state)}`];
  if (a.ready === false && a.dependencies?.length) bits.push(`blocked by ${a.dependencies.join(', ')}`);
  if (a.active_execution) bits.push(`active: ${basename(a.active_execution)}`);
  if (a.fix) bits.push(`fix: ${basename(a.fix)}`);
  return bits.join(' · ');
}

export function basename(p: string): string {
  const parts = p.split(/[\\/]/);
  return parts[parts.length - 1] || p;
}

/** A readable message out of whatever a request rejected with (ResponseError, Error, string). */
export function errorMessage(e: unknown): string {
  if (e && typeof e === 'object') {
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string' && m) return m;
  }
  if (typeof e === 'string') return e;
  return String(e);
}
