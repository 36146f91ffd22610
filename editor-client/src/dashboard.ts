// "perfd: Show Dashboard": a webview of live charts (uPlot, bundled into the .vsix) fed by the
// perfd/stats notifications, and the workspace's model-call history by day and by plan.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { DashboardModel, dashboardHtml } from './pure/dashboard';
import type { StatsPayload } from './pure/types';

export const DASHBOARD_VIEW = 'perfd.dashboard';
const HISTORY_EVERY_MS = 60_000; // the history changes with model calls: re-read now and then, and after calls

/** Where the dashboard gets the history: the command line to run (undefined: perfd not found). */
export type HistorySource = () => { command: string; args: string[]; cwd?: string } | undefined;

export class Dashboard implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private readonly model = new DashboardModel();
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastCalls = -1;
  private ready = false;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly history: HistorySource,
    private readonly log: (line: string) => void,
  ) {}

  /** Every perfd/stats notification, panel open or not: the series start with the session. */
  onStats(stats: StatsPayload): void {
    this.model.add(stats, Date.now());
    const calls = typeof stats.llm?.calls === 'number' ? stats.llm.calls : 0;
    if (this.panel && calls !== this.lastCalls) {
      if (this.lastCalls >= 0) this.readHistory(); // a model call: the history has a new row
      this.lastCalls = calls;
    }
    this.post();
  }

  show(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
    const panel = vscode.window.createWebviewPanel(DASHBOARD_VIEW, 'perfd Dashboard', vscode.ViewColumn.Active, {
      enableScripts: true,
      localResourceRoots: [dist],
    });
    this.panel = panel;
    this.ready = false;
    const nonce = randomBytes(16).toString('base64');
    panel.webview.html = dashboardHtml({
      cspSource: panel.webview.cspSource,
      nonce,
      scriptUri: panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'dashboard.js')).toString(),
      styleUri: panel.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'dashboard.css')).toString(),
    });
    panel.webview.onDidReceiveMessage((m: { type?: string }) => {
      if (m?.type === 'ready') {
        this.ready = true;
        this.post();
      }
    });
    panel.onDidDispose(() => {
      this.panel = undefined;
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
    });
    this.readHistory();
    this.timer = setInterval(() => this.readHistory(), HISTORY_EVERY_MS);
  }

  private post(): void {
    if (this.panel && this.ready) void this.panel.webview.postMessage({ type: 'data', data: this.model.data() });
  }

  private readHistory(): void {
    const cmd = this.history();
    if (!cmd) return;
    execFile(cmd.command, cmd.args, { cwd: cmd.cwd, timeout: 20_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) {
        this.log(`perfd: dashboard: could not read the call history: ${String(stderr || err.message).trim()}`);
        return;
      }
      if (this.model.setHistory(stdout)) this.post();
    });
  }

  dispose(): void {
    this.panel?.dispose();
  }
}
