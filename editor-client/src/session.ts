// One workspace folder's perfd language client: `perfd lsp` started in that folder (which
// relays to that workspace's daemon), its state, its stats and its perfd API. The extension
// keeps one per folder that holds a perfd workspace (see extension.ts).
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import type { DynamicFeature, StaticFeature } from 'vscode-languageclient/node';
import { PerfdApi, PLANS_CHANGED_NOTIFICATION, RUN_CHUNK_NOTIFICATION, STATS_NOTIFICATION } from './api';
import { parseStatsJson, ServerState } from './pure/format';
import { rewriteCodeActions, rewriteLensCommand } from './pure/plans';
import {
  configCommand,
  folderSelector,
  INSTALL_HELP,
  notFoundMessage,
  resolveExecutable,
  serverCommand,
  Settings,
  statsCommand,
  trustCommand,
  trustMessage,
  waitingForTrust,
} from './pure/settings';
import type { PlansChangedParams, RunChunkParams, StatsPayload } from './pure/types';

export interface SessionHost {
  output: vscode.OutputChannel;
  settings(folder: string): Settings;
  changed(session: FolderSession): void;
  onStats(session: FolderSession, stats: StatsPayload, source: 'notification' | 'perfd stats --json'): void;
  onPlansChanged(session: FolderSession, params: PlansChangedParams): void;
  onRunChunk(params: RunChunkParams): void;
  showDocument(name: string, markdown: string): Promise<void>;
  sinceActivation(what: string, note?: string): void;
  /** Missing executable: one message for all folders, not one per folder. */
  missingOnce(message: string, show: () => void): void;
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

/**
 * vscode-languageclient registers a VS Code command for every command the server offers; a
 * second folder's client would register the same ids again and fail to start. perfd's commands
 * are called through PerfdApi (workspace/executeCommand) and its lenses and code actions point
 * at the extension's own commands, so the clients leave that feature out.
 */
class PerfdLanguageClient extends LanguageClient {
  override registerFeature(feature: StaticFeature | DynamicFeature<unknown>): void {
    const method = (feature as { registrationType?: { method?: string } }).registrationType?.method;
    if (method === 'workspace/executeCommand') return;
    super.registerFeature(feature);
  }
}

export class FolderSession {
  client: LanguageClient | undefined;
  serverState: ServerState = 'idle';
  detail: string | undefined;
  stats: StatsPayload | undefined;
  private perfdApi: PerfdApi | undefined;
  /** The workspace's perfd settings that wait for `perfd trust` (see checkPerfdTrust). */
  perfdTrustWaiting: string[] = [];
  private starting: Promise<void> | undefined;
  // Set by the first perfd/stats notification of the current client: from then on an early
  // `perfd stats --json` answer is older than what the status bar shows, and is dropped.
  private notifiedStats = false;

  constructor(
    readonly folder: vscode.WorkspaceFolder,
    private readonly host: SessionHost,
  ) {}

  get key(): string {
    return this.folder.uri.toString();
  }

  get path(): string {
    return this.folder.uri.fsPath;
  }

  api(): PerfdApi | undefined {
    return this.serverState === 'running' ? this.perfdApi : undefined;
  }

  private log(line: string): void {
    this.host.output.appendLine(`perfd [${this.folder.name}]: ${line}`);
  }

  private setState(state: ServerState, detail?: string): void {
    this.serverState = state;
    this.detail = detail;
    this.host.changed(this);
  }

  start(): Promise<void> {
    if (!this.starting) this.starting = this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<void> {
    if (this.client) return;
    const s = this.host.settings(this.path);
    const cwd = this.path;
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
      this.log(msg);
      this.setState('missing', `The executable \`${s.path}\` was not found.`);
      this.host.missingOnce(msg, () => {
        void vscode.window.showErrorMessage(msg, 'How to install', 'Open Settings').then((a) => {
          if (a === 'How to install') void this.host.showDocument('How to install perfd.md', INSTALL_HELP);
          else if (a === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', 'perfd.path');
        });
      });
      return;
    }
    const cmd = serverCommand({ ...s, path: exe });
    this.log(`starting ${[cmd.command, ...cmd.args].join(' ')} in ${cwd}`);
    const serverOptions: ServerOptions = {
      command: cmd.command,
      args: cmd.args,
      // No `transport`: TransportKind.stdio would append `--stdio` to the command line, which
      // `perfd lsp` rejects; an Executable without a transport talks over stdio all the same.
      options: { cwd, env: process.env },
    };
    const clientOptions: LanguageClientOptions = {
      // This folder's plan files only: each folder's server answers for its own workspace.
      documentSelector: folderSelector(this.path),
      workspaceFolder: this.folder,
      outputChannel: this.host.output,
      traceOutputChannel: this.host.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      middleware: {
        // Point the server's lens and code action commands at the extension's own commands
        // (see SERVER_COMMANDS), which present the answers.
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
        provideCodeActions: async (document, range, context, token, next) => {
          const actions = await next(document, range, context, token);
          return actions ? rewriteCodeActions(actions) : actions;
        },
      },
      initializationFailedHandler: (e) => {
        this.log(`initialization failed: ${String(e)}`);
        return false;
      },
    };
    const client = new PerfdLanguageClient('perfd', `perfd (${this.folder.name})`, serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState((e) => {
      if (this.client !== client) return;
      if (e.newState === State.Running) this.setState('running');
      else if (e.newState === State.Starting) this.setState('starting');
      else if (e.newState === State.Stopped) this.setState('stopped', 'The perfd language server stopped.');
    });
    client.onNotification(STATS_NOTIFICATION, (p: StatsPayload) => {
      this.notifiedStats = true;
      this.stats = p;
      this.host.onStats(this, p, 'notification');
    });
    client.onNotification(PLANS_CHANGED_NOTIFICATION, (p: PlansChangedParams) => this.host.onPlansChanged(this, p));
    client.onNotification(RUN_CHUNK_NOTIFICATION, (p: RunChunkParams) => this.host.onRunChunk(p));
    this.notifiedStats = false;
    this.setState('starting');
    this.host.sinceActivation('activation to server start');
    const early = statsCommand({ ...s, path: exe });
    if (early) this.earlyStats(early, cwd, client);
    try {
      await client.start();
      const cmds = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
      this.perfdApi = new PerfdApi(
        {
          sendRequest: (method, params, token) =>
            (token ? client.sendRequest(method, params, token as vscode.CancellationToken) : client.sendRequest(method, params)) as Promise<unknown>,
        },
        cmds,
        () => !vscode.workspace.isTrusted,
      );
      this.setState('running');
      this.log(`running; server commands: ${cmds.join(', ')}`);
      if (!vscode.workspace.isTrusted) this.log('Restricted Mode: plans are shown; no model runs and no file is written');
      else void this.checkPerfdTrust();
      this.host.sinceActivation('activation to language server running');
    } catch (e) {
      this.log(`could not start the language server: ${String(e)}`);
      this.setState('failed', `Could not start: ${String(e)}`);
      void vscode.window
        .showErrorMessage(`perfd: the language server for "${this.folder.name}" could not start.`, 'Show Output')
        .then((a) => {
          if (a) this.host.output.show(true);
        });
    }
  }

  /**
   * Ask the daemon for its counters while the language client starts (see statsCommand). The
   * CLI starts the daemon if none runs, under the same single-flight lock as `perfd lsp`, so
   * the two never start two daemons. A failure here costs nothing: the notification follows.
   */
  private earlyStats(cmd: { command: string; args: string[] }, cwd: string, client: LanguageClient): void {
    execFile(cmd.command, cmd.args, { cwd, env: process.env, timeout: 15000, maxBuffer: 4 << 20 }, (err, stdout) => {
      if (this.client !== client || this.notifiedStats) return; // restarted, or already newer numbers
      const stats = err ? undefined : parseStatsJson(String(stdout));
      if (!stats) {
        this.log(`early stats unavailable (${err ? String(err.message).split('\n')[0] : 'not a stats object'})`);
        return;
      }
      this.stats = stats;
      this.host.onStats(this, stats, 'perfd stats --json');
    });
  }

  /**
   * VS Code's workspace trust does not trust perfd's own settings: settings of the workspace's
   * perfd.toml that send data, read outside it or spend money wait for `perfd trust`. Say which,
   * once the window is trusted, and offer to run it (nothing is trusted without the user's click).
   */
  async checkPerfdTrust(): Promise<void> {
    const s = this.host.settings(this.path);
    const exe = resolveExecutable(s.path, {
      PATH: process.env.PATH, PATHEXT: process.env.PATHEXT, platform: process.platform, isExecutable, cwd: this.path,
      home: os.homedir(),
    });
    if (!exe) return;
    const run = (cmd: { command: string; args: string[] }): Promise<{ ok: boolean; out: string }> =>
      new Promise((resolve) =>
        execFile(cmd.command, cmd.args, { cwd: this.path, env: process.env, timeout: 15000, maxBuffer: 4 << 20 },
          (err, stdout, stderr) => resolve({ ok: !err, out: String(err ? stderr || err.message : stdout) })));
    const got = await run(configCommand({ ...s, path: exe }));
    const waiting = got.ok ? waitingForTrust(got.out) : undefined;
    if (!got.ok) this.log(`perfd config: ${got.out.split('\n')[0]}`);
    this.perfdTrustWaiting = waiting ?? [];
    if (!waiting || waiting.length === 0) return;
    this.log(`settings waiting for \`perfd trust\`: ${waiting.join(', ')}`);
    const answer = await vscode.window.showWarningMessage(trustMessage(this.folder.name, waiting), 'Trust These Settings', 'Show Them');
    if (answer === 'Show Them') {
      const shown = await run(trustCommand({ ...s, path: exe }, true));
      await this.host.showDocument('perfd trust.md', '```\n' + shown.out + '```\n');
    } else if (answer === 'Trust These Settings') {
      const done = await run(trustCommand({ ...s, path: exe }));
      this.log(`perfd trust: ${done.out.trim()}`);
      if (done.ok) {
        this.perfdTrustWaiting = [];
        void vscode.window.showInformationMessage(`perfd: ${done.out.trim()}`);
      } else void vscode.window.showErrorMessage(`perfd trust failed: ${done.out.split('\n')[0]}`);
    }
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
        this.log(`stopping: ${String(e)}`);
      }
    }
    this.setState('stopped', 'Stopped.');
  }

  async restart(): Promise<void> {
    if (this.starting) await this.starting;
    this.log('restarting');
    await this.stop();
    this.stats = undefined;
    await this.start();
  }
}
