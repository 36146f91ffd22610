// The perfd view's tree, as data: workspace folders, the grouping folders under each plans
// folder (as on disk), plans with their progress, next step and state, and under a plan its
// pending fixes, parallel options and achievements. Pure: src/view.ts turns nodes into
// TreeItems. Node ids are stable across updates (VS Code keeps expansion by id), and the model
// remembers which nodes are expanded so a live update re-reads exactly the plans on show.
import { basename, notPlanText, splitPlans } from './format';
import type { AchievementStatus, PlanStatus, PlanSummary, WorkspaceStatus } from './types';

export type Filter = 'all' | 'inProgress' | 'needsFixes' | 'complete';

export const FILTERS: { value: Filter; label: string; detail: string }[] = [
  { value: 'all', label: 'All plans', detail: 'every plan of every folder' },
  { value: 'inProgress', label: 'In progress', detail: 'plans with work left' },
  { value: 'needsFixes', label: 'Needs fixes', detail: 'plans with a FIX pending' },
  { value: 'complete', label: 'Complete', detail: 'plans whose every achievement is approved' },
];

/** One workspace folder's perfd session, as the view sees it. */
export interface FolderData {
  /** The folder's URI (string): the key of everything under it. */
  key: string;
  name: string;
  /** The last `perfd.status` answer; undefined while loading. */
  status?: WorkspaceStatus;
  /** Why there is no status (the server did not start, the folder went away). */
  error?: string;
  /** `perfd.status PLAN` answers of the plans whose achievements are on show, by PLAN path. */
  details: Map<string, PlanStatus>;
}

export type Node =
  | { kind: 'folder'; id: string; folder: string; label: string; description?: string }
  | { kind: 'group'; id: string; folder: string; label: string; rel: string }
  | { kind: 'plan'; id: string; folder: string; plan: PlanSummary }
  /** A document named PLAN_ that says it is not a plan (a completion summary): listed apart, with why. */
  | { kind: 'notPlan'; id: string; folder: string; path: string; label: string; reason: string }
  | { kind: 'info'; id: string; folder: string; label: string; description: string; icon: string; plan: string }
  | { kind: 'achievement'; id: string; folder: string; plan: string; achievement: AchievementStatus; next: boolean }
  | { kind: 'message'; id: string; folder?: string; label: string; description?: string };

/** Codicon per state (the words themselves are the CLI's: `no_subplan`, `fix_pending`, ...). */
export const STATE_ICON: Record<string, string> = {
  complete: 'pass-filled',
  plan_complete: 'pass-filled',
  fix_pending: 'tools',
  no_subplan: 'circle-large-outline',
  subplan_complete: 'watch',
  subplan_no_execution: 'note',
  active_execution: 'play-circle',
  create_next_execution: 'add',
  subplan_all_executed: 'eye',
};

export function stateIcon(state: string): string {
  return STATE_ICON[state] ?? 'circle-outline';
}

export function matchesFilter(p: PlanSummary, filter: Filter): boolean {
  if (p.not_plan) return filter === 'all'; // no state to filter on: shown only with every plan
  switch (filter) {
    case 'all':
      return true;
    case 'inProgress':
      return p.state !== 'plan_complete';
    case 'needsFixes':
      return (p.pending_fixes ?? []).length > 0 || p.state === 'fix_pending';
    case 'complete':
      return p.state === 'plan_complete';
  }
}

/** "1/3 · next 1.2 · fix_pending": what a plan's row says after its name ("not a plan: why" for a document that is none). */
export function planDescription(p: PlanSummary): string {
  if (p.not_plan) return notPlanText(p);
  const parts = [`${p.done}/${p.total}`];
  if (p.next) parts.push(`next ${p.next}`);
  parts.push(p.state);
  if (p.problem_count) parts.push(`${p.problem_count} problem${p.problem_count === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

export function achievementDescription(a: AchievementStatus): string {
  return a.state + (a.ready === false ? ' (blocked)' : '');
}

function dirOf(p: string): string {
  return p.replace(/[\\/]+[^\\/]*$/, '');
}

function splitPath(p: string): string[] {
  return p.split(/[\\/]+/).filter(Boolean);
}

/**
 * The grouping folders between the plans folder and a plan's own folder, e.g. ["a_real-use-cases"]
 * for plans/a_real-use-cases/DOCS-SITE/PLAN_DOCS-SITE.md. A plan loose in a folder (its PLAN file
 * beside other plans' folders) is grouped by the folder it sits in. Without a plans folder
 * (an older server), plans are not grouped.
 */
export function groupsOf(plan: PlanSummary, plansDir: string | undefined): string[] {
  if (!plansDir) return [];
  const dir = splitPath(plansDir);
  const file = splitPath(plan.path);
  if (file.length <= dir.length || dir.some((seg, i) => file[i] !== seg)) return [];
  const below = file.slice(dir.length, -1); // folders under plans/, down to the PLAN file's folder
  const loose = below.length === 0 || below[below.length - 1] !== plan.plan;
  return loose ? below : below.slice(0, -1);
}

export class TreeModel {
  private readonly folders = new Map<string, FolderData>();
  private readonly expanded = new Set<string>();
  filter: Filter = 'all';

  /** Folders in the order given (the workspace's order); a folder not listed is dropped. */
  setFolders(list: { key: string; name: string }[]): void {
    const keep = new Set(list.map((f) => f.key));
    for (const key of [...this.folders.keys()]) if (!keep.has(key)) this.folders.delete(key);
    const ordered = new Map<string, FolderData>();
    for (const f of list) {
      const old = this.folders.get(f.key);
      ordered.set(f.key, old ? { ...old, name: f.name } : { key: f.key, name: f.name, details: new Map() });
    }
    this.folders.clear();
    for (const [k, v] of ordered) this.folders.set(k, v);
  }

  folder(key: string): FolderData | undefined {
    return this.folders.get(key);
  }

  folderKeys(): string[] {
    return [...this.folders.keys()];
  }

  /** A new workspace status for one folder; details of plans that are gone are dropped. */
  setStatus(key: string, status: WorkspaceStatus): void {
    const f = this.folders.get(key);
    if (!f) return;
    f.status = status;
    f.error = undefined;
    const paths = new Set(status.plans.map((p) => p.path));
    for (const p of [...f.details.keys()]) if (!paths.has(p)) f.details.delete(p);
  }

  setError(key: string, error: string): void {
    const f = this.folders.get(key);
    if (!f) return;
    f.error = error;
  }

  setDetail(key: string, plan: PlanStatus): void {
    this.folders.get(key)?.details.set(plan.path, plan);
  }

  dropDetail(key: string, planPath: string): void {
    this.folders.get(key)?.details.delete(planPath);
  }

  setExpanded(id: string, on: boolean): void {
    if (on) this.expanded.add(id);
    else this.expanded.delete(id);
  }

  isExpanded(id: string): boolean {
    return this.expanded.has(id);
  }

  /** PLAN paths of the expanded plans of a folder: what a live update re-reads. */
  expandedPlans(key: string): string[] {
    const f = this.folders.get(key);
    if (!f?.status) return [];
    return f.status.plans.filter((p) => this.expanded.has(planId(key, p.path))).map((p) => p.path);
  }

  /** The top of the tree: folders when there are several, else the one folder's contents. */
  roots(): Node[] {
    const list = [...this.folders.values()];
    if (list.length === 0) return [{ kind: 'message', id: 'message:none', label: 'No folder holds perfd plans.' }];
    if (list.length === 1) return this.folderContents(list[0]);
    const out: Node[] = [];
    for (const f of list) {
      const shown = f.status?.plans.filter((p) => !p.not_plan && matchesFilter(p, this.filter)).length;
      out.push({
        kind: 'folder',
        id: `folder:${f.key}`,
        folder: f.key,
        label: f.name,
        description: f.error ? 'not available' : shown === undefined ? 'loading…' : `${shown} plan${shown === 1 ? '' : 's'}`,
      });
    }
    return out;
  }

  children(node?: Node): Node[] {
    if (!node) return this.roots();
    const f = 'folder' in node && node.folder ? this.folders.get(node.folder) : undefined;
    if (!f) return [];
    switch (node.kind) {
      case 'folder':
        return this.folderContents(f);
      case 'group':
        return this.level(f, splitPath(node.rel));
      case 'plan':
        return this.planChildren(f, node.plan);
      default:
        return [];
    }
  }

  private folderContents(f: FolderData): Node[] {
    if (f.error) return [{ kind: 'message', id: `message:${f.key}:error`, folder: f.key, label: f.error }];
    if (!f.status) return [{ kind: 'message', id: `message:${f.key}:loading`, folder: f.key, label: 'Loading plans…' }];
    if (f.status.plans.length === 0) {
      return [{ kind: 'message', id: `message:${f.key}:empty`, folder: f.key, label: 'No plans in this folder.', description: f.status.plans_dir ?? '' }];
    }
    const got = this.level(f, []);
    if (got.length === 0) {
      return [{ kind: 'message', id: `message:${f.key}:filtered`, folder: f.key, label: `No plans match "${filterLabel(this.filter)}".` }];
    }
    return got;
  }

  /**
   * Grouping folders (alphabetical), then plans (actionable first, as the CLI lists them), then the
   * documents named PLAN_ that are not plans (by name), at one level.
   */
  private level(f: FolderData, prefix: string[]): Node[] {
    const all = f.status?.plans ?? [];
    const plans = all.filter((p) => matchesFilter(p, this.filter));
    // A document that is not a plan, in a plan's own folder (a completion summary beside its PLAN), is
    // listed beside that plan, not under a group of the folder's name.
    const planFolders = new Set(all.filter((p) => !p.not_plan).map((p) => dirOf(p.path)));
    const groups = new Set<string>();
    const here: PlanSummary[] = [];
    for (const p of plans) {
      let g = groupsOf(p, f.status?.plans_dir);
      if (p.not_plan && g.length && planFolders.has(dirOf(p.path))) g = g.slice(0, -1);
      if (g.length < prefix.length || prefix.some((seg, i) => g[i] !== seg)) continue;
      if (g.length === prefix.length) here.push(p);
      else groups.add(g[prefix.length]);
    }
    const out: Node[] = [...groups].sort((a, b) => a.localeCompare(b)).map((name) => {
      const rel = [...prefix, name].join('/');
      return { kind: 'group' as const, id: `group:${f.key}:${rel}`, folder: f.key, label: name, rel };
    });
    const { plans: real, notPlans } = splitPlans(here);
    for (const p of orderPlans(real)) out.push({ kind: 'plan', id: planId(f.key, p.path), folder: f.key, plan: p });
    for (const p of [...notPlans].sort((a, b) => a.path.localeCompare(b.path))) {
      out.push({ kind: 'notPlan', id: `notplan:${f.key}:${p.path}`, folder: f.key, path: p.path, label: basename(p.path), reason: p.not_plan ?? '' });
    }
    return out;
  }

  private planChildren(f: FolderData, p: PlanSummary): Node[] {
    const out: Node[] = [];
    const fixes = p.pending_fixes ?? [];
    if (fixes.length) {
      out.push({ kind: 'info', id: `${planId(f.key, p.path)}:fixes`, folder: f.key, plan: p.path, label: 'Pending fixes', description: fixes.join(', '), icon: 'tools' });
    }
    const parallel = p.parallel_options ?? [];
    if (parallel.length) {
      out.push({ kind: 'info', id: `${planId(f.key, p.path)}:parallel`, folder: f.key, plan: p.path, label: 'Parallel options', description: parallel.join(', '), icon: 'split-horizontal' });
    }
    const detail = f.details.get(p.path);
    if (!detail) {
      out.push({ kind: 'message', id: `${planId(f.key, p.path)}:loading`, folder: f.key, label: 'Loading achievements…' });
      return out;
    }
    for (const a of detail.achievements ?? []) {
      out.push({ kind: 'achievement', id: `${planId(f.key, p.path)}#${a.number}`, folder: f.key, plan: p.path, achievement: a, next: a.number === detail.next });
    }
    return out;
  }
}

export function planId(folder: string, planPath: string): string {
  return `plan:${folder}:${planPath}`;
}

export function filterLabel(f: Filter): string {
  return FILTERS.find((x) => x.value === f)?.label ?? f;
}

const ORDER: Record<string, number> = { fix_pending: 0, plan_complete: 9 };

/** Actionable plans first (a pending fix before all), finished plans last; by name within. */
export function orderPlans(plans: PlanSummary[]): PlanSummary[] {
  const rank = (p: PlanSummary) => ORDER[p.state] ?? (p.next ? 1 : 5);
  return [...plans].sort((a, b) => rank(a) - rank(b) || a.plan.localeCompare(b.plan));
}

/**
 * The file the achievement's next step works on, for "Open the file the next step asks for":
 * the FIX for a pending fix, the active EXECUTION_TASK, else the SUBPLAN. Undefined when the
 * next step is to create the SUBPLAN (the view offers "Create SUBPLAN" then) or there is none.
 */
export function nextStepFile(a: AchievementStatus): string | undefined {
  switch (a.state) {
    case 'fix_pending':
      return a.fix ?? undefined;
    case 'active_execution':
      return a.active_execution ?? a.executions?.at(-1) ?? a.subplan ?? undefined;
    case 'subplan_no_execution':
    case 'create_next_execution':
    case 'subplan_all_executed':
    case 'subplan_complete':
      return a.subplan ?? undefined;
    case 'complete':
      return a.approved ?? undefined;
    default:
      return undefined;
  }
}
