// activate() in a two-folder workspace, against the mocked vscode API and fake language clients:
// one session per folder with plans, the status bar following the active editor, commands
// routed by file (and a pick when nothing says which), the Plans view fed by perfd.status and
// updated by perfd/plansChanged, code actions rewritten, a run streamed into an editor.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';
import type { Node } from '../src/pure/tree';
import { resetMock, state } from './vscode-mock';

type Handler = (c: FakeClient, command: string, args: unknown[]) => unknown | Promise<unknown>;
const clients: FakeClient[] = [];

class FakeClient {
  static handler: Handler | undefined;
  state = 1;
  private stateListeners: ((e: { oldState: number; newState: number }) => void)[] = [];
  notifications = new Map<string, (p: unknown) => void>();
  requests: { command: string; args: unknown[] }[] = [];
  initializeResult = { capabilities: { executeCommandProvider: { commands: ['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.run', 'perfd.createSubplan', 'perfd.writeAnswer'] } } };
  constructor(public id: string, public name: string, public serverOptions: { command: string; args: string[]; options: { cwd: string } },
    public clientOptions: { middleware: Record<string, Function>; documentSelector: { pattern: string }[]; workspaceFolder: { name: string } }) {
    clients.push(this);
  }
  get cwd() {
    return this.serverOptions.options.cwd;
  }
  onDidChangeState(l: (e: { oldState: number; newState: number }) => void) { this.stateListeners.push(l); return { dispose() {} }; }
  onNotification(method: string, h: (p: unknown) => void) { this.notifications.set(method, h); return { dispose() {} }; }
  private set(s: number) { const old = this.state; this.state = s; for (const l of this.stateListeners) l({ oldState: old, newState: s }); }
  async start() { this.set(3); this.set(2); }
  isRunning() { return this.state === 2; }
  async stop() { this.set(1); }
  async dispose() {}
  async sendRequest(_method: string, params: { command: string; arguments: unknown[] }) {
    this.requests.push({ command: params.command, args: params.arguments });
    return FakeClient.handler!(this, params.command, params.arguments);
  }
}

vi.mock('vscode-languageclient/node', () => ({
  LanguageClient: FakeClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  RevealOutputChannelOn: { Never: 4 },
}));

let tmp: string;
let A: string;
let B: string;
let savedPath: string | undefined;

function plan(root: string, name: string, over: Record<string, unknown> = {}) {
  return { plan: name, path: `${root}/work-space/plans/${name}/PLAN_${name}.md`, title: name, state: 'no_subplan', next: '1.1', done: 0, total: 2, source: 'review files', ...over };
}

/** What each folder's server says: A has API-CLIENT (a fix pending), B has DOCS. */
const plans: Record<string, ReturnType<typeof plan>[]> = {};

beforeEach(() => {
  resetMock();
  clients.length = 0;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfd-multi-'));
  A = path.join(tmp, 'a');
  B = path.join(tmp, 'b');
  for (const d of [A, B]) fs.mkdirSync(path.join(d, 'work-space', 'plans'), { recursive: true });
  fs.mkdirSync(path.join(tmp, 'c')); // a folder without plans: never served
  const exe = path.join(tmp, 'perfd');
  fs.writeFileSync(exe, '#!/bin/sh\nexit 1\n');
  fs.chmodSync(exe, 0o755);
  savedPath = process.env.PATH;
  process.env.PATH = tmp;
  state.workspaceFolders = [A, B, path.join(tmp, 'c')].map((p, index) => ({ uri: vscode.Uri.file(p), name: path.basename(p), index }));
  plans[A] = [plan(A, 'API-CLIENT', { state: 'fix_pending', next: '1.2', done: 1, total: 3, pending_fixes: ['1.2'] })];
  plans[B] = [plan(B, 'DOCS', { parallel_options: ['2.2'] })];
  FakeClient.handler = (c, command, args) => {
    if (command === 'perfd.status' && !args.length) return { root: c.cwd, plans: plans[c.cwd], problems: [], plans_dir: `${c.cwd}/work-space/plans` };
    if (command === 'perfd.status') {
      const p = plans[c.cwd].find((x) => x.path === args[0]);
      if (!p) throw new Error('unknown plan');
      return { ...p, achievements: [{ number: '1.1', title: 'One', state: 'complete', ready: true }, { number: p.next, title: 'Next', state: p.state, ready: true }] };
    }
    if (command === 'perfd.generateNext') return { plan: 'X', plan_path: args[0], achievement: '1.1', state: 'no_subplan', source: 'review files', prompt: `prompt of ${c.cwd}`, parallel_options: [], problems: [] };
    throw new Error(`unexpected ${command}`);
  };
});

afterEach(async () => {
  const ext = await import('../src/extension');
  await ext.deactivate();
  process.env.PATH = savedPath;
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function activate() {
  const ext = await import('../src/extension');
  const e = await ext.activate({ subscriptions: [] } as unknown as vscode.ExtensionContext);
  await vi.waitFor(() => expect([...e.sessions.values()].every((s) => s.serverState === 'running')).toBe(true));
  return e;
}

function tree() {
  const t = state.trees.get('perfd.plans')!;
  return t as unknown as { provider: { getChildren(n?: Node): Node[]; getTreeItem(n: Node): vscode.TreeItem }; view: { expand(n: Node): void } };
}

function describeTree(nodes: Node[]): string[] {
  const t = tree();
  return nodes.map((n) => {
    const item = t.provider.getTreeItem(n);
    return `${item.label}${item.description ? ` — ${item.description}` : ''}`;
  });
}

describe('every workspace folder', () => {
  it('one session per folder with plans, each in its folder, each seeing only its own plan files', async () => {
    const ext = await activate();
    expect(clients.map((c) => c.cwd)).toEqual([A, B]);
    expect(clients[0].clientOptions.documentSelector[0].pattern).toBe(`${A}/**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md`);
    expect(clients[1].clientOptions.workspaceFolder.name).toBe('b');
    expect(clients[0].name).toBe('perfd (a)');
    expect(ext.sessions.size).toBe(2);
  });

  it('the status bar follows the active editor', async () => {
    const ext = await activate();
    clients[0].notifications.get('perfd/stats')!({ cache: { hits: 1, misses: 0, hit_rate: 1, lookup_p50_us: 300 } });
    clients[1].notifications.get('perfd/stats')!({ cache: { hits: 1, misses: 1, hit_rate: 0.5, lookup_p50_us: 300 } });
    state.activeEditor = { document: { uri: vscode.Uri.file(`${B}/work-space/plans/DOCS/PLAN_DOCS.md`), languageId: 'markdown', getText: () => '' } };
    state.editorListeners.fire(undefined);
    expect(state.statusBar?.text).toBe('perfd b 50% · 0.3 ms');
    state.activeEditor = { document: { uri: vscode.Uri.file(`${A}/x.md`), languageId: 'markdown', getText: () => '' } };
    state.editorListeners.fire(undefined);
    expect(state.statusBar?.text).toBe('perfd a 100% · 0.3 ms');
    expect(ext.state()).toBe('running');
  });

  it('commands go to the folder of the file, and ask which folder when nothing says', async () => {
    await activate();
    await vscode.commands.executeCommand('perfd.lens.generateNext', `${B}/work-space/plans/DOCS/PLAN_DOCS.md`);
    expect(state.clipboard).toBe(`prompt of ${B}`);
    expect(clients[0].requests.filter((r) => r.command === 'perfd.generateNext')).toHaveLength(0);
    // the palette with no editor open: which folder? (b), then its only plan
    let asked: string[] = [];
    state.pickAnswer = (items) => {
      asked = items.map((i) => i.label);
      return items.find((i) => i.label === 'b');
    };
    await vscode.commands.executeCommand('perfd.generateNextPrompt');
    expect(asked).toEqual(['a', 'b']);
    expect(state.clipboard).toBe(`prompt of ${B}`);
  });

  it('a folder removed while open: its session stops, its plans leave the view', async () => {
    const ext = await activate();
    await vi.waitFor(() => expect(describeTree(tree().provider.getChildren())).toEqual(['a — 1 plan', 'b — 1 plan']));
    const [a] = state.workspaceFolders!;
    state.workspaceFolders = state.workspaceFolders!.slice(1);
    state.folderListeners.fire({ added: [], removed: [a] });
    await vi.waitFor(() => expect(ext.sessions.size).toBe(1));
    expect(clients[0].state).toBe(1);
    expect(describeTree(tree().provider.getChildren())).toEqual(['@DOCS — 0/2 · next 1.1 · no_subplan']);
    expect(state.messages.filter((m) => m.level === 'error')).toEqual([]);
  });
});

describe('the Plans view', () => {
  it('lists both folders, their plans, and achievements of an expanded plan', async () => {
    await activate();
    const t = tree();
    await vi.waitFor(() => expect(describeTree(t.provider.getChildren())).toEqual(['a — 1 plan', 'b — 1 plan']));
    const [fa, fb] = t.provider.getChildren();
    const [api] = t.provider.getChildren(fa);
    expect(describeTree([api])).toEqual(['@API-CLIENT — 1/3 · next 1.2 · fix_pending']);
    expect(describeTree(t.provider.getChildren(fb))).toEqual(['@DOCS — 0/2 · next 1.1 · no_subplan']);
    t.view.expand(api);
    t.provider.getChildren(api); // asks for the achievements
    await vi.waitFor(() => expect(describeTree(t.provider.getChildren(api))).toEqual(['Pending fixes — 1.2', '1.1 One — complete', '1.2 Next — fix_pending · next']));
    expect(state.output.join('\n')).toMatch(/timing: activation to tree view populated: \d+ ms/);
  });

  it('perfd/plansChanged re-reads that folder and its expanded plans; expansion stays', async () => {
    await activate();
    const t = tree();
    await vi.waitFor(() => expect(t.provider.getChildren()).toHaveLength(2));
    const [api] = t.provider.getChildren(t.provider.getChildren()[0]);
    t.view.expand(api);
    t.provider.getChildren(api);
    await vi.waitFor(() => expect(t.provider.getChildren(api)).toHaveLength(3));
    plans[A] = [plan(A, 'API-CLIENT', { state: 'no_subplan', next: '2.1', done: 2, total: 3 })];
    const before = clients[0].requests.length;
    clients[0].notifications.get('perfd/plansChanged')!({ root: A, paths: [`${A}/work-space/plans/API-CLIENT/execution/feedbacks/APPROVED_12.md`] });
    await vi.waitFor(() => expect(describeTree(t.provider.getChildren(t.provider.getChildren()[0]))).toEqual(['@API-CLIENT — 2/3 · next 2.1 · no_subplan']));
    const again = clients[0].requests.slice(before).map((r) => r.command);
    expect(again).toEqual(['perfd.status', 'perfd.status']); // the folder, then the one expanded plan
    expect(clients[1].requests.slice(-1)[0].command).toBe('perfd.status'); // b untouched since its load
    const [apiAfter] = t.provider.getChildren(t.provider.getChildren()[0]);
    expect(t.provider.getTreeItem(apiAfter).collapsibleState).toBe(vscode.TreeItemCollapsibleState.Expanded);
    expect(describeTree(t.provider.getChildren(apiAfter))).toEqual(['1.1 One — complete', '2.1 Next — no_subplan · next']);
  });

  it('a plan deleted while expanded drops out without an error popup', async () => {
    await activate();
    const t = tree();
    await vi.waitFor(() => expect(t.provider.getChildren()).toHaveLength(2));
    const [api] = t.provider.getChildren(t.provider.getChildren()[0]);
    t.view.expand(api);
    plans[A] = [];
    clients[0].notifications.get('perfd/plansChanged')!({ root: A, paths: [] });
    await vi.waitFor(() => expect(describeTree(t.provider.getChildren(t.provider.getChildren()[0]))).toEqual([`No plans in this folder. — ${A}/work-space/plans`]));
    expect(state.messages).toEqual([]);
  });

  it('a plan shows its label; a document that is not a plan is a row of its own saying why, opening the file', async () => {
    plans[B] = [
      plan(B, 'DOCS', { label: 'archive/DOCS' }),
      plan(B, 'DOCS_DONE', { path: `${B}/work-space/plans/DOCS/PLAN_DOCS_DONE.md`, next: null, total: 0, not_plan: 'a completion summary' }),
    ];
    await activate();
    const t = tree();
    await vi.waitFor(() => expect(describeTree(t.provider.getChildren())).toEqual(['a — 1 plan', 'b — 1 plan']));
    const rows = t.provider.getChildren(t.provider.getChildren()[1]);
    // the summary sits in the plan's own folder: listed beside the plan, not under a group of that name
    expect(describeTree(rows)).toEqual(['@archive/DOCS — 0/2 · next 1.1 · no_subplan', 'PLAN_DOCS_DONE.md — not a plan: a completion summary']);
    const item = t.provider.getTreeItem(rows[1]);
    expect(item.contextValue).toBe('notPlan'); // none of the plan's inline actions (generate, run)
    expect(item.collapsibleState).toBe(vscode.TreeItemCollapsibleState.None);
    expect(item.command?.command).toBe('vscode.open');
    expect(String((item.command?.arguments?.[0] as vscode.Uri).fsPath)).toBe(`${B}/work-space/plans/DOCS/PLAN_DOCS_DONE.md`);
  });

  it('the filter shows only matching plans', async () => {
    await activate();
    const t = tree();
    await vi.waitFor(() => expect(t.provider.getChildren()).toHaveLength(2));
    state.pickAnswer = (items) => items.find((i) => i.label === 'Needs fixes');
    await vscode.commands.executeCommand('perfd.view.filter');
    expect(describeTree(t.provider.getChildren())).toEqual(['a — 1 plan', 'b — 0 plans']);
    expect(describeTree(t.provider.getChildren(t.provider.getChildren()[1]))).toEqual(['No plans match "Needs fixes".']);
  });
});

describe('code actions and live runs', () => {
  it('the middleware points code action commands at the extension', async () => {
    await activate();
    const actions = [
      { title: 'Copy prompt for 2.1', command: { title: 'Copy prompt for 2.1', command: 'perfd.generate', arguments: ['/p', '2.1'] } },
      { title: 'Create SUBPLAN for 2.1', command: { title: 'c', command: 'perfd.createSubplan', arguments: ['/p', '2.1'] } },
      { title: 'Run 2.1 with the model', command: { title: 'r', command: 'perfd.run', arguments: ['/p', '2.1'] } },
      { title: 'Open FIX for 1.2', command: { title: 'o', command: 'perfd.openFile', arguments: ['/f'] } },
      { title: 'Add a section', edit: {} },
      { title: 'bare', command: 'perfd.generate', arguments: [] },
    ];
    const out = await clients[0].clientOptions.middleware.provideCodeActions({}, {}, {}, {}, async () => actions);
    expect(out.map((a: { command?: string | { command: string } }) => (typeof a.command === 'string' ? a.command : a.command?.command))).toEqual([
      'perfd.lens.generate', 'perfd.action.createSubplan', 'perfd.lens.run', 'perfd.action.openFile', undefined, 'perfd.lens.generate',
    ]);
    for (const id of ['perfd.lens.generate', 'perfd.action.createSubplan', 'perfd.lens.run', 'perfd.action.openFile']) expect(state.commands.has(id)).toBe(true);
  });

  it('Create SUBPLAN asks the folder server, which writes and opens it', async () => {
    await activate();
    const planPath = `${B}/work-space/plans/DOCS/PLAN_DOCS.md`;
    const prev = FakeClient.handler!;
    FakeClient.handler = (c, command, args) =>
      command === 'perfd.createSubplan' ? { path: `${B}/work-space/plans/DOCS/subplans/SUBPLAN_DOCS_21.md`, shown: true } : prev(c, command, args);
    await vscode.commands.executeCommand('perfd.action.createSubplan', planPath, '2.1');
    expect(clients[1].requests.at(-1)).toEqual({ command: 'perfd.createSubplan', args: [planPath, '2.1'] });
    expect(state.messages.at(-1)?.text).toBe('perfd: created SUBPLAN_DOCS_21.md for 2.1 from the template.');
  });

  it('a run streams into an untitled editor as chunks arrive, then offers to save where the state asks', async () => {
    await activate();
    const planPath = `${A}/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md`;
    let release!: () => void;
    const seen: string[] = [];
    const prev = FakeClient.handler!;
    FakeClient.handler = async (c, command, args) => {
      if (command === 'perfd.writeAnswer') return { path: `${A}/work-space/plans/API-CLIENT/execution/feedbacks/FIX_12_RESOLUTION.md` };
      if (command !== 'perfd.run') return prev(c, command, args);
      const id = (args[2] as { stream: string }).stream;
      const chunk = c.notifications.get('perfd/runChunk')!;
      chunk({ id, achievement: '1.2', text: 'Hello ' });
      chunk({ id: 'someone-else', achievement: '1.2', text: 'NOT MINE' });
      chunk({ id, achievement: '1.2', text: 'world' });
      await vi.waitFor(() => expect(state.untitled[0]?.text).toBe('Hello world'));
      seen.push(state.untitled[0].text); // in the editor before the run answers
      await new Promise<void>((r) => (release = r));
      return { plan: 'API-CLIENT', achievement: '1.2', state: 'fix_pending', ok: true, text: 'Hello world', tokens: 3, write_path: `${A}/work-space/plans/API-CLIENT/execution/feedbacks/FIX_12_RESOLUTION.md` };
    };
    state.answers.push({ match: 'Save it to', answer: 'Save' });
    const running = vscode.commands.executeCommand('perfd.lens.run', planPath, '1.2');
    await vi.waitFor(() => expect(seen).toEqual(['Hello world']));
    release();
    await running;
    expect(state.untitled[0].languageId).toBe('markdown');
    const save = state.messages.find((m) => m.text.includes('Save it to'))!;
    expect(save.text).toBe('perfd: 1.2 (fix_pending) answered. Save it to work-space/plans/API-CLIENT/execution/feedbacks/FIX_12_RESOLUTION.md?');
    expect(clients[0].requests.at(-1)).toEqual({ command: 'perfd.writeAnswer', args: [planPath, '1.2', 'Hello world'] });
    expect(state.output.join('\n')).toMatch(/stream: first chunk shown at epoch \d+/);
  });

  it('a cancelled run: one message, what arrived stays unsaved, nothing written', async () => {
    await activate();
    const planPath = `${A}/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md`;
    const prev = FakeClient.handler!;
    FakeClient.handler = async (c, command, args) => {
      if (command !== 'perfd.run') return prev(c, command, args);
      c.notifications.get('perfd/runChunk')!({ id: (args[2] as { stream: string }).stream, achievement: '1.2', text: 'partial' });
      await vi.waitFor(() => expect(state.untitled[0]?.text).toBe('partial'));
      throw new Error('the run of 1.2 was cancelled');
    };
    await vscode.commands.executeCommand('perfd.lens.run', planPath, '1.2');
    expect(state.messages.map((m) => m.level + ': ' + m.text)).toEqual([
      'info: perfd: the run of 1.2 of PLAN_API-CLIENT.md was cancelled; what arrived stays in the editor, unsaved.',
    ]);
    expect(clients[0].requests.some((r) => r.command === 'perfd.writeAnswer')).toBe(false);
  });

  it('the run editor closed mid-stream: the whole answer opens in a new one, nothing lost', async () => {
    await activate();
    const planPath = `${A}/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md`;
    const prev = FakeClient.handler!;
    FakeClient.handler = async (c, command, args) => {
      if (command !== 'perfd.run') return prev(c, command, args);
      const id = (args[2] as { stream: string }).stream;
      c.notifications.get('perfd/runChunk')!({ id, achievement: '1.2', text: 'Hel' });
      await vi.waitFor(() => expect(state.untitled[0]?.text).toBe('Hel'));
      state.untitled[0].closed = true; // the user closes it
      c.notifications.get('perfd/runChunk')!({ id, achievement: '1.2', text: 'lo' });
      return { plan: 'API-CLIENT', achievement: '1.2', state: 'fix_pending', ok: true, text: 'Hello', write_path: null };
    };
    await vscode.commands.executeCommand('perfd.lens.run', planPath, '1.2');
    expect(state.untitled.map((d) => d.text)).toEqual(['Hel', 'Hello']);
    expect(state.messages.map((m) => m.text)).toEqual(['perfd: 1.2 (fix_pending) answered.']);
  });

  it('the perfd.model setting goes with every streamed run; "Run with Model…" asks for one', async () => {
    await activate();
    const planPath = `${A}/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md`;
    const sent: unknown[] = [];
    const prev = FakeClient.handler!;
    FakeClient.handler = async (c, command, args) => {
      if (command !== 'perfd.run') return prev(c, command, args);
      sent.push(args[2]);
      return { plan: 'API-CLIENT', achievement: '1.2', state: 'fix_pending', ok: true, text: 'Hi', write_path: null };
    };
    await vscode.commands.executeCommand('perfd.lens.run', planPath, '1.2');
    state.config['perfd.model'] = 'other';
    await vscode.commands.executeCommand('perfd.lens.run', planPath, '1.2');
    state.inputAnswer = 'cheap'; // this server does not offer perfd.models: an input box asks
    await vscode.commands.executeCommand('perfd.runWithModel', planPath);
    expect(sent.map((o) => ({ ...(o as object), stream: typeof (o as { stream: unknown }).stream }))).toEqual([
      { stream: 'string' }, { stream: 'string', model: 'other' }, { stream: 'string', model: 'cheap' }]);
  });
});
