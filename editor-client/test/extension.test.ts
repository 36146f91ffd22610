// activate() against the mocked vscode API and a fake vscode-languageclient.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';
import { resetMock, state } from './vscode-mock';

const clients: FakeClient[] = [];

class FakeClient {
  static startError: Error | undefined;
  state = 1; // Stopped
  private stateListeners: ((e: { oldState: number; newState: number }) => void)[] = [];
  notifications = new Map<string, (p: unknown) => void>();
  requests: { method: string; params: unknown }[] = [];
  initializeResult = { capabilities: { executeCommandProvider: { commands: ['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.stats', 'perfd.clearCache'] } } };
  constructor(public id: string, public name: string, public serverOptions: { command: string; args: string[]; options: { cwd?: string } }, public clientOptions: { middleware: { provideCodeLenses: Function }; documentSelector: unknown }) {
    clients.push(this);
  }
  onDidChangeState(l: (e: { oldState: number; newState: number }) => void) { this.stateListeners.push(l); return { dispose() {} }; }
  onNotification(method: string, h: (p: unknown) => void) { this.notifications.set(method, h); return { dispose() {} }; }
  private set(s: number) { const old = this.state; this.state = s; for (const l of this.stateListeners) l({ oldState: old, newState: s }); }
  static gate: Promise<void> | undefined;
  async start() {
    this.set(3); // Starting
    if (FakeClient.gate) await FakeClient.gate;
    if (FakeClient.startError) { this.set(1); throw FakeClient.startError; }
    this.set(2); // Running
  }
  isRunning() { return this.state === 2; }
  async stop() { this.set(1); }
  async dispose() {}
  async sendRequest(method: string, params: { command: string; arguments: string[] }) {
    this.requests.push({ method, params });
    if (params.command === 'perfd.status') return { root: '/ws', plans: [{ plan: 'API-CLIENT', path: '/ws/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md', title: 'API', state: 'no_subplan', next: '1.2', done: 0, total: 2 }] };
    if (params.command === 'perfd.generateNext') return { plan: 'API-CLIENT', plan_path: params.arguments[0], achievement: '1.2', state: 'no_subplan', source: 'plan', prompt: '# the prompt', parallel_options: [], problems: [] };
    if (params.command === 'perfd.stats') return { cache: { hits: 1, misses: 0, hit_rate: 1, lookup_p50_us: 50 } };
    throw new Error('unexpected');
  }
}

vi.mock('vscode-languageclient/node', () => ({
  LanguageClient: FakeClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  TransportKind: { stdio: 0 },
  RevealOutputChannelOn: { Never: 4 },
}));

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
let tmp: string;
let savedPath: string | undefined;

beforeEach(() => {
  resetMock();
  clients.length = 0;
  FakeClient.startError = undefined;
  FakeClient.gate = undefined;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfd-ext-'));
  const exe = path.join(tmp, 'perfd');
  fs.writeFileSync(exe, '#!/bin/sh\n');
  fs.chmodSync(exe, 0o755);
  savedPath = process.env.PATH;
  process.env.PATH = tmp;
});

afterEach(async () => {
  const ext = await import('../src/extension');
  await ext.deactivate();
  process.env.PATH = savedPath;
  fs.rmSync(tmp, { recursive: true, force: true });
});

function context() {
  return { subscriptions: [] as { dispose(): void }[] } as unknown as import('vscode').ExtensionContext;
}

async function activate() {
  const ext = await import('../src/extension');
  return ext.activate(context());
}

describe('activate', () => {
  it('registers every contributed command plus the lens commands, without touching server ids', async () => {
    await activate();
    const ids = [...state.commands.keys()].sort();
    for (const c of pkg.contributes.commands) expect(ids).toContain(c.command);
    expect(ids).toEqual(expect.arrayContaining(['perfd.lens.generateNext', 'perfd.lens.generate', 'perfd.lens.status']));
    for (const server of ['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.stats', 'perfd.clearCache']) {
      expect(ids).not.toContain(server);
    }
    expect(state.providers.has('perfd')).toBe(true);
  });

  it('does not start the server for a workspace without plans until a plan file opens', async () => {
    await activate();
    expect(clients).toHaveLength(0);
    expect(state.statusBar?.text).toBe('perfd');
    state.openListeners.fire({ uri: vscode.Uri.file('/ws/README.md'), languageId: 'markdown', getText: () => '' });
    expect(clients).toHaveLength(0);
    state.openListeners.fire({ uri: vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md'), languageId: 'markdown', getText: () => '' });
    await vi.waitFor(() => expect(clients).toHaveLength(1));
  });

  it('starts `perfd lsp` over stdio with the settings, shows stats in the status bar', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    state.config = { 'perfd.args': ['--root', '${workspaceFolder}'] };
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    const c = clients[0];
    expect(c.id).toBe('perfd'); // so vscode-languageclient reads perfd.trace.server
    expect(c.serverOptions.command).toBe(path.join(tmp, 'perfd'));
    expect(c.serverOptions.args).toEqual(['lsp', '--root', '/ws']);
    expect(c.serverOptions.options.cwd).toBe('/ws');
    // stdio without a `transport` (TransportKind.stdio would add `--stdio`, which perfd rejects)
    expect((c.serverOptions as { transport?: unknown }).transport).toBeUndefined();
    expect(state.statusBar?.text).toBe('perfd');
    expect(state.statusBar?.backgroundColor).toBeUndefined();
    c.notifications.get('perfd/stats')!({ cache: { entries: 5, hits: 94, misses: 6, hit_rate: 0.94, lookup_p50_us: 300 } });
    expect(state.statusBar?.text).toBe('perfd 94% · 0.3 ms');
    expect(state.statusBar?.command).toBe('perfd.showStats');
    expect((state.statusBar?.tooltip as { value: string }).value).toContain('cache entries: 5');
  });

  it('starts at once for a workspace with work-space/plans at its top, without a file search', async () => {
    fs.mkdirSync(path.join(tmp, 'work-space', 'plans'), { recursive: true });
    state.workspaceFolders = [{ uri: vscode.Uri.file(tmp), name: 'ws', index: 0 }];
    vi.mocked(vscode.workspace.findFiles).mockClear();
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    expect(vscode.workspace.findFiles).not.toHaveBeenCalled();
    expect(state.output.join('\n')).toMatch(/timing: activation to server start: \d+ ms/);
  });

  it('shows the daemon counters from `perfd stats --json` while the session is still starting', async () => {
    // the fake perfd answers `stats --json ARGS` with a snapshot, and records its arguments
    const exe = path.join(tmp, 'perfd');
    const seen = path.join(tmp, 'argv');
    fs.writeFileSync(exe, `#!/bin/sh\necho "$@" > '${seen}'\necho '{"pid": 1, "cache": {"entries": 2, "hits": 3, "misses": 1, "hit_rate": 0.75, "lookup_p50_us": 40}, "methods": []}'\n`);
    state.workspaceFolders = [{ uri: vscode.Uri.file(tmp), name: 'ws', index: 0 }]; // the stats call runs there
    state.findFilesResult = [vscode.Uri.file(`${tmp}/work-space/plans/X/PLAN_X.md`)];
    state.config = { 'perfd.args': ['--root', '${workspaceFolder}'] };
    let open!: () => void;
    FakeClient.gate = new Promise((r) => (open = r));
    const ext = await activate();
    await vi.waitFor(() => expect(state.statusBar?.text).toBe('perfd 75% · 0.04 ms $(sync~spin)'));
    expect(ext.state()).toBe('starting');
    expect(fs.readFileSync(seen, 'utf8').trim()).toBe(`stats --json --root ${tmp}`);
    expect(state.output.join('\n')).toMatch(/timing: activation to first status-bar stats: \d+ ms \(from perfd stats --json\)/);
    open();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    expect(state.statusBar?.text).toBe('perfd 75% · 0.04 ms');
    clients[0].notifications.get('perfd/stats')!({ cache: { hits: 1, misses: 0, hit_rate: 1, lookup_p50_us: 300 } });
    expect(state.statusBar?.text).toBe('perfd 100% · 0.3 ms');
    expect(state.output.join('\n')).toMatch(/timing: activation to first perfd\/stats notification: \d+ ms/);
  });

  it('drops an early stats answer that comes after the first notification, and ignores garbage', async () => {
    const exe = path.join(tmp, 'perfd');
    const go = path.join(tmp, 'go');
    // answers only once the test creates `go`: after the notification
    fs.writeFileSync(exe, `#!/bin/sh\nwhile [ ! -e '${go}' ]; do sleep 0.01; done\necho '{"cache": {"hits": 1, "misses": 1, "hit_rate": 0.5}}'\n`);
    state.workspaceFolders = [{ uri: vscode.Uri.file(tmp), name: 'ws', index: 0 }];
    state.findFilesResult = [vscode.Uri.file(`${tmp}/work-space/plans/X/PLAN_X.md`)];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    clients[0].notifications.get('perfd/stats')!({ cache: { hits: 9, misses: 1, hit_rate: 0.9, lookup_p50_us: 300 } });
    fs.writeFileSync(go, '');
    await new Promise((r) => setTimeout(r, 300));
    expect(state.statusBar?.text).toBe('perfd 90% · 0.3 ms');
    // a perfd that prints no stats: the notification is all there is
    fs.writeFileSync(exe, '#!/bin/sh\necho oops; exit 2\n');
    await vscode.commands.executeCommand('perfd.restart');
    await vi.waitFor(() => expect(state.output.join('\n')).toContain('early stats unavailable'));
    expect(state.statusBar?.text).toBe('perfd');
    // startup figures are timed from activation once, not again after a restart
    expect(state.output.filter((l) => l.includes('timing: activation to server start')).length).toBe(1);
  });

  it('rewrites the server lens commands in the middleware', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    const lenses = [
      { command: { title: 'Next: 1.2 — Generate', command: 'perfd.generateNext', arguments: ['/p'] } },
      { command: { title: '✅ approved', command: 'perfd.status', arguments: ['/p', '1.1'] } },
      { command: { title: 'Generate prompt', command: 'perfd.generate', arguments: ['/p', '1.2'] } },
      { range: {} },
    ];
    const out = await clients[0].clientOptions.middleware.provideCodeLenses({}, {}, async () => lenses);
    expect(out.map((l: { command?: { command: string } }) => l.command?.command)).toEqual([
      'perfd.lens.generateNext', 'perfd.lens.status', 'perfd.lens.generate', undefined,
    ]);
  });

  it('Generate Next Prompt through the registered command: clipboard and a read-only document', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    await vscode.commands.executeCommand('perfd.generateNextPrompt');
    expect(state.clipboard).toBe('# the prompt');
    const doc = state.shown.at(-1)!;
    expect(doc.uri.scheme).toBe('perfd');
    expect(doc.getText()).toBe('# the prompt');
    expect(doc.languageId).toBe('markdown');
    // the code lens command goes the same way
    await vscode.commands.executeCommand('perfd.lens.generateNext', '/ws/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md');
    expect(clients[0].requests.at(-1)?.params).toEqual({ command: 'perfd.generateNext', arguments: ['/ws/work-space/plans/API-CLIENT/PLAN_API-CLIENT.md'] });
    // Run Next With Model: this server has no perfd.run
    await vscode.commands.executeCommand('perfd.runNext');
    expect(state.messages.at(-1)?.text).toContain('not available yet in this perfd');
  });

  it('missing executable: a clear message with "How to install", warning status bar', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    state.answers.push({ match: 'was not found', answer: 'How to install' });
    state.config['perfd.path'] = 'perfd-not-installed'; // a name no usual install folder of this machine has
    process.env.PATH = '/nonexistent';
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('missing'));
    expect(clients).toHaveLength(0);
    const msg = state.messages.find((m) => m.level === 'error')!;
    expect(msg.text).toMatch(/^perfd: "perfd-not-installed" was not found on PATH or in .*\.local\/bin, /);
    expect(msg.text).toContain('"perfd.path" to its full path');
    expect(msg.actions).toEqual(['How to install', 'Open Settings']);
    expect(state.statusBar?.text).toBe('perfd $(warning) not found');
    expect(state.statusBar?.backgroundColor).toEqual(new vscode.ThemeColor('statusBarItem.warningBackground'));
    expect(state.statusBar?.command).toBe('perfd.restart');
    await vi.waitFor(() => expect(state.shown.at(-1)?.getText()).toContain('# Installing perfd'));
    // commands say the server is not running
    await vscode.commands.executeCommand('perfd.showStatus');
    expect(state.messages.at(-1)?.text).toContain('the language server is not running');
  });

  it('a server that fails to start shows a failed, warning status bar', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    FakeClient.startError = new Error('spawn EACCES');
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('failed'));
    expect(state.statusBar?.backgroundColor).toBeDefined();
    expect(state.output.join('\n')).toContain('spawn EACCES');
  });

  it('Restart Daemon makes a new client; changing perfd.path restarts too', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    await vscode.commands.executeCommand('perfd.restart');
    expect(clients).toHaveLength(2);
    expect(clients[0].state).toBe(1);
    expect(ext.state()).toBe('running');
    state.configListeners.fire({ affectsConfiguration: (k: string) => k === 'perfd.copyToClipboard' });
    expect(clients).toHaveLength(2);
    state.configListeners.fire({ affectsConfiguration: (k: string) => k === 'perfd.path' });
    await vi.waitFor(() => expect(clients).toHaveLength(3));
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
  });

  it('a stopped server turns the status bar into a warning', async () => {
    state.findFilesResult = [vscode.Uri.file('/ws/work-space/plans/X/PLAN_X.md')];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    await clients[0].stop();
    expect(ext.state()).toBe('stopped');
    expect(state.statusBar?.text).toBe('perfd $(debug-disconnect) stopped');
    expect(state.statusBar?.backgroundColor).toBeDefined();
  });
});

describe('workspace trust', () => {
  /** A perfd that answers `config --json` with waiting settings and records each `trust` call in a file. */
  function fakePerfd(waiting: string[]): string {
    const log = path.join(tmp, 'calls.log');
    fs.writeFileSync(path.join(tmp, 'perfd'), `#!/bin/sh
echo "$@" >> '${log}'
case "$1" in
  config) echo '${JSON.stringify({ root: '/ws', settings: [], waiting_for_trust: waiting, trusted: waiting.length === 0, files: [] })}';;
  trust) echo "trusted ${waiting.length} setting(s) of this workspace";;
esac
`);
    fs.chmodSync(path.join(tmp, 'perfd'), 0o755);
    fs.mkdirSync(path.join(tmp, 'work-space', 'plans'), { recursive: true });
    state.workspaceFolders = [{ uri: vscode.Uri.file(tmp), name: 'ws', index: 0 }]; // perfd runs in a real folder
    return log;
  }

  it('declares limited support for Restricted Mode, with perfd.path and perfd.args from user settings only', () => {
    expect(pkg.capabilities.untrustedWorkspaces.supported).toBe('limited');
    expect(pkg.capabilities.untrustedWorkspaces.restrictedConfigurations).toEqual(['perfd.path', 'perfd.args', 'perfd.model']);
  });

  it('in Restricted Mode runs no model and writes no file, and asks perfd nothing about its settings', async () => {
    const log = fakePerfd(['[llm] base_url']);
    state.trusted = false;
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    const api = ext.api()!;
    for (const [command, args] of [['perfd.run', ['@X']], ['perfd.createSubplan', ['@X', '1.1']], ['perfd.writeAnswer', ['@X', '1.1', 't']]] as const) {
      await expect(api.execute(command, [...args])).rejects.toThrow('Restricted Mode');
    }
    expect(clients[0].requests.map((r) => (r.params as { command: string }).command)).not.toContain('perfd.run');
    await api.execute('perfd.status'); // reading is allowed
    expect(fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '').not.toContain('config');
    expect(state.output.join('\n')).toContain('Restricted Mode: plans are shown; no model runs and no file is written');
  });

  it('in a trusted window names the perfd settings that wait, and runs `perfd trust` only when asked', async () => {
    const log = fakePerfd(['[llm] base_url', '[llm] api_key_env']);
    state.answers = [{ match: 'until you trust them', answer: 'Trust These Settings' }];
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    await vi.waitFor(() => expect(fs.readFileSync(log, 'utf8')).toContain('trust'));
    const warn = state.messages.find((m) => m.text.includes('until you trust them'))!;
    expect(warn.level).toBe('warning');
    expect(warn.text).toContain('[llm] base_url, [llm] api_key_env');
    expect(warn.text).toContain("Trusting VS Code's workspace does not trust them");
    expect(warn.actions).toEqual(['Trust These Settings', 'Show Them']);
    expect(fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)).toEqual(
      expect.arrayContaining(['config --json', 'trust']));
    await vi.waitFor(() => expect(state.messages.some((m) => m.text === 'perfd: trusted 2 setting(s) of this workspace')).toBe(true));
  });

  it('without the user\'s click trusts nothing; granting VS Code trust later asks then', async () => {
    const log = fakePerfd(['[team] redis_url']);
    state.trusted = false;
    const ext = await activate();
    await vi.waitFor(() => expect(ext.state()).toBe('running'));
    expect(state.messages.some((m) => m.text.includes('until you trust them'))).toBe(false);
    state.trusted = true;
    state.trustListeners.fire();
    await vi.waitFor(() => expect(state.messages.some((m) => m.text.includes('[team] redis_url'))).toBe(true));
    await new Promise((r) => setTimeout(r, 50));
    const calls = fs.readFileSync(log, 'utf8').split('\n');
    expect(calls).toContain('config --json');
    expect(calls).not.toContain('trust'); // dismissed: nothing trusted
  });
});
