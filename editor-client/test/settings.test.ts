import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LENS_COMMANDS, rewriteLensCommand } from '../src/pure/plans';
import {
  folderSelector,
  DEFAULTS,
  DOCUMENT_SELECTOR,
  expand,
  isPlanFile,
  notFoundMessage,
  readSettings,
  resolveExecutable,
  serverCommand,
  statsCommand,
  usualDirs,
} from '../src/pure/settings';
import type { PlanSummary } from '../src/pure/types';

const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));

describe('settings', () => {
  it('defaults match package.json contributes.configuration', () => {
    const props = pkg.contributes.configuration.properties;
    expect(props['perfd.path'].default).toBe(DEFAULTS.path);
    expect(props['perfd.args'].default).toEqual(DEFAULTS.args);
    expect(props['perfd.trace.server'].default).toBe(DEFAULTS.trace);
    expect(props['perfd.copyToClipboard'].default).toBe(DEFAULTS.copyToClipboard);
    expect(props['perfd.model'].default).toBe(DEFAULTS.model);
    expect(readSettings(() => undefined)).toEqual(DEFAULTS);
  });

  it('validates and expands values', () => {
    const cfg: Record<string, unknown> = {
      path: '  ~/venv/bin/perfd ',
      args: ['--root', '${workspaceFolder}/sub', 3, null],
      'trace.server': 'verbose',
      copyToClipboard: false,
      model: ' cheap ',
    };
    expect(readSettings((k) => cfg[k], { home: '/home/u', workspaceFolder: '/ws' })).toEqual({
      path: '/home/u/venv/bin/perfd',
      args: ['--root', '/ws/sub'],
      trace: 'verbose',
      copyToClipboard: false,
      model: 'cheap',
    });
    const bad: Record<string, unknown> = { path: '', args: 'x', 'trace.server': 'loud', copyToClipboard: 'yes', model: 3 };
    expect(readSettings((k) => bad[k])).toEqual(DEFAULTS);
    expect(expand('${userHome}/x', { home: '/h' })).toBe('/h/x');
    expect(expand('~user/x', { home: '/h' })).toBe('~user/x');
  });

  it('builds the server command line', () => {
    expect(serverCommand({ ...DEFAULTS, args: ['--root', '/r'] })).toEqual({ command: 'perfd', args: ['lsp', '--root', '/r'] });
    expect(serverCommand({ ...DEFAULTS, path: '/v/bin/python3.11' })).toEqual({ command: '/v/bin/python3.11', args: ['-m', 'perfd', 'lsp'] });
    expect(serverCommand({ ...DEFAULTS, path: 'C:\\v\\python.exe' }).args[0]).toBe(process.platform === 'win32' ? '-m' : 'lsp');
    expect(serverCommand({ ...DEFAULTS, path: '/opt/pythonic-perfd' }).args).toEqual(['lsp']);
  });

  it('builds the early stats command line from the same path and arguments', () => {
    expect(statsCommand({ ...DEFAULTS, args: ['--root', '/r'] })).toEqual({ command: 'perfd', args: ['stats', '--json', '--root', '/r'] });
    expect(statsCommand({ ...DEFAULTS, path: '/v/bin/python3' })).toEqual({ command: '/v/bin/python3', args: ['-m', 'perfd', 'stats', '--json'] });
    // no shared daemon, no shared counters
    expect(statsCommand({ ...DEFAULTS, args: ['--standalone'] })).toBeUndefined();
    expect(statsCommand({ ...DEFAULTS, args: ['--root', '/r', '--no-daemon'] })).toBeUndefined();
  });

  it('finds the executable on PATH or by path', () => {
    const exists = new Set(['/usr/bin/perfd', '/opt/venv/bin/perfd', '/ws/tools/perfd']);
    const env = { PATH: '/nope:/usr/bin::/opt/venv/bin', platform: 'linux', isExecutable: (f: string) => exists.has(f), cwd: '/ws' };
    expect(resolveExecutable('perfd', env)).toBe('/usr/bin/perfd');
    expect(resolveExecutable('perfd', { ...env, PATH: '/opt/venv/bin' })).toBe('/opt/venv/bin/perfd');
    expect(resolveExecutable('perfd', { ...env, PATH: undefined })).toBeUndefined();
    expect(resolveExecutable('/opt/venv/bin/perfd', env)).toBe('/opt/venv/bin/perfd');
    expect(resolveExecutable('tools/perfd', env)).toBe('/ws/tools/perfd'); // relative with a slash: from cwd
    expect(resolveExecutable('./tools/perfd', env)).toBe('/ws/tools/perfd');
    expect(resolveExecutable('/missing/perfd', env)).toBeUndefined();
  });

  it('finds perfd in the usual install folders when a GUI app\'s PATH lacks them (macOS)', () => {
    // VS Code started from the Dock: launchd's PATH, not the login shell's
    const guiPath = '/usr/bin:/bin:/usr/sbin:/sbin';
    const mac = (files: string[]) => ({
      PATH: guiPath, platform: 'darwin', home: '/Users/ann', isExecutable: (f: string) => files.includes(f),
    });
    expect(resolveExecutable('perfd', mac(['/Users/ann/.local/bin/perfd', '/opt/homebrew/bin/perfd'])))
      .toBe('/Users/ann/.local/bin/perfd');
    expect(resolveExecutable('perfd', mac(['/opt/homebrew/bin/perfd', '/usr/local/bin/perfd']))).toBe('/opt/homebrew/bin/perfd');
    expect(resolveExecutable('perfd', mac(['/usr/local/bin/perfd']))).toBe('/usr/local/bin/perfd');
    expect(resolveExecutable('perfd', mac(['/Users/ann/Library/Python/3.12/bin/perfd'])))
      .toBe('/Users/ann/Library/Python/3.12/bin/perfd');
    // PATH first, when it has one
    expect(resolveExecutable('perfd', { ...mac(['/usr/bin/perfd', '/opt/homebrew/bin/perfd']) })).toBe('/usr/bin/perfd');
    // a path is taken as given, never searched for elsewhere
    expect(resolveExecutable('/Users/ann/venv/bin/perfd', mac(['/opt/homebrew/bin/perfd']))).toBeUndefined();
    expect(resolveExecutable('perfd', mac([]))).toBeUndefined();
    // without a home, the system folders only
    expect(resolveExecutable('perfd', { ...mac(['/Users/ann/.local/bin/perfd']), home: undefined })).toBeUndefined();
  });

  it('searches ~/.local/bin on Linux, nothing more on Windows', () => {
    expect(usualDirs('linux', '/home/u')).toEqual(['/home/u/.local/bin', '/usr/local/bin', '/home/linuxbrew/.linuxbrew/bin']);
    expect(usualDirs('darwin', '/Users/ann').slice(0, 3)).toEqual(['/Users/ann/.local/bin', '/opt/homebrew/bin', '/usr/local/bin']);
    expect(usualDirs('win32', 'C:\\Users\\ann')).toEqual([]);
    const env = { PATH: '/usr/bin', platform: 'linux', home: '/home/u', isExecutable: (f: string) => f === '/home/u/.local/bin/perfd' };
    expect(resolveExecutable('perfd', env)).toBe('/home/u/.local/bin/perfd');
  });

  it('says where it looked and how to set perfd.path', () => {
    const mac = notFoundMessage('perfd', 'darwin', '/Users/ann');
    expect(mac).toContain('not found on PATH or in /Users/ann/.local/bin, /opt/homebrew/bin, /usr/local/bin');
    expect(mac).toContain('Dock or Finder does not see the PATH your shell sets up: set "perfd.path"');
    expect(mac).toContain('`which perfd`');
    expect(notFoundMessage('perfd', 'linux', '/home/u')).toContain('. Set "perfd.path" to its full path');
    expect(notFoundMessage('perfd', 'win32', undefined)).toBe(
      'perfd: "perfd" was not found on PATH. Set "perfd.path" to its full path (`where perfd` in a terminal prints it).');
    expect(notFoundMessage('/opt/x/perfd', 'darwin', '/Users/ann')).toBe(
      'perfd: the executable "/opt/x/perfd" was not found. Install perfd or correct "perfd.path".');
  });

  it('finds perfd.exe on Windows through PATHEXT', () => {
    const exists = new Set(['C:\\py\\Scripts\\perfd.EXE']);
    const env = { PATH: 'C:\\x;C:\\py\\Scripts', PATHEXT: '.COM;.EXE', platform: 'win32', isExecutable: (f: string) => exists.has(f) };
    expect(resolveExecutable('perfd', env)).toBe('C:\\py\\Scripts\\perfd.EXE');
  });

  it('recognises plan files', () => {
    expect(isPlanFile('/w/plans/X/PLAN_X.md')).toBe(true);
    expect(isPlanFile('/w/plans/X/subplans/SUBPLAN_X_01.md')).toBe(true);
    expect(isPlanFile('C:\\w\\EXECUTION_TASK_X_01_01.md')).toBe(true);
    expect(isPlanFile('/w/README.md')).toBe(false);
    expect(isPlanFile('/w/PLAN_X.txt')).toBe(false);
    expect(isPlanFile('/w/APPROVED_01.md')).toBe(false);
    expect(isPlanFile(undefined)).toBe(false);
    expect(DOCUMENT_SELECTOR[0]).toMatchObject({ scheme: 'file', language: 'markdown' });
  });
});

describe('code lens commands', () => {
  it('rewrites only the server lens commands', () => {
    expect(rewriteLensCommand('perfd.generateNext')).toBe('perfd.lens.generateNext');
    expect(rewriteLensCommand('perfd.generate')).toBe('perfd.lens.generate');
    expect(rewriteLensCommand('perfd.status')).toBe('perfd.lens.status');
    expect(rewriteLensCommand('editor.action.showReferences')).toBe('editor.action.showReferences');
    // client-side ids never collide with ids vscode-languageclient registers for the server
    for (const id of Object.values(LENS_COMMANDS)) expect(Object.keys(LENS_COMMANDS)).not.toContain(id);
  });
});

describe('package.json', () => {
  it('has the marketplace fields', () => {
    for (const k of ['publisher', 'name', 'displayName', 'description', 'version', 'license', 'repository', 'icon', 'main', 'categories']) {
      expect(pkg[k], k).toBeTruthy();
    }
    expect(pkg.engines.vscode).toMatch(/^\^1\.\d+/);
    expect(pkg.main).toBe('./dist/extension.js');
    expect(pkg.activationEvents).toEqual(['workspaceContains:**/work-space/plans', 'onLanguage:markdown']);
    expect(fs.existsSync(path.join(__dirname, '..', pkg.icon))).toBe(true);
    const png = fs.readFileSync(path.join(__dirname, '..', pkg.icon));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(128);
    expect(png.readUInt32BE(20)).toBe(128);
  });
  it('menus only name contributed commands, and no contributed id collides with a server command', () => {
    const ids = new Set(pkg.contributes.commands.map((c: { command: string }) => c.command));
    for (const items of Object.values(pkg.contributes.menus) as { command: string }[][]) {
      for (const m of items) expect(ids.has(m.command), m.command).toBe(true);
    }
    for (const server of ['perfd.generateNext', 'perfd.generate', 'perfd.status', 'perfd.stats', 'perfd.clearCache', 'perfd.run',
      'perfd.createSubplan', 'perfd.openFile', 'perfd.writeAnswer', 'perfd.models']) {
      expect(ids.has(server), server).toBe(false);
    }
  });
  it('every setting is described for the Settings UI', () => {
    for (const [k, v] of Object.entries(pkg.contributes.configuration.properties) as [string, Record<string, unknown>][]) {
      expect(String(v.markdownDescription ?? v.description ?? '').length, k).toBeGreaterThan(30);
    }
  });
  it('contributes the Plans view in its own activity-bar container, and a walkthrough whose media exist', () => {
    const [container] = pkg.contributes.viewsContainers.activitybar;
    expect(container.id).toBe('perfd');
    expect(fs.existsSync(path.join(__dirname, '..', container.icon))).toBe(true);
    expect(pkg.contributes.views.perfd.map((v: { id: string }) => v.id)).toEqual(['perfd.plans']);
    const [walk] = pkg.contributes.walkthroughs;
    expect(walk.steps.map((s: { id: string }) => s.id)).toEqual(['install', 'view', 'generate', 'run']);
    for (const step of walk.steps) expect(fs.existsSync(path.join(__dirname, '..', step.media.markdown)), step.id).toBe(true);
    expect(walk.steps[0].completionEvents).toEqual(['onCommand:perfd.checkInstall']);
  });
});

describe('folderSelector', () => {
  it("matches one folder's plan files, its glob characters literally", () => {
    expect(folderSelector('/ws/a/')).toEqual([{ scheme: 'file', language: 'markdown', pattern: '/ws/a/**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md' }]);
    expect(folderSelector('/ws/{x}*?')[0].pattern).toBe('/ws/[{]x[}][*][?]/**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md');
    expect(folderSelector('C:\\ws\\b')[0].pattern).toBe('C:/ws/b/**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md');
  });
});

describe('perfd settings trust', () => {
  it('builds the config and trust command lines with the --root of the extra arguments only', async () => {
    const { configCommand, trustCommand } = await import('../src/pure/settings');
    const s = { ...DEFAULTS, path: '/venv/bin/python', args: ['--root', '/ws', '--standalone'] };
    expect(configCommand(s)).toEqual({ command: '/venv/bin/python', args: ['-m', 'perfd', 'config', '--json', '--root', '/ws'] });
    expect(trustCommand({ ...s, path: 'perfd' })).toEqual({ command: 'perfd', args: ['trust', '--root', '/ws'] });
    expect(trustCommand({ ...s, path: 'perfd' }, true).args).toEqual(['trust', '--show', '--root', '/ws']);
  });

  it('reads what waits for trust from perfd config --json, and nothing from anything else', async () => {
    const { waitingForTrust, trustMessage } = await import('../src/pure/settings');
    expect(waitingForTrust('{"waiting_for_trust": ["[llm] model"], "trusted": false}')).toEqual(['[llm] model']);
    expect(waitingForTrust('{"waiting_for_trust": []}')).toEqual([]);
    expect(waitingForTrust('not json')).toBeUndefined();
    expect(waitingForTrust('{"waiting_for_trust": [1]}')).toBeUndefined();
    expect(trustMessage('ws', ['a', 'b', 'c', 'd', 'e'])).toContain('a, b, c and 2 more in "ws"');
  });
});
