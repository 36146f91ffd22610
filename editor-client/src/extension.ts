// VS Code glue: the language client, the status bar, the read-only documents and the commands.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { PerfdApi, STATS_NOTIFICATION } from './api';
import { Commands, Host, Ui } from './commands';
import { Dashboard } from './dashboard';
import { parseStatsJson, ServerState, statsMarkdown, statusBarModel } from './pure/format';
import { rewriteLensCommand } from './pure/plans';
import {
  DOCUMENT_SELECTOR,
  INSTALL_HELP,
  isPlanFile,
  notFoundMessage,
  readSettings,
  resolveExecutable,
  RESTART_KEYS,
  historyCommand,
  serverCommand,
  Settings,
  statsCommand,
} from './pure/settings';
import type { StatsPayload } from './pure/types';

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

function isExecutable(file: string): boolean {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) return false;
    if (process.platform === 'win32') return true;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function workspaceFolderFor(file?: string): string | undefined {
  if (file) {
    const f = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file));
    if (f) return f.uri.fsPath;
  }
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}

export class PerfdExtension implements Host, vscode.Disposable {
  readonly output: vscode.OutputChannel;
  readonly statusBar: vscode.StatusBarItem;
  readonly docs = new DocProvider();
  readonly commands: Commands;
  readonly dashboard: Dashboard;
  client: LanguageClient | undefined;
  private serverState: ServerState = 'idle';
  private detail: string | undefined;
  private stats: StatsPayload | undefined;
  private perfdApi: PerfdApi | undefined;
  private starting: Promise<void> | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  private readonly activatedAt = Date.now();
  private readonly timedOnce = new Set<string>();
  // Set by the first perfd/stats notification of the current client: from then on an early
  // `perfd stats --json` answer is older than what the status bar shows, and is dropped.
  private notifiedStats = false;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('perfd');
    this.statusBar = vscode.window.createStatusBarItem('perfd.status', vscode.StatusBarAlignment.Right, 100);
    this.statusBar.name = 'perfd';
    this.commands = new Commands(this, this.ui());
    this.dashboard = new Dashboard(context.extensionUri, () => this.historySource(), (l) => this.output.appendLine(l));
    this.render();
  }

  /** `perfd stats --history --json` for the dashboard, with the executable the server runs. */
  private historySource(): { command: string; args: string[]; cwd?: string } | undefined {
    const s = this.settings();
    const cwd = workspaceFolderFor(activeFile());
    const exe = resolveExecutable(s.path, { PATH: process.env.PATH, PATHEXT: process.env.PATHEXT, platform: process.platform, isExecutable, cwd });
    return exe ? { ...historyCommand({ ...s, path: exe }), cwd } : undefined;
  }

  // -- Host ---------------------------------------------------------------------------------

  api(): PerfdApi | undefined {
    return this.serverState === 'running' ? this.perfdApi : undefined;
  }

  state(): ServerState {
    return this.serverState;
  }

  lastStats(): StatsPayload | undefined {
    return this.stats;
  }

  showOutput(): void {
    this.output.show(true);
  }

  settings(): Settings {
    const cfg = vscode.workspace.getConfiguration('perfd');
    return readSettings((k) => cfg.get(k), { home: os.homedir(), workspaceFolder: workspaceFolderFor() });
  }

  // -- state and status bar -------------------------------------------------------------------

  setState(state: ServerState, detail?: string): void {
    this.serverState = state;
    this.detail = detail;
    this.render();
  }

  timing(what: string, ms: number, note?: string): void {
    this.output.appendLine(`perfd: timing: ${what}: ${ms} ms${note ? ` (${note})` : ''}`);
  }

  /** A startup figure, from activation, the first time only (not after a restart). */
  private sinceActivation(what: string, note?: string): void {
    if (this.timedOnce.has(what)) return;
    this.timedOnce.add(what);
    this.timing(what, Date.now() - this.activatedAt, note);
  }

  onStats(stats: StatsPayload, source: 'notification' | 'perfd stats --json' = 'notification'): void {
    this.stats = stats;
    this.render();
    this.dashboard.onStats(stats);
    this.sinceActivation('activation to first status-bar stats', `from ${source}`);
    if (source === 'notification') {
      this.notifiedStats = true;
      this.sinceActivation('activation to first perfd/stats notification');
    }
    if (this.docs.has(STATS_DOC)) this.docs.set(STATS_DOC, statsMarkdown(stats, this.serverState, new Date()));
  }

  render(): void {
    const m = statusBarModel(this.serverState, this.stats, this.detail);
    this.statusBar.text = m.text;
    const tip = new vscode.MarkdownString(m.tooltip);
    tip.supportThemeIcons = true;
    this.statusBar.tooltip = tip;
    this.statusBar.backgroundColor = m.warning ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    this.statusBar.command = m.warning ? 'perfd.restart' : 'perfd.showStats';
    this.statusBar.show();
  }

  // -- the language client --------------------------------------------------------------------

  start(): Promise<void> {
    if (!this.starting) this.starting = this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<void> {
    if (this.client) return;
    const s = this.settings();
    const cwd = workspaceFolderFor(activeFile());
    const exe = resolveExecutable(s.path, {
      PATH: process.env.PATH,
      PATHEXT: process.env.PATHEXT,
      platform: process.platform,
      isExecutable,
      cwd,
      home: os.homedir(),
    });
    if (!exe) {
      const msg = notFoundMessage(s.path, process.platform, os.homedir());
      this.output.appendLine(msg);
      this.setState('missing', `The executable \`${s.path}\` was not found.`);
      void vscode.window.showErrorMessage(msg, 'How to install', 'Open Settings').then((a) => {
        if (a === 'How to install') void this.ui().showDocument('How to install perfd.md', INSTALL_HELP);
        else if (a === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'perfd.path');
      });
      return;
    }
    const cmd = serverCommand({ ...s, path: exe });
    this.output.appendLine(`perfd: starting ${[cmd.command, ...cmd.args].join(' ')}${cwd ? ` in ${cwd}` : ''}`);
    const serverOptions: ServerOptions = {
      command: cmd.command,
      args: cmd.args,
      // No `transport`: TransportKind.stdio would append `--stdio` to the command line, which
      // `perfd lsp` rejects; an Executable without a transport talks over stdio all the same.
      options: { cwd, env: process.env },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: this.output,
      traceOutputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: {
        // Point the server's lens commands at our client-side commands (see LENS_COMMANDS).
        provideCodeLenses: async (document, token, next) => {
          const lenses = await next(document, token);
          for (const lens of lenses ?? []) {
            if (lens.command) lens.command.command = rewriteLensCommand(lens.command.command);
          }
          return lenses;
        },
        resolveCodeLens: async (lens, token, next) => {
          const r = await next(lens, token);
          if (r?.command) r.command.command = rewriteLensCommand(r.command.command);
          return r;
        },
      },
      initializationFailedHandler: (e) => {
        this.output.appendLine(`perfd: initialization failed: ${String(e)}`);
        return false;
      },
    };
    const client = new LanguageClient('perfd', 'perfd', serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((e) => {
      if (this.client !== client) return;
      if (e.newState === State.Running) this.setState('running');
      else if (e.newState === State.Starting) this.setState('starting');
      else if (e.newState === State.Stopped) this.setState('stopped', 'The perfd language server stopped.');
    });
    client.onNotification(STATS_NOTIFICATION, (p: StatsPayload) => this.onStats(p));
    this.notifiedStats = false;
    this.setState('starting');
    this.sinceActivation('activation to server start');
    const early = statsCommand({ ...s, path: exe });
    if (early) this.earlyStats(early, cwd, client);
    try {
      await client.start();
      const cmds = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
      this.perfdApi = new PerfdApi(
        { sendRequest: (method, params) => client.sendRequest(method, params) as Promise<unknown> },
        cmds,
      );
      this.setState('running');
      this.output.appendLine(`perfd: running; server commands: ${cmds.join(', ')}`);
      this.sinceActivation('activation to language server running');
    } catch (e) {
      this.output.appendLine(`perfd: could not start the language server: ${String(e)}`);
      this.setState('failed', `Could not start: ${String(e)}`);
      void vscode.window.showErrorMessage('perfd: the language server could not start.', 'Show Output').then((a) => {
        if (a) this.showOutput();
      });
    }
  }

  /**
   * Ask the daemon for its counters while the language client starts (see statsCommand). The
   * CLI starts the daemon if none runs, under the same single-flight lock as `perfd lsp`, so
   * the two never start two daemons. A failure here costs nothing: the notification follows.
   */
  private earlyStats(cmd: { command: string; args: string[] }, cwd: string | undefined, client: LanguageClient): void {
    execFile(cmd.command, cmd.args, { cwd, env: process.env, timeout: 15000, maxBuffer: 4 << 20 }, (err, stdout) => {
      if (this.client !== client || this.notifiedStats) return; // restarted, or already newer numbers
      const stats = err ? undefined : parseStatsJson(String(stdout));
      if (!stats) {
        this.output.appendLine(`perfd: early stats unavailable (${err ? String(err.message).split('\n')[0] : 'not a stats object'})`);
        return;
      }
      this.onStats(stats, 'perfd stats --json');
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.perfdApi = undefined;
    if (client) {
      try {
        if (client.isRunning()) await client.stop(3000);
        await client.dispose(1000).catch(() => undefined);
      } catch (e) {
        this.output.appendLine(`perfd: stopping: ${String(e)}`);
      }
    }
    this.setState('stopped', 'Stopped.');
  }

  async restart(): Promise<void> {
    if (this.starting) await this.starting;
    this.output.appendLine('perfd: restarting');
    await this.stop();
    this.stats = undefined;
    await this.start();
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
        const f = path.isAbsolute(file) ? file : path.join(workspaceFolderFor() ?? '', file);
        await vscode.window.showTextDocument(vscode.Uri.file(f));
      },
      activeFile,
      settings: () => this.settings(),
      progress: (title, task) =>
        Promise.resolve(vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title }, task)),
    };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    this.statusBar.dispose();
    this.dashboard.dispose();
    this.docs.dispose();
    this.output.dispose();
  }
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
    'perfd.showStatus': () => c.showStatus(),
    'perfd.showStats': () => c.showStats(),
    'perfd.showDashboard': () => ext.dashboard.show(),
    'perfd.clearCacheCommand': () => c.clearCache(),
    'perfd.restart': () => ext.restart(),
    // The code lenses' commands (rewritten from the server's perfd.generateNext / generate / status).
    'perfd.lens.generateNext': (plan) => c.lensGenerateNext(String(plan)),
    'perfd.lens.generate': (plan, n) => c.lensGenerate(String(plan), String(n)),
    'perfd.lens.status': (plan, n) => c.lensStatus(String(plan), typeof n === 'string' ? n : undefined),
  };
}

let current: PerfdExtension | undefined;

async function workspaceHasPlans(): Promise<boolean> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (!folders.length) return false;
  // The usual layout, checked on disk at once; the search (which waits for the workbench's
  // file search, slow while the window loads) only for plans deeper down.
  if (folders.some((f) => f.uri.scheme === 'file' && isDir(path.join(f.uri.fsPath, 'work-space', 'plans')))) return true;
  const found = await vscode.workspace.findFiles('**/work-space/plans/**/PLAN_*.md', '**/node_modules/**', 1);
  return found.length > 0;
}

export async function activate(context: vscode.ExtensionContext): Promise<PerfdExtension> {
  const ext = new PerfdExtension(context);
  current = ext;
  context.subscriptions.push(ext);
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(SCHEME, ext.docs));
  for (const [id, fn] of Object.entries(commandHandlers(ext))) {
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  }
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!ext.client && ext.state() === 'idle') return;
      if (RESTART_KEYS.some((k) => e.affectsConfiguration(k))) void ext.restart();
    }),
  );
  // onLanguage:markdown activates us for any markdown file: start the server only once a plan
  // file is open or the workspace has plans.
  const planOpen = () => vscode.workspace.textDocuments.some((d) => d.uri.scheme === 'file' && isPlanFile(d.uri.fsPath));
  if (planOpen() || (await workspaceHasPlans())) {
    void ext.start();
  } else {
    const sub = vscode.workspace.onDidOpenTextDocument((d) => {
      if (d.uri.scheme === 'file' && isPlanFile(d.uri.fsPath)) {
        sub.dispose();
        void ext.start();
      }
    });
    context.subscriptions.push(sub);
  }
  return ext;
}

export async function deactivate(): Promise<void> {
  const ext = current;
  current = undefined;
  if (ext) await ext.stop();
}
