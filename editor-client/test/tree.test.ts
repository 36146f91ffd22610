import { describe, expect, it } from 'vitest';
import { groupsOf, matchesFilter, nextStepFile, orderPlans, planDescription, planId, TreeModel } from '../src/pure/tree';
import type { Node } from '../src/pure/tree';
import { planRef } from '../src/pure/format';
import type { AchievementStatus, PlanStatus, PlanSummary, WorkspaceStatus } from '../src/pure/types';

const DIR = '/a/work-space/plans';

function plan(name: string, rel: string, over: Partial<PlanSummary> = {}): PlanSummary {
  return { plan: name, path: `${DIR}/${rel}`, title: name, state: 'no_subplan', next: '1.1', done: 0, total: 2, source: 'review files', ...over };
}

const API = plan('API-CLIENT', 'API-CLIENT/PLAN_API-CLIENT.md', { state: 'fix_pending', next: '1.2', done: 1, total: 3, pending_fixes: ['1.2'] });
const DOCS = plan('DOCS-SITE', 'a_real-use-cases/DOCS-SITE/PLAN_DOCS-SITE.md', { next: '2.1', done: 1, total: 5, parallel_options: ['2.2', '2.3'] });
const DEEP = plan('DEEP', 'a_real-use-cases/inner/DEEP/PLAN_DEEP.md');
const LOOSE = plan('LOOSE', 'a_real-use-cases/PLAN_LOOSE.md');
const REL = plan('RELEASE-0.1', 'RELEASE-0.1/PLAN_RELEASE-0.1.md', { state: 'plan_complete', next: null, done: 2, total: 2 });

function ws(plans: PlanSummary[], root = '/a'): WorkspaceStatus {
  return { root, plans, problems: [], plans_dir: `${root}/work-space/plans` };
}

function labels(nodes: Node[]): string[] {
  return nodes.map((n) => {
    if (n.kind === 'plan') return `@${n.plan.plan}`;
    if (n.kind === 'achievement') return n.achievement.number;
    return n.label;
  });
}

function ach(number: string, state: AchievementStatus['state'], over: Partial<AchievementStatus> = {}): AchievementStatus {
  return { number, title: `T${number}`, state, ready: true, ...over };
}

function detail(p: PlanSummary, achievements: AchievementStatus[]): PlanStatus {
  return { ...p, achievements };
}

describe('grouping', () => {
  it('groups by the folders between the plans folder and the plan folder', () => {
    expect(groupsOf(API, DIR)).toEqual([]);
    expect(groupsOf(DOCS, DIR)).toEqual(['a_real-use-cases']);
    expect(groupsOf(DEEP, DIR)).toEqual(['a_real-use-cases', 'inner']);
    expect(groupsOf(LOOSE, DIR)).toEqual(['a_real-use-cases']); // a loose PLAN file: the folder it sits in
    expect(groupsOf(API, undefined)).toEqual([]);
    expect(groupsOf(plan('X', '../elsewhere/X/PLAN_X.md'), '/b/plans')).toEqual([]);
  });

  it('one folder: its groups then its plans at the top, nested as on disk', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'file:///a', name: 'a' }]);
    m.setStatus('file:///a', ws([REL, DOCS, API, DEEP, LOOSE]));
    const top = m.children();
    expect(labels(top)).toEqual(['a_real-use-cases', '@API-CLIENT', '@RELEASE-0.1']);
    const group = m.children(top[0]);
    expect(labels(group)).toEqual(['inner', '@DOCS-SITE', '@LOOSE']);
    expect(labels(m.children(group[0]))).toEqual(['@DEEP']);
  });

  it('several folders: a node per folder, in the workspace order, each with its own plans', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'file:///b', name: 'b' }, { key: 'file:///a', name: 'a' }]);
    m.setStatus('file:///a', ws([API]));
    m.setStatus('file:///b', ws([plan('OTHER', 'OTHER/PLAN_OTHER.md')].map((p) => ({ ...p, path: p.path.replace('/a/', '/b/') })), '/b'));
    const top = m.children();
    expect(labels(top)).toEqual(['b', 'a']);
    expect(top.map((n) => (n.kind === 'folder' ? n.description : ''))).toEqual(['1 plan', '1 plan']);
    expect(labels(m.children(top[0]))).toEqual(['@OTHER']);
    expect(labels(m.children(top[1]))).toEqual(['@API-CLIENT']);
  });

  it('orders plans as the CLI does: fixes first, finished last, by name within', () => {
    const a = plan('A', 'A/PLAN_A.md');
    expect(orderPlans([REL, a, API, DOCS]).map((p) => p.plan)).toEqual(['API-CLIENT', 'A', 'DOCS-SITE', 'RELEASE-0.1']);
  });
});

describe('plans and achievements', () => {
  it('a plan says progress, next and state in the CLI words; fixes and parallel options come first', () => {
    expect(planDescription(API)).toBe('1/3 · next 1.2 · fix_pending');
    expect(planDescription({ ...REL, problem_count: 2 })).toBe('2/2 · plan_complete · 2 problems');
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([DOCS, API]));
    const apiNode = m.children().find((n) => n.kind === 'plan' && n.plan.plan === 'API-CLIENT')!;
    expect(labels(m.children(apiNode))).toEqual(['Pending fixes', 'Loading achievements…']);
    m.setDetail('k', detail(API, [ach('1.1', 'complete'), ach('1.2', 'fix_pending'), ach('2.1', 'no_subplan', { ready: false })]));
    const kids = m.children(apiNode);
    expect(labels(kids)).toEqual(['Pending fixes', '1.1', '1.2', '2.1']);
    expect(kids.map((k) => (k.kind === 'achievement' ? k.next : null))).toEqual([null, false, true, false]);
    const docsNode = m.children(m.children()[0]).find((n) => n.kind === 'plan')!;
    const info = m.children(docsNode)[0];
    expect(info.kind === 'info' && [info.label, info.description]).toEqual(['Parallel options', '2.2, 2.3']);
  });

  it('the file the next step works on', () => {
    expect(nextStepFile(ach('1.2', 'fix_pending', { fix: '/F', subplan: '/S' }))).toBe('/F');
    expect(nextStepFile(ach('1.2', 'active_execution', { active_execution: '/E', subplan: '/S' }))).toBe('/E');
    expect(nextStepFile(ach('1.2', 'subplan_no_execution', { subplan: '/S' }))).toBe('/S');
    expect(nextStepFile(ach('1.2', 'no_subplan'))).toBeUndefined();
  });
});

describe('documents named PLAN_ that are not plans', () => {
  const DONE = plan('API-CLIENT_DONE', 'PLAN_API-CLIENT_DONE.md', { next: null, done: 0, total: 0, not_plan: 'a completion summary' });
  const DONE2 = plan('DOCS-SITE_DONE', 'a_real-use-cases/PLAN_DOCS-SITE_DONE.md', { next: null, done: 0, total: 0, not_plan: 'says it is done' });

  it('are listed after the plans of their level, by file name, saying "not a plan: why", not as plans', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([DONE, REL, API, DONE2, DOCS]));
    const top = m.children();
    expect(labels(top)).toEqual(['a_real-use-cases', '@API-CLIENT', '@RELEASE-0.1', 'PLAN_API-CLIENT_DONE.md']);
    const last = top[3];
    expect(last.kind).toBe('notPlan');
    expect(last.kind === 'notPlan' && [last.path, last.reason]).toEqual([DONE.path, 'a completion summary']);
    expect(labels(m.children(top[0]))).toEqual(['@DOCS-SITE', 'PLAN_DOCS-SITE_DONE.md']);
    expect(m.children(last)).toEqual([]); // nothing under it: no status is asked for
    expect(planDescription(DONE)).toBe('not a plan: a completion summary');
  });

  it('a plan is named by its label when another plan has the same name', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([API, plan('API-CLIENT', 'archive/API-CLIENT/PLAN_API-CLIENT.md', { label: 'archive/API-CLIENT' })]));
    const [archive, api] = m.children();
    const old = m.children(archive)[0];
    expect([api, old].map((n) => n.kind === 'plan' && planRef(n.plan))).toEqual(['@API-CLIENT', '@archive/API-CLIENT']);
  });

  it('show only with every plan, and are not counted as plans', () => {
    expect(matchesFilter(DONE, 'all')).toBe(true);
    for (const f of ['inProgress', 'needsFixes', 'complete'] as const) expect(matchesFilter(DONE, f)).toBe(false);
    const m = new TreeModel();
    m.setFolders([{ key: 'k1', name: 'one' }, { key: 'k2', name: 'two' }]);
    m.setStatus('k1', ws([API, DONE]));
    m.setStatus('k2', ws([DONE2]));
    expect(m.children().map((n) => (n.kind === 'folder' ? n.description : ''))).toEqual(['1 plan', '0 plans']);
    m.filter = 'inProgress';
    expect(labels(m.children(m.children()[0]))).toEqual(['@API-CLIENT']);
  });
});

describe('filter', () => {
  it('all / in progress / needs fixes / complete', () => {
    const all = [API, DOCS, REL];
    const pick = (f: Parameters<typeof matchesFilter>[1]) => all.filter((p) => matchesFilter(p, f)).map((p) => p.plan);
    expect(pick('all')).toEqual(['API-CLIENT', 'DOCS-SITE', 'RELEASE-0.1']);
    expect(pick('inProgress')).toEqual(['API-CLIENT', 'DOCS-SITE']);
    expect(pick('needsFixes')).toEqual(['API-CLIENT']);
    expect(pick('complete')).toEqual(['RELEASE-0.1']);
  });

  it('hides empty groups and says so when nothing matches', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([API, DOCS]));
    m.filter = 'needsFixes';
    expect(labels(m.children())).toEqual(['@API-CLIENT']);
    m.filter = 'complete';
    expect(labels(m.children())).toEqual(['No plans match "Complete".']);
  });
});

describe('live updates', () => {
  it('keeps ids and expansion across a new status; re-reads only expanded plans', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([API, DOCS]));
    const before = m.children();
    const apiId = planId('k', API.path);
    m.setExpanded(before[0].id, true); // the group
    m.setExpanded(apiId, true);
    m.setDetail('k', detail(API, [ach('1.1', 'complete'), ach('1.2', 'fix_pending')]));
    expect(m.expandedPlans('k')).toEqual([API.path]);
    // APPROVED_12 appears: the plan moves on
    const moved = { ...API, state: 'no_subplan' as const, next: '2.1', done: 2, pending_fixes: [] };
    m.setStatus('k', ws([moved, DOCS]));
    const after = m.children();
    expect(after.map((n) => n.id)).toEqual(before.map((n) => n.id));
    expect(m.isExpanded(apiId) && m.isExpanded(before[0].id)).toBe(true);
    const apiNode = after.find((n) => n.id === apiId)!;
    expect(apiNode.kind === 'plan' && planDescription(apiNode.plan)).toBe('2/3 · next 2.1 · no_subplan');
    // the old achievements stay on show until the re-read answers: no flicker to "Loading"
    expect(labels(m.children(apiNode))).toEqual(['1.1', '1.2']);
    m.setDetail('k', detail(moved, [ach('1.1', 'complete'), ach('1.2', 'complete'), ach('2.1', 'no_subplan')]));
    expect(labels(m.children(apiNode))).toEqual(['1.1', '1.2', '2.1']);
    m.setExpanded(apiId, false);
    expect(m.expandedPlans('k')).toEqual([]);
  });

  it('a plan deleted while expanded disappears with its details; a removed folder goes', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }, { key: 'j', name: 'b' }]);
    m.setStatus('k', ws([API, DOCS]));
    m.setExpanded(planId('k', API.path), true);
    m.setDetail('k', detail(API, [ach('1.1', 'complete')]));
    m.setStatus('k', ws([DOCS]));
    expect(m.folder('k')!.details.size).toBe(0);
    expect(m.expandedPlans('k')).toEqual([]);
    m.setFolders([{ key: 'j', name: 'b' }]);
    expect(m.folderKeys()).toEqual(['j']);
    expect(labels(m.children())).toEqual(['Loading plans…']);
    m.setError('j', 'perfd could not start in b');
    expect(labels(m.children())).toEqual(['perfd could not start in b']);
  });

  it('a folder without plans says so', () => {
    const m = new TreeModel();
    m.setFolders([{ key: 'k', name: 'a' }]);
    m.setStatus('k', ws([]));
    expect(labels(m.children())).toEqual(['No plans in this folder.']);
    const none = new TreeModel();
    expect(labels(none.children())).toEqual(['No folder holds perfd plans.']);
  });
});
