// The MCP server definition the extension gives VS Code's agent mode (vscode.lm.registerMcpServerDefinitionProvider).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import * as vscode from 'vscode';
import { mcpApi } from '../src/mcp';
import { mcpDefinitions } from '../src/pure/mcp';
import { DEFAULTS } from '../src/pure/settings';
import { resetMock, state } from './vscode-mock';

type McpStdioServerDefinition = InstanceType<typeof import('./vscode-mock').McpStdioServerDefinition>;

vi.mock('vscode-languageclient/node', () => ({
  LanguageClient: class {
    status = 1;
    onDidChangeState() { return { dispose() {} }; }
    onNotification() { return { dispose() {} }; }
    async start() {}
    async stop() {}
    async dispose() {}
    isRunning() { return false; }
  },
  State: { Stopped: 1, Running: 2, Starting: 3 },
  TransportKind: { stdio: 0 },
  RevealOutputChannelOn: { Never: 4 },
}));

interface Provider {
  onDidChangeMcpServerDefinitions: (l: () => void) => { dispose(): void };
  provideMcpServerDefinitions(): Promise<McpStdioServerDefinition[]>;
  resolveMcpServerDefinition(d: McpStdioServerDefinition): McpStdioServerDefinition | undefined;
}

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
let tmp: string;
let ws: string;
let savedPath: string | undefined;

beforeEach(() => {
  resetMock();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfd-mcp-'));
  const exe = path.join(tmp, 'perfd');
  fs.writeFileSync(exe, '#!/bin/sh\n');
  fs.chmodSync(exe, 0o755);
  ws = path.join(tmp, 'ws');
  fs.mkdirSync(path.join(ws, 'work-space', 'plans'), { recursive: true });
  state.workspaceFolders = [{ uri: vscode.Uri.file(ws), name: 'ws', index: 0 }];
  savedPath = process.env.PATH;
  process.env.PATH = tmp;
});

afterEach(async () => {
  const ext = await import('../src/extension');
  await ext.deactivate();
  process.env.PATH = savedPath;
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function provider(): Promise<Provider> {
  const ext = await import('../src/extension');
  const context = { subscriptions: [] as { dispose(): void }[], extension: { packageJSON: { version: '0.1.0' } } };
  await ext.activate(context as unknown as vscode.ExtensionContext);
  const p = state.mcpProviders.get(pkg.contributes.mcpServerDefinitionProviders[0].id);
  expect(p).toBeDefined();
  return p as Provider;
}

describe('MCP server definition provider', () => {
  it('is contributed in package.json under the id it registers', () => {
    expect(pkg.contributes.mcpServerDefinitionProviders).toEqual([{ id: 'perfd.mcp', label: 'perfd' }]);
  });

  it('offers `perfd mcp --root FOLDER` for the folder with plans, run in that folder', async () => {
    const defs = await (await provider()).provideMcpServerDefinitions();
    expect(defs).toHaveLength(1);
    const d = defs[0];
    expect(d).toBeInstanceOf((vscode as unknown as { McpStdioServerDefinition: Function }).McpStdioServerDefinition);
    expect(d.label).toBe('perfd');
    expect(d.command).toBe(path.join(tmp, 'perfd'));
    expect(d.args).toEqual(['mcp', '--root', ws]);
    expect(d.cwd?.fsPath).toBe(ws);
    expect(d.version).toBe('0.1.0');
  });

  it('offers nothing in Restricted Mode, and tells VS Code to ask again once trust is granted', async () => {
    state.trusted = false;
    const p = await provider();
    expect(await p.provideMcpServerDefinitions()).toEqual([]);
    const asked = vi.fn();
    p.onDidChangeMcpServerDefinitions(asked);
    state.trusted = true;
    state.trustListeners.fire();
    expect(asked).toHaveBeenCalledTimes(1);
    const defs = await p.provideMcpServerDefinitions();
    expect(defs).toHaveLength(1);
    state.trusted = false;
    expect(p.resolveMcpServerDefinition(defs[0])).toBeUndefined();
  });

  it('runs `python -m perfd mcp` for an interpreter, and keeps off the daemon as the language server does', async () => {
    state.config = { 'perfd.path': path.join(tmp, 'python3'), 'perfd.args': ['--standalone'] };
    fs.writeFileSync(path.join(tmp, 'python3'), '#!/bin/sh\n', { mode: 0o755 });
    const [d] = await (await provider()).provideMcpServerDefinitions();
    expect(d.command).toBe(path.join(tmp, 'python3'));
    expect(d.args).toEqual(['-m', 'perfd', 'mcp', '--root', ws, '--no-daemon']);
  });

  it('names each folder in a multi-root window, and skips one whose executable is missing', () => {
    const folders = [{ name: 'a', path: '/a' }, { name: 'b', path: '/b' }];
    const defs = mcpDefinitions(folders, () => DEFAULTS, (cmd, cwd) => (cwd === '/a' ? `/bin/${cmd}` : undefined), true, '1');
    expect(defs).toEqual([{ label: 'perfd (a)', command: '/bin/perfd', args: ['mcp', '--root', '/a'], cwd: '/a', version: '1' }]);
  });

  it('is not registered on a VS Code without the MCP API', () => {
    expect(mcpApi({})).toBeUndefined();
    expect(mcpApi({ lm: {} })).toBeUndefined();
    expect(mcpApi(vscode)).toBeDefined();
  });
});
