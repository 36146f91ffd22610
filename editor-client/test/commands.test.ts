import { beforeEach, describe, expect, it } from 'vitest';
import { PerfdApi } from '../src/api';
import { Commands, Host, NOT_RUNNING, RUN_NOT_AVAILABLE, Ui } from '../src/commands';
import type { PickItem, ServerState } from '../src/pure/format';
import { DEFAULTS, RESTRICTED_MESSAGE, Settings } from '../src/pure/settings';
import type { GenerateResult, PlanStatus, StatsPayload, WorkspaceStatus } from '../src/pure/types';

const ROOT = '/w';
const status: WorkspaceStatus = {
  root: ROOT,
  plans: [
    { plan: 'API-CLIENT', path: '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md', title: 'API client', state: 'no_subplan', next: '1.2', done: 1, total: 3, source: 'review files' },
    { plan: 'DOCS', path: '/w/work-space/plans/DOCS/PLAN_DOCS.md', title: 'Docs', state: 'plan_complete', next: null, done: 2, total: 2, source: 'review files' },
  ],
  problems: [],
};
const planStatus: PlanStatus = {
  ...status.plans[0],
  achievements: [
    { number: '1.1', title: 'One', state: 'complete', subplan: '/w/work-space/plans/API-CLIENT/subplans/SUBPLAN_API-CLIENT_11.md' },
    { number: '1.2', title: 'Two', state: 'no_subplan' },
    { number: '1.3', title: 'Three', state: 'active_execution', active_execution: '/w/x/EXECUTION_TASK_API-CLIENT_13_01.md' },
  ],
};
const gen = (plan: string, ach: string | null): GenerateResult => ({
  plan, plan_path: `/w/${plan}`, achievement: ach, state: 'no_subplan', source: 'plan marks', prompt: `PROMPT ${plan} ${ach}`,
  parallel_options: [], problems: [],
});

interface Call { command: string; arguments: unknown[] }

/**
 * Stands in for the server's engine, which says which plan owns a path: here, a plan's PLAN file
 * or anything in its folder; any other path is not a plan (an error, as the server answers).
 */
function ownerOf(ref: string): string {
  const plan = status.plans.find((p) => ref === p.path || ref.startsWith(p.path.replace(/[^/]*$/, '')));
  if (!plan) throw Object.assign(new Error(`${ref} is not a plan of this workspace`), { code: -32603 });
  return plan.plan;
}

class FakeServer {
  calls: Call[] = [];
  fail: string | undefined;
  async sendRequest(method: string, params: unknown): Promise<unknown> {
    expect(method).toBe('workspace/executeCommand');
    const p = params as Call;
    this.calls.push(p);
    if (this.fail) throw Object.assign(new Error(this.fail), { code: -32603 });
    const [plan, n] = p.arguments as string[];
    switch (p.command) {
      case 'perfd.status':
        if (!p.arguments.length) return status;
        return ownerOf(plan) === 'DOCS' ? { ...status.plans[1], achievements: [{ number: '2.1', title: 'Docs one', state: 'no_subplan' }] } : planStatus;
      case 'perfd.generateNext':
        return gen(ownerOf(plan), '1.2');
      case 'perfd.generate':
        return gen(ownerOf(plan), n);
      case 'perfd.stats':
        return { cache: { entries: 1, hits: 1, misses: 1, hit_rate: 0.5, lookup_p50_us: 10 } } satisfies StatsPayload;
      case 'perfd.clearCache':
        return { cleared: 7 };
      case 'perfd.run':
        return { answer: 'done' };
      case 'perfd.models':
        return { models: ['cheap', 'other'], waiting: ['third'] };
    }
    throw new Error(`unknown command ${p.command}`);
  }
}

class FakeUi implements Ui {
  log: string[] = [];
  docs = new Map<string, string>();
  clipboard = '';
  active: string | undefined;
  answer: string | undefined;
  pickWith: (labels: string[]) => number | undefined = () => 0;
  picks: string[][] = [];
  config: Settings = { ...DEFAULTS };
  opened: string[] = [];
  placeholders: string[] = [];
  runLive?: Ui['runLive'];
  input?: Ui['input'];
  async pick<T>(items: PickItem<T>[], placeholder = ''): Promise<T | undefined> {
    const labels = items.map((i) => i.label);
    this.picks.push(labels);
    this.placeholders.push(placeholder);
    const i = this.pickWith(labels);
    return i === undefined ? undefined : items[i].value;
  }
  async info(m: string, ...a: string[]) { this.log.push(`info: ${m}${a.length ? ` [${a.join('|')}]` : ''}`); return this.answer; }
  async warn(m: string) { this.log.push(`warn: ${m}`); return undefined; }
  async error(m: string, ...a: string[]) { this.log.push(`error: ${m}${a.length ? ` [${a.join('|')}]` : ''}`); return this.answer; }
  order: string[] = [];
  async copy(t: string) { this.clipboard = t; this.order.push('copy'); }
  async showDocument(name: string, md: string) { this.docs.set(name, md); this.order.push(`show: ${name}`); }
  async openFile(f: string) { this.opened.push(f); }
  activeFile() { return this.active; }
  settings() { return this.config; }
  progress<T>(_t: string, task: () => Promise<T>) { return task(); }
}

class FakeHost implements Host {
  running = true;
  restarted = 0;
  outputShown = 0;
  stats: StatsPayload | undefined;
  restricted = false; // VS Code's Restricted Mode
  constructor(public server: FakeServer, public serverCommands = ['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.stats', 'perfd.clearCache']) {}
  api() { return this.running ? new PerfdApi(this.server, this.serverCommands, () => this.restricted) : undefined; }
  state(): ServerState { return this.running ? 'running' : 'stopped'; }
  lastStats() { return this.stats; }
  async restart() { this.restarted++; }
  showOutput() { this.outputShown++; }
  timings: [string, number, string?][] = [];
  timing(what: string, ms: number, note?: string) { this.timings.push([what, ms, note]); }
}

let server: FakeServer;
let ui: FakeUi;
let host: FakeHost;
let cmds: Commands;
beforeEach(() => {
  server = new FakeServer();
  ui = new FakeUi();
  host = new FakeHost(server);
  cmds = new Commands(host, ui);
});

describe('Generate Next Prompt', () => {
  it('copies to the clipboard before opening the document, and reports how long that took', async () => {
    ui.active = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
    await cmds.generateNextPrompt();
    expect(ui.order[0]).toBe('copy');
    expect(ui.order[1]).toMatch(/^show: /);
    expect(host.timings.map(([w]) => w)).toEqual(['generate next prompt to clipboard']);
    expect(host.timings[0][1]).toBeGreaterThanOrEqual(0);
    expect(host.timings[0][2]).toMatch(/^answer \d+ ms, clipboard \d+ ms$/);
  });

  it('hands the active SUBPLAN file to the server, which finds its plan: no status, no pick', async () => {
    const sub = '/w/work-space/plans/DOCS/subplans/SUBPLAN_DOCS_01.md';
    ui.active = sub;
    const r = await cmds.generateNextPrompt();
    expect(r?.plan).toBe('DOCS');
    expect(ui.picks).toEqual([]);
    expect(server.calls).toEqual([{ command: 'perfd.generateNext', arguments: [sub] }]);
    expect(ui.clipboard).toBe('PROMPT DOCS 1.2');
    expect(ui.docs.get('DOCS 1.2 prompt.md')).toBe('PROMPT DOCS 1.2');
    expect(ui.log).toContain('info: perfd: prompt for @DOCS 1.2 (📄 no SUBPLAN yet) copied to the clipboard.');
  });

  it('every call on a plan file is one request, the first included', async () => {
    ui.active = '/w/work-space/plans/DOCS/execution/EXECUTION_TASK_DOCS_01_01.md';
    await cmds.generateNextPrompt();
    await cmds.generateNextPrompt();
    expect(server.calls.map((c) => c.command)).toEqual(['perfd.generateNext', 'perfd.generateNext']);
  });

  it('a plan file the server finds no plan for: the pick, then the picked plan', async () => {
    const stray = '/w/elsewhere/SUBPLAN_OLD_01.md';
    ui.active = stray;
    ui.pickWith = (labels) => labels.indexOf('@DOCS');
    const r = await cmds.generateNextPrompt();
    expect(r?.plan).toBe('DOCS');
    expect(server.calls).toEqual([
      { command: 'perfd.generateNext', arguments: [stray] },
      { command: 'perfd.status', arguments: [] },
      { command: 'perfd.generateNext', arguments: ['/w/work-space/plans/DOCS/PLAN_DOCS.md'] },
    ]);
    expect(ui.log.filter((l) => l.startsWith('error'))).toEqual([]);
  });

  it('a menu file argument wins over the active editor', async () => {
    ui.active = '/w/work-space/plans/DOCS/PLAN_DOCS.md';
    const r = await cmds.generateNextPrompt('/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md');
    expect(r?.plan).toBe('API-CLIENT');
  });

  it('asks which plan when no plan file is active, actionable plans first', async () => {
    ui.active = '/w/README.md';
    ui.pickWith = (labels) => labels.indexOf('@DOCS');
    const r = await cmds.generateNextPrompt();
    expect(ui.picks).toEqual([['@API-CLIENT', '@DOCS']]);
    expect(r?.plan).toBe('DOCS');
  });

  it('does nothing when the pick is cancelled', async () => {
    ui.pickWith = () => undefined;
    expect(await cmds.generateNextPrompt()).toBeUndefined();
    expect(server.calls.map((c) => c.command)).toEqual(['perfd.status']);
    expect(ui.log).toEqual([]);
  });

  it('respects perfd.copyToClipboard = false', async () => {
    ui.config = { ...DEFAULTS, copyToClipboard: false };
    ui.active = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
    await cmds.generateNextPrompt();
    expect(ui.clipboard).toBe('');
    expect(ui.docs.size).toBe(1);
    expect(ui.log[0]).toContain('generated.');
  });

  it('a clipboard failure is a warning, the prompt is still shown', async () => {
    ui.active = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
    ui.copy = async () => {
      throw new Error('denied');
    };
    const r = await cmds.generateNextPrompt();
    expect(r?.plan).toBe('API-CLIENT');
    expect(ui.docs.size).toBe(1);
    expect(ui.log).toEqual([
      'warn: perfd: could not copy the prompt to the clipboard: denied',
      'info: perfd: prompt for @API-CLIENT 1.2 (📄 no SUBPLAN yet) generated.',
    ]);
  });

  it('uses the only plan without asking', async () => {
    const one = { ...status, plans: [status.plans[1]] };
    server.sendRequest = async (_m, p) => ((p as Call).command === 'perfd.status' ? one : gen('DOCS', null));
    await cmds.generateNextPrompt();
    expect(ui.picks).toEqual([]);
    expect(ui.docs.has('DOCS next prompt.md')).toBe(true);
  });

  it('warns when there are no plans', async () => {
    server.sendRequest = async () => ({ root: '/empty', plans: [] });
    expect(await cmds.generateNextPrompt()).toBeUndefined();
    expect(ui.log).toEqual(['warn: perfd: no plans found under /empty.']);
  });

  it('shows server errors', async () => {
    server.fail = 'unknown plan @NOPE';
    await cmds.generateNextPrompt();
    expect(ui.log).toEqual(['error: perfd: unknown plan @NOPE']);
  });

  it('offers a restart when the server is not running', async () => {
    host.running = false;
    ui.answer = 'Restart Daemon';
    await cmds.generateNextPrompt();
    expect(ui.log).toEqual([`error: ${NOT_RUNNING} [Restart Daemon|Show Output]`]);
    expect(host.restarted).toBe(1);
    ui.answer = 'Show Output';
    await cmds.clearCache();
    expect(host.outputShown).toBe(1);
  });
});

describe('Generate Prompt for Achievement', () => {
  it('picks an achievement, with its state', async () => {
    ui.active = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
    ui.pickWith = (labels) => labels.indexOf('1.3 Three');
    const r = await cmds.generateForAchievement();
    expect(ui.picks[0]).toEqual(['1.2 Two', '1.3 Three', '1.1 One']);
    expect(server.calls.at(-1)).toEqual({ command: 'perfd.generate', arguments: ['/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md', '1.3'] });
    expect(r?.achievement).toBe('1.3');
    expect(ui.clipboard).toBe('PROMPT API-CLIENT 1.3');
  });

  it('from a SUBPLAN: the server says whose it is, the prompt is asked of that PLAN', async () => {
    ui.active = '/w/work-space/plans/DOCS/subplans/SUBPLAN_DOCS_21.md';
    const r = await cmds.generateForAchievement();
    expect(server.calls).toEqual([
      { command: 'perfd.status', arguments: ['/w/work-space/plans/DOCS/subplans/SUBPLAN_DOCS_21.md'] },
      { command: 'perfd.generate', arguments: ['/w/work-space/plans/DOCS/PLAN_DOCS.md', '2.1'] },
    ]);
    expect(r?.plan).toBe('DOCS');
  });
});

describe('Run Next With Model', () => {
  it('says it is not available when the server lacks perfd.run', async () => {
    expect(await cmds.runNext()).toBeUndefined();
    expect(ui.log).toEqual([`info: ${RUN_NOT_AVAILABLE}`]);
    expect(server.calls).toEqual([]);
  });
  it('runs when the server offers perfd.run, on the plan the server says owns the file', async () => {
    host.serverCommands = [...host.serverCommands, 'perfd.run'];
    ui.active = '/w/work-space/plans/API-CLIENT/subplans/SUBPLAN_API-CLIENT_11.md';
    expect(await cmds.runNext()).toEqual({ answer: 'done' });
    expect(server.calls).toEqual([
      { command: 'perfd.status', arguments: ['/w/work-space/plans/API-CLIENT/subplans/SUBPLAN_API-CLIENT_11.md'] },
      { command: 'perfd.run', arguments: ['/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md'] },
    ]);
    expect(ui.docs.get('perfd run.md')).toContain('"answer": "done"');
  });
  it('a failed run is reported, never retried on a picked plan', async () => {
    host.serverCommands = [...host.serverCommands, 'perfd.run'];
    ui.active = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
    const real = server.sendRequest.bind(server);
    server.sendRequest = async (method: string, params: unknown) => {
      if ((params as Call).command === 'perfd.run') throw new Error('the model call failed: 500');
      return real(method, params);
    };
    expect(await cmds.runNext()).toBeUndefined();
    expect(ui.picks).toEqual([]);
    expect(ui.log).toEqual(['error: perfd: the model call failed: 500']);
  });
});

describe('named models', () => {
  const PLAN = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
  const runs = () => server.calls.filter((c) => c.command === 'perfd.run').map((c) => c.arguments);
  beforeEach(() => {
    host.serverCommands = [...host.serverCommands, 'perfd.run'];
    ui.active = PLAN;
  });

  it('every run takes the perfd.model setting; none named, [llm] (no model option sent)', async () => {
    await cmds.runNext();
    await cmds.runAchievement(PLAN, '1.3');
    ui.config = { ...DEFAULTS, model: 'other' };
    await cmds.runNext();
    await cmds.runAchievement(PLAN, '1.3');
    expect(runs()).toEqual([[PLAN], [PLAN, '1.3'], [PLAN, null, { model: 'other' }], [PLAN, '1.3', { model: 'other' }]]);
  });

  it('a live run is handed the model too', async () => {
    const live: [string, string | null, string][] = [];
    ui.runLive = async (_api: unknown, plan: string, achievement: string | null, model: string) => void live.push([plan, achievement, model]);
    ui.config = { ...DEFAULTS, model: 'cheap' };
    await cmds.runNext();
    await cmds.runAchievement(PLAN, '1.3');
    expect(live).toEqual([[PLAN, null, 'cheap'], [PLAN, '1.3', 'cheap']]);
  });

  it('Run with Model… offers the names the server tells, [llm] first, and runs the next step with the one picked', async () => {
    host.serverCommands = [...host.serverCommands, 'perfd.models'];
    ui.pickWith = (labels) => labels.indexOf('cheap');
    await cmds.runWithModel();
    expect(ui.picks).toEqual([['[llm]', 'cheap', 'other']]);
    expect(ui.placeholders[0]).toContain('third waits for `perfd trust`');
    ui.pickWith = (labels) => labels.indexOf('[llm]');
    await cmds.runWithModel();
    ui.pickWith = () => undefined; // dismissed: no run
    await cmds.runWithModel();
    expect(runs()).toEqual([[PLAN, null, { model: 'cheap' }], [PLAN]]);
  });

  it('Run with Model… asks for a name when the server cannot tell them', async () => {
    const asked: [string, string][] = [];
    let typed: string | undefined = ' mine ';
    ui.input = async (prompt: string, value: string) => (asked.push([prompt, value]), typed);
    ui.config = { ...DEFAULTS, model: 'other' };
    await cmds.runWithModel();
    typed = undefined; // dismissed
    await cmds.runWithModel();
    expect(asked.map(([, v]) => v)).toEqual(['other', 'other']); // the setting, to keep or change
    expect(runs()).toEqual([[PLAN, null, { model: 'mine' }]]);
    expect(server.calls.map((c) => c.command)).not.toContain('perfd.models');
  });

  it('Restricted Mode: Run with Model… refuses before asking anything, and no run is sent', async () => {
    host.serverCommands = [...host.serverCommands, 'perfd.models'];
    host.restricted = true;
    ui.input = async () => 'other';
    await cmds.runWithModel();
    expect(ui.picks).toEqual([]);
    expect(server.calls).toEqual([]);
    expect(ui.log).toEqual([`error: ${RESTRICTED_MESSAGE}`]);
    ui.config = { ...DEFAULTS, model: 'other' };
    await cmds.runNext();
    expect(runs()).toEqual([]);
  });
});

describe('status, stats, cache', () => {
  it('shows the status of all plans', async () => {
    await cmds.showStatus();
    expect(ui.docs.get('perfd status.md')).toContain('| @API-CLIENT | API client |');
  });
  it('shows fresh stats, or the last notification when the server is down', async () => {
    await cmds.showStats();
    expect(ui.docs.get('perfd stats.md')).toContain('50% (1 hits, 1 misses)');
    host.running = false;
    host.stats = { cache: { hits: 3, misses: 1, hit_rate: 0.75 } };
    await cmds.showStats();
    expect(ui.docs.get('perfd stats.md')).toContain('Server: **stopped**');
    expect(ui.docs.get('perfd stats.md')).toContain('75%');
  });
  it('clears the cache', async () => {
    expect(await cmds.clearCache()).toBe(7);
    expect(ui.log).toEqual(['info: perfd: cache cleared (7 entries).']);
  });
});

describe('code lens commands', () => {
  const planPath = '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md';
  it('Next: … — Generate', async () => {
    await cmds.lensGenerateNext(planPath);
    expect(server.calls).toEqual([{ command: 'perfd.generateNext', arguments: [planPath] }]);
    expect(ui.clipboard).toBe('PROMPT API-CLIENT 1.2');
  });
  it('Generate prompt', async () => {
    await cmds.lensGenerate(planPath, '1.3');
    expect(server.calls).toEqual([{ command: 'perfd.generate', arguments: [planPath, '1.3'] }]);
  });
  it('state lens: achievement info with actions', async () => {
    ui.answer = 'Generate prompt';
    await cmds.lensStatus(planPath, '1.3');
    expect(ui.log[0]).toBe('info: perfd: @API-CLIENT 1.3 Three — ▶ active execution · active: EXECUTION_TASK_API-CLIENT_13_01.md [Generate prompt|Open EXECUTION_TASK_API-CLIENT_13_01.md]');
    expect(server.calls.at(-1)).toEqual({ command: 'perfd.generate', arguments: [planPath, '1.3'] });
    ui.answer = 'Open SUBPLAN_API-CLIENT_11.md';
    await cmds.lensStatus(planPath, '1.1');
    expect(ui.log.at(-1)).toContain('[Open SUBPLAN_API-CLIENT_11.md]');
    expect(ui.opened).toEqual(['/w/work-space/plans/API-CLIENT/subplans/SUBPLAN_API-CLIENT_11.md']);
  });
  it('plan state lens: the plan status document', async () => {
    await cmds.lensStatus(planPath);
    expect(ui.docs.get('API-CLIENT status.md')).toContain('# @API-CLIENT — API client');
  });
});

describe('documents named PLAN_ that are not plans', () => {
  const done = {
    plan: 'API-CLIENT_COMPLETE', path: '/w/work-space/plans/API-CLIENT/PLAN_API-CLIENT_COMPLETE.md', title: 'API client: done',
    state: 'no_subplan', next: null, done: 0, total: 0, source: 'plan marks', not_plan: 'a completion summary',
  } as const;

  it('are never offered as a plan: the only plan is taken without asking, and the warning says why none', async () => {
    server.sendRequest = async (_m, p) => ((p as Call).command === 'perfd.status' ? { ...status, plans: [done, status.plans[1]] } : gen('DOCS', null));
    ui.active = '/w/README.md';
    await cmds.generateNextPrompt();
    expect(ui.picks).toEqual([]);
    expect(ui.docs.has('DOCS next prompt.md')).toBe(true);

    server.sendRequest = async () => ({ root: '/w', plans: [done], problems: [] });
    expect(await cmds.generateNextPrompt()).toBeUndefined();
    expect(ui.log.at(-1)).toBe('warn: perfd: no plans found under /w (1 document named PLAN_ says it is not a plan).');
  });

  it('have no achievements to pick: the warning says it is not a plan, and why', async () => {
    server.sendRequest = async () => ({ ...done, achievements: [] });
    ui.active = done.path;
    expect(await cmds.generateForAchievement()).toBeUndefined();
    expect(ui.picks).toEqual([]);
    expect(ui.log).toEqual(['warn: perfd: PLAN_API-CLIENT_COMPLETE.md is not a plan: a completion summary.']);
  });

  it('the status document lists them apart, and names a plan by its label', async () => {
    const archived = { ...status.plans[1], label: 'archive/DOCS' };
    server.sendRequest = async () => ({ ...status, plans: [status.plans[0], archived, done] });
    await cmds.showStatus();
    const md = ui.docs.get('perfd status.md') ?? '';
    expect(md).toContain('| @archive/DOCS | Docs |');
    expect(md).not.toContain('API-CLIENT_COMPLETE |');
    expect(md).toContain('- `work-space/plans/API-CLIENT/PLAN_API-CLIENT_COMPLETE.md`: not a plan: a completion summary');
  });
});
