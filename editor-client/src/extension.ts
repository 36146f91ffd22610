// VS Code glue: one language-client session per workspace folder with plans (src/session.ts),
// the perfd view (src/view.ts), live runs (src/liveRun.ts), the status bar (following the
// active editor's folder), the read-only documents and the commands.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import type { PerfdApi } from './api';
import { Commands, Host, NOT_RUNNING, Ui } from './commands';
import { liveRun, RunHost } from './liveRun';
import { registerMcpServers } from './mcp';
import { mcpDefinitions } from './pure/mcp';
import { ServerState, statsMarkdown, statusBarModel } from './pure/format';
import { Dashboard } from './dashboard';
import { historyCommand, INSTALL_HELP, isPlanFile, readSettings, resolveExecutable, RESTART_KEYS, serverCommand, Settings } from './pure/settings';
import type { StreamBuffer } from './pure/stream';
import { FILTERS, nextStepFile, Node } from './pure/tree';
import type { AchievementStatus, PlansChangedParams, RunChunkParams, StatsPayload } from './pure/types';
import { FolderSession, SessionHost } from './session';
import { PlansView, ViewHost } from './view';

export const SCHEME = 'perfd';
const STATS_DOC = 'perfd stats.md';

/** Read-only virtual documents (prompts, status, stats) under the perfd: scheme. */
export class DocProvider implements vscode.TextDocumentContentProvider {
  private readonly docs = new Map<string, string>();
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;

  uri(name: string): vscode.Uri {
    return vscode.Uri.from({ scheme: SCHEME, path: '/' + name });
  }

  set(name: string, text: string): vscode.Uri {
    const uri = this.uri(name);
    this.docs.set(uri.path, text);
    this.emitter.fire(uri);
    return uri;
  }

  has(name: string): boolean {
    return this.docs.has('/' + name);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.docs.get(uri.path) ?? '';
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The workspace folder holding `file` (VS Code's rule: the innermost folder). */
function workspaceFolderOf(file: string | undefined): vscode.WorkspaceFolder | undefined {
  return file ? vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file)) : undefined;
}

export class PerfdExtension implements Host, SessionHost, ViewHost, RunHost, vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly statusBar: vscode.StatusBarItem;
  readonly docs = new DocProvider();
  readonly commands: Commands;
  readonly view: PlansView;
  readonly dashboard: Dashboard;
  /** One session per workspace folder that holds a perfd workspace, by folder URI. */
  readonly sessions = new Map<string, FolderSession>();
  /** Live runs in progress, by stream id (perfd/runChunk routes to them). */
  readonly streams = new Map<string, StreamBuffer>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly activatedAt = Date.now();
  private readonly timedOnce = new Set<string>();
  private missingShown = false;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('perfd');
    this.statusBar = vscode.window.createStatusBarItem('perfd.status', vscode.StatusBarAlignment.Right, 100);
    this.statusBar.name = 'perfd';
    this.commands = new Commands(this, this.ui());
    this.view = new PlansView(this);
    this.dashboard = new Dashboard(context.extensionUri, () => this.historySource(), (l) => this.output.appendLine(l));
    this.render();
  }

  /** The first session's client (tests and single-folder callers). */
  get client(): LanguageClient | undefined {
    return this.current()?.client;
  }

  // -- which session ---------------------------------------------------------------------------

  /** The session of the active editor's folder, else the only one, else the first. */
  current(): FolderSession | undefined {
    const f = workspaceFolderOf(activeFile());
    const mine = f && this.sessions.get(f.uri.toString());
    return mine ?? this.sessions.values().next().value;
  }

  sessionFor(file: string | undefined): FolderSession | undefined {
    const f = workspaceFolderOf(file);
    return f ? this.sessions.get(f.uri.toString()) : undefined;
  }

  // -- Host (the command handlers) --------------------------------------------------------------

  api(file?: string): PerfdApi | undefined {
    const own = this.sessionFor(file) ?? this.sessionFor(activeFile());
    if (own) return own.api();
    if (this.sessions.size === 1) return this.sessions.values().next().value?.api();
    return undefined;
  }

  async chooseApi(): Promise<PerfdApi | undefined | null> {
    const running = [...this.sessions.values()];
    if (running.length < 2) return undefined;
    const picked = await vscode.window.showQuickPick(
      running.map((s) => ({ label: s.folder.name, description: s.path, detail: s.serverState === 'running' ? undefined : s.serverState, session: s })),
      { placeHolder: 'Which folder?' },
    );
    return picked ? picked.session.api() : null;
  }

  state(): ServerState {
    return this.current()?.serverState ?? 'idle';
  }

  lastStats(): StatsPayload | undefined {
    return this.current()?.stats;
  }

  showOutput(): void {
    this.output.show(true);
  }

  /** `perfd stats --history --json` for the dashboard: the active folder's, with the executable its server runs. */
  private historySource(): { command: string; args: string[]; cwd?: string } | undefined {
    const cwd = this.current()?.path;
    const s = this.settings(cwd);
    const exe = resolveExecutable(s.path, {
      PATH: process.env.PATH, PATHEXT: process.env.PATHEXT, platform: process.platform, isExecutable, cwd, home: os.homedir(),
    });
    return exe ? { ...historyCommand({ ...s, path: exe }), cwd } : undefined;
  }

  settings(folder?: string): Settings {
    const uri = folder ? vscode.Uri.file(folder) : undefined;
    const cfg = vscode.workspace.getConfiguration('perfd', uri);
    return readSettings((k) => cfg.get(k), {
      home: os.homedir(),
      workspaceFolder: folder ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
    });
  }

  async restart(): Promise<void> {
    this.output.appendLine('perfd: restarting');
    this.missingShown = false; // a restart that finds no executable again says so again
    if (this.sessions.size === 0) {
      await this.startFolders(true);
      return;
    }
    await Promise.all([...this.sessions.values()].map((s) => s.restart()));
    void this.view.refreshAll();
  }

  timing(what: string, ms: number, note?: string): void {
    this.output.appendLine(`perfd: timing: ${what}: ${ms} ms${note ? ` (${note})` : ''}`);
  }

  /** A startup figure, from activation, the first time only (not after a restart). */
  sinceActivation(what: string, note?: string): void {
    if (this.timedOnce.has(what)) return;
    this.timedOnce.add(what);
    this.timing(what, Date.now() - this.activatedAt, note);
  }

  // -- SessionHost -------------------------------------------------------------------------------

  changed(session: FolderSession): void {
    this.render();
    if (session.serverState === 'running') void this.view.refresh(session.key);
    else if (session.serverState === 'missing' || session.serverState === 'failed' || session.serverState === 'stopped') {
      this.view.model.setError(session.key, session.detail?.replace(/`/g, '') ?? `perfd is ${session.serverState}`);
      void this.view.refresh(session.key);
    }
  }

  onStats(session: FolderSession, stats: StatsPayload, source: 'notification' | 'perfd stats --json'): void {
    this.render();
    if (session === this.current()) this.dashboard.onStats(stats);
    this.sinceActivation('activation to first status-bar stats', `from ${source}`);
    if (source === 'notification') this.sinceActivation('activation to first perfd/stats notification');
    if (this.docs.has(STATS_DOC) && session === this.current()) {
      this.docs.set(STATS_DOC, statsMarkdown(stats, session.serverState, new Date()));
    }
  }

  onPlansChanged(session: FolderSession, params: PlansChangedParams): void {
    this.output.appendLine(`perfd [${session.folder.name}]: plans changed (${params.paths.length} path${params.paths.length === 1 ? '' : 's'}) at epoch ${Date.now()}`);
    void this.view.refresh(session.key, { since: Date.now(), what: 'perfd/plansChanged to view updated' });
  }

  onRunChunk(params: RunChunkParams): void {
    const stream = this.streams.get(params.id);
    if (!stream) return; // a run that ended or was cancelled: late pieces are dropped
    if (!stream.received) this.log(`stream: first chunk received at epoch ${Date.now()}`);
    stream.push(params.text);
  }

  missingOnce(_message: string, show: () => void): void {
    if (this.missingShown) return;
    this.missingShown = true;
    show();
  }

  async showDocument(name: string, markdown: string): Promise<void> {
    await this.ui().showDocument(name, markdown);
  }

  // -- ViewHost / RunHost --------------------------------------------------------------------------

  apiFor(folderKey: string): PerfdApi | undefined {
    return this.sessions.get(folderKey)?.api();
  }

  problemOf(folderKey: string): string | undefined {
    const s = this.sessions.get(folderKey);
    if (!s) return 'This folder is not served by perfd.';
    if (s.serverState === 'running' || s.serverState === 'starting' || s.serverState === 'idle') return undefined;
    return s.detail?.replace(/`/g, '') ?? `perfd is ${s.serverState}`;
  }

  log(line: string): void {
    this.output.appendLine(`perfd: ${line}`);
  }

  root(plan: string): string | undefined {
    return workspaceFolderOf(plan)?.uri.fsPath;
  }

  // -- status bar ----------------------------------------------------------------------------------

  render(): void {
    const s = this.current();
    const m = statusBarModel(s?.serverState ?? 'idle', s?.stats, s?.detail);
    const many = this.sessions.size > 1 && s;
    this.statusBar.text = many ? m.text.replace(/^perfd/, `perfd ${s.folder.name}`) : m.text;
    const tip = new vscode.MarkdownString((many ? `**${s.folder.name}**\n\n` : '') + m.tooltip);
    tip.supportThemeIcons = true;
    this.statusBar.tooltip = tip;
    this.statusBar.backgroundColor = m.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.statusBar.command = m.warning ? 'perfd.restart' : 'perfd.showStats';
    this.statusBar.show();
  }

  // -- sessions --------------------------------------------------------------------------------------

  /** Start a session for `folder` (once); the view lists it. */
  serve(folder: vscode.WorkspaceFolder): FolderSession {
    const key = folder.uri.toString();
    let s = this.sessions.get(key);
    if (!s) {
      s = new FolderSession(folder, this);
      this.sessions.set(key, s);
      this.syncView();
      void s.start();
    }
    return s;
  }

  private syncView(): void {
    const order = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
    const list = [...this.sessions.values()]
      .sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key))
      .map((s) => ({ key: s.key, name: s.folder.name }));
    this.view.setFolders(list);
    void vscode.commands.executeCommand('setContext', 'perfd.hasPlans', list.length > 0);
  }

  /** A folder left the workspace: its session stops and its plans leave the view. */
  async unserve(key: string): Promise<void> {
    const s = this.sessions.get(key);
    if (!s) return;
    this.sessions.delete(key);
    this.syncView();
    await s.stop();
    this.render();
  }

  /**
   * Serve every workspace folder that holds a perfd workspace (a work-space/plans folder at its
   * top, or a PLAN file in one below). `any`: also a folder without plans, when none has any
   * (Restart with nothing served).
   */
  async startFolders(any = false): Promise<void> {
    const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file');
    const found = await Promise.all(folders.map((f) => folderHasPlans(f)));
    folders.forEach((f, i) => found[i] && this.serve(f));
    if (any && this.sessions.size === 0 && folders[0]) this.serve(folders[0]);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.stop()));
  }

  // -- the UI facade used by the command handlers -----------------------------------------------

  ui(): Ui {
    return {
      pick: async (items, placeholder) => {
        const picked = await vscode.window.showQuickPick(
          items.map((i) => ({ label: i.label, description: i.description, detail: i.detail, item: i })),
          { placeHolder: placeholder, matchOnDescription: true, matchOnDetail: true },
        );
        return picked?.item.value;
      },
      info: (m, ...a) => Promise.resolve(vscode.window.showInformationMessage(m, ...a)),
      warn: (m, ...a) => Promise.resolve(vscode.window.showWarningMessage(m, ...a)),
      error: (m, ...a) => Promise.resolve(vscode.window.showErrorMessage(m, ...a)),
      copy: (t) => Promise.resolve(vscode.env.clipboard.writeText(t)),
      showDocument: async (name, markdown) => {
        const uri = this.docs.set(name, markdown);
        const doc = await vscode.workspace.openTextDocument(uri);
        if (doc.languageId !== 'markdown') await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
        await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
      },
      openFile: async (file) => {
        const f = path.isAbsolute(file) ? file : path.join(this.current()?.path ?? '', file);
        await vscode.window.showTextDocument(vscode.Uri.file(f));
      },
      activeFile,
      settings: () => this.settings(this.current()?.path),
      progress: (title, task) =>
        Promise.resolve(vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title }, task)),
      runLive: (api, plan, achievement, model) => liveRun(this, api, plan, achievement, model),
      input: (prompt, value) => Promise.resolve(vscode.window.showInputBox({ prompt, value, ignoreFocusOut: true })),
    };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.view.dispose();
    this.dashboard.dispose();
    this.statusBar.dispose();
    this.docs.dispose();
    this.output.dispose();
  }
}

async function folderHasPlans(f: vscode.WorkspaceFolder): Promise<boolean> {
  // The usual layout, checked on disk at once; the search (which waits for the workbench's
  // file search, slow while the window loads) only for plans deeper down.
  if (isDir(path.join(f.uri.fsPath, 'work-space', 'plans'))) return true;
  const found = await vscode.workspace.findFiles(
    new vscode.RelativePattern(f, '**/work-space/plans/**/PLAN_*.md'),
    '**/node_modules/**',
    1,
  );
  return found.length > 0;
}

function activeFile(): string | undefined {
  const doc = vscode.window.activeTextEditor?.document;
  return doc && doc.uri.scheme === 'file' ? doc.uri.fsPath : undefined;
}

/** A menu passes the clicked file's Uri; the palette passes nothing. */
function fileArg(arg: unknown): string | undefined {
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? arg.fsPath : undefined;
  if (typeof arg === 'string') return arg;
  return undefined;
}

/** Commands contributed in package.json, and their handlers. */
export function commandHandlers(ext: PerfdExtension): Record<string, (...args: unknown[]) => unknown> {
  const c = ext.commands;
  return {
    'perfd.generateNextPrompt': (arg) => c.generateNextPrompt(fileArg(arg)),
    'perfd.generatePromptForAchievement': (arg) => c.generateForAchievement(fileArg(arg)),
    'perfd.runNext': (arg) => c.runNext(fileArg(arg)),
    'perfd.runWithModel': (arg) => c.runWithModel(fileArg(arg)),
    'perfd.showStatus': () => c.showStatus(),
    'perfd.showStats': () => c.showStats(),
    'perfd.showDashboard': () => ext.dashboard.show(),
    'perfd.clearCacheCommand': () => c.clearCache(),
    'perfd.restart': () => ext.restart(),
    // The code lenses' commands (rewritten from the server's perfd.generateNext / generate / status).
    'perfd.lens.generateNext': (plan) => c.lensGenerateNext(String(plan)),
    'perfd.lens.generate': (plan, n) => c.lensGenerate(String(plan), String(n)),
    'perfd.lens.status': (plan, n) => c.lensStatus(String(plan), typeof n === 'string' ? n : undefined),
    // The code actions' commands (rewritten from the server's perfd.run / createSubplan / openFile).
    'perfd.lens.run': (plan, n) => c.runAchievement(String(plan), typeof n === 'string' ? n : null),
    'perfd.action.createSubplan': (plan, n) => c.createSubplan(String(plan), String(n)),
    'perfd.action.openFile': (file) => vscode.window.showTextDocument(vscode.Uri.file(String(file)), { preview: false }),
  };
}

let current: PerfdExtension | undefined;

/** A tree node or nothing (a palette call): the plan path and achievement it names. */
function nodeTarget(node: unknown): { folder?: string; plan?: string; achievement?: AchievementStatus } {
  const n = node as Node | undefined;
  if (!n || typeof n !== 'object') return {};
  if (n.kind === 'plan') return { folder: n.folder, plan: n.plan.path };
  if (n.kind === 'achievement') return { folder: n.folder, plan: n.plan, achievement: n.achievement };
  return {};
}

/** The view's commands (inline actions on plans and achievements, the title bar's filter). */
export function viewHandlers(ext: PerfdExtension): Record<string, (...args: unknown[]) => unknown> {
  const c = ext.commands;
  return {
    'perfd.view.generate': (node) => {
      const t = nodeTarget(node);
      if (!t.plan) return c.generateNextPrompt();
      return t.achievement ? c.lensGenerate(t.plan, t.achievement.number) : c.lensGenerateNext(t.plan);
    },
    'perfd.view.run': (node) => {
      const t = nodeTarget(node);
      if (!t.plan) return c.runNext();
      return c.runAchievement(t.plan, t.achievement?.number ?? null);
    },
    'perfd.view.openPlan': async (node) => {
      const t = nodeTarget(node);
      if (!t.plan) return;
      const line = Math.max(0, (t.achievement?.body_line ?? t.achievement?.index_line ?? 1) - 1);
      const range = new vscode.Range(line, 0, line, 0);
      await vscode.window.showTextDocument(vscode.Uri.file(t.plan), { selection: range, preview: false });
    },
    'perfd.view.openNextFile': async (node) => {
      const t = nodeTarget(node);
      if (!t.plan || !t.folder) return;
      const api = ext.apiFor(t.folder);
      if (!api) return void vscode.window.showErrorMessage(NOT_RUNNING);
      let a = t.achievement;
      if (!a) {
        const st = await api.planStatus(t.plan);
        a = (st.achievements ?? []).find((x) => x.number === st.next);
        if (!a) return void vscode.window.showInformationMessage(`perfd: @${st.plan} has no next step (${st.state}).`);
      }
      const file = nextStepFile(a);
      if (file) return vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false });
      if (a.state === 'no_subplan') {
        const go = await vscode.window.showInformationMessage(`perfd: ${a.number} has no SUBPLAN yet. Create it from the template?`, 'Create SUBPLAN');
        if (go) await c.createSubplan(t.plan, a.number);
      }
    },
    'perfd.view.filter': async () => {
      const picked = await vscode.window.showQuickPick(
        FILTERS.map((f) => ({ label: f.label, detail: f.detail, value: f.value, picked: f.value === ext.view.model.filter })),
        { placeHolder: 'Show which plans?' },
      );
      if (picked) ext.view.setFilter(picked.value);
    },
    'perfd.view.refresh': () => ext.view.refreshAll(),
    'perfd.checkInstall': () => checkInstall(ext),
  };
}

/** The walkthrough's first step: is `perfd` there, and which version? One message either way. */
async function checkInstall(ext: PerfdExtension): Promise<boolean> {
  const s = ext.settings(ext.current()?.path);
  const exe = resolveExecutable(s.path, {
    PATH: process.env.PATH,
    PATHEXT: process.env.PATHEXT,
    platform: process.platform,
    isExecutable,
    home: os.homedir(),
    cwd: ext.current()?.path,
  });
  if (!exe) {
    const a = await vscode.window.showErrorMessage(`perfd: "${s.path}" was not found. Install perfd or set "perfd.path".`, 'How to install');
    if (a) await ext.showDocument('How to install perfd.md', INSTALL_HELP);
    return false;
  }
  const cmd = serverCommand({ ...s, path: exe, args: [] });
  const args = [...cmd.args.slice(0, -1), '--version'];
  const version = await new Promise<string | undefined>((resolve) =>
    execFile(cmd.command, args, { timeout: 15000 }, (err, stdout) => resolve(err ? undefined : String(stdout).trim())),
  );
  if (!version) {
    void vscode.window.showErrorMessage(`perfd: ${exe} is there but \`--version\` failed; see the perfd output channel.`);
    return false;
  }
  ext.log(`installed: ${exe} (${version})`);
  void vscode.window.showInformationMessage(`perfd is installed: ${version} (${exe}).`);
  return true;
}

export async function activate(context: vscode.ExtensionContext): Promise<PerfdExtension> {
  const ext = new PerfdExtension(context);
  current = ext;
  context.subscriptions.push(ext);
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(SCHEME, ext.docs));
  for (const [id, fn] of Object.entries({ ...commandHandlers(ext), ...viewHandlers(ext) })) {
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  }
  const tree = vscode.window.createTreeView('perfd.plans', { treeDataProvider: ext.view, showCollapseAll: true });
  context.subscriptions.push(tree, ...ext.view.attach(tree));
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (ext.sessions.size === 0) return;
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k))) void ext.restart();
    }),
    vscode.window.onDidChangeActiveTextEditor(() => ext.render()),
    vscode.workspace.onDidChangeWorkspaceFolders(async (e) => {
      for (const f of e.removed) await ext.unserve(f.uri.toString());
      for (const f of e.added) if (f.uri.scheme === 'file' && (await folderHasPlans(f))) ext.serve(f);
    }),
  );
  // onLanguage:markdown activates us for any markdown file: serve the folders with plans now,
  // and any other folder once a plan file of it is opened.
  const serveFileFolder = (d: { uri: vscode.Uri }) => {
    if (d.uri.scheme !== 'file' || !isPlanFile(d.uri.fsPath)) return;
    const f = workspaceFolderOf(d.uri.fsPath) ?? vscode.workspace.workspaceFolders?.[0];
    if (f && !ext.sessions.has(f.uri.toString())) ext.serve(f);
  };
  await ext.startFolders();
  // Trusting the window (leaving Restricted Mode) allows runs and writes; perfd's own settings
  // that wait for `perfd trust` are then named, as on a start in a trusted window.
  context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(() => {
    for (const s of ext.sessions.values()) if (s.serverState === 'running') void s.checkPerfdTrust();
  }));
  for (const d of vscode.workspace.textDocuments) serveFileFolder(d);
  context.subscriptions.push(vscode.workspace.onDidOpenTextDocument(serveFileFolder));
  // `perfd mcp` for agent mode, per folder with plans (VS Code 1.101+; nothing in Restricted Mode).
  const version = (context.extension?.packageJSON as { version?: string } | undefined)?.version ?? '';
  context.subscriptions.push(...registerMcpServers(async () => {
    const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file');
    const found = await Promise.all(folders.map((f) => folderHasPlans(f)));
    return mcpDefinitions(
      folders.filter((_, i) => found[i]).map((f) => ({ name: f.name, path: f.uri.fsPath })),
      (folder) => ext.settings(folder),
      (cmd, cwd) => resolveExecutable(cmd, {
        PATH: process.env.PATH, PATHEXT: process.env.PATHEXT, platform: process.platform, isExecutable, cwd, home: os.homedir(),
      }),
      vscode.workspace.isTrusted,
      version,
    );
  }));
  return ext;
}

export async function deactivate(): Promise<void> {
  const ext = current;
  current = undefined;
  if (ext) await ext.stopAll();
}

function isExecutable(f: string): boolean {
  try {
    fs.accessSync(f, fs.constants.X_OK);
    return fs.statSync(f).isFile();
  } catch {
    return false;
  }
}
