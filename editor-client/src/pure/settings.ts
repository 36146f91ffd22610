// Settings handling and locating the perfd executable. Pure: the config getter, the
// environment and the file checks are passed in.
import * as path from 'node:path';

export type Trace = 'off' | 'messages' | 'verbose';

export interface Settings {
  path: string;
  args: string[];
  trace: Trace;
  copyToClipboard: boolean;
  /** The `[models.NAME]` of perfd's settings every run uses; '' for `[llm]`. */
  model: string;
}

export const DEFAULTS: Settings = { path: 'perfd', args: [], trace: 'off', copyToClipboard: true, model: '' };

/** Keys that need the language server to be restarted when they change. */
export const RESTART_KEYS = ['perfd.path', 'perfd.args'];

export interface Vars {
  home?: string;
  workspaceFolder?: string;
}

/** `~` and `${workspaceFolder}` / `${userHome}` in a path or argument. */
export function expand(s: string, vars: Vars): string {
  let out = s;
  if (vars.home && (out === '~' || out.startsWith('~/') || out.startsWith('~\\'))) out = vars.home + out.slice(1);
  if (vars.home) out = out.split('${userHome}').join(vars.home);
  if (vars.workspaceFolder) out = out.split('${workspaceFolder}').join(vars.workspaceFolder);
  return out;
}

/** Settings out of a configuration getter (`vscode.workspace.getConfiguration('perfd').get`), validated. */
export function readSettings(get: (key: string) => unknown, vars: Vars = {}): Settings {
  const p = get('path');
  const args = get('args');
  const trace = get('trace.server');
  const copy = get('copyToClipboard');
  const model = get('model');
  return {
    path: typeof p === 'string' && p.trim() ? expand(p.trim(), vars) : DEFAULTS.path,
    args: Array.isArray(args) ? args.filter((a): a is string => typeof a === 'string').map((a) => expand(a, vars)) : [],
    trace: trace === 'messages' || trace === 'verbose' ? trace : 'off',
    copyToClipboard: typeof copy === 'boolean' ? copy : DEFAULTS.copyToClipboard,
    model: typeof model === 'string' ? model.trim() : DEFAULTS.model,
  };
}

const PYTHON_RE = /^python(\d+(\.\d+)*)?(\.exe)?$/i;

/**
 * The command line of the language server: `perfd lsp ARGS`; a Python interpreter given as
 * perfd.path runs `python -m perfd lsp ARGS` (the same relay to the workspace's daemon, for
 * when perfd's script is not on PATH).
 */
export function serverCommand(s: Settings): { command: string; args: string[] } {
  return perfdCommand(s, ['lsp', ...s.args]);
}

/**
 * The command line that asks the workspace's daemon for its counters, `perfd stats --json ARGS`.
 * The extension runs it beside the language server's start: the daemon's plain socket answers
 * as soon as the daemon is up, while an editor session on a cold daemon first loads pygls and
 * lsprotocol (most of a second), so the status bar has numbers earlier. None when the
 * arguments keep the server off the shared daemon (`--standalone`, `--no-daemon`): then there
 * are no shared counters to show.
 */
export function statsCommand(s: Settings): { command: string; args: string[] } | undefined {
  if (s.args.some((a) => a === '--standalone' || a === '--no-daemon')) return undefined;
  return perfdCommand(s, ['stats', '--json', ...s.args]);
}

/**
 * The command line that reads the workspace's model-call history for the dashboard,
 * `perfd stats --history --json [--root DIR]`: perfd reads the history file itself (no daemon).
 * Only `--root` of the extra arguments applies to it.
 */
export function historyCommand(s: Settings): { command: string; args: string[] } {
  return perfdCommand(s, ['stats', '--history', '--json', ...rootArgs(s)]);
}

/**
 * The MCP server of one workspace folder, `perfd mcp --root FOLDER`, for VS Code's agent mode: kept
 * off the shared daemon (`--no-daemon`) when the extra arguments keep the language server off it.
 */
export function mcpCommand(s: Settings, folder: string): { command: string; args: string[] } {
  const alone = s.args.some((a) => a === '--standalone' || a === '--no-daemon');
  return perfdCommand(s, ['mcp', '--root', folder, ...(alone ? ['--no-daemon'] : [])]);
}

/** Only `--root` of the extra arguments applies to the commands the extension runs beside the server. */
function rootArgs(s: Settings): string[] {
  const root: string[] = [];
  s.args.forEach((a, i) => {
    if (a === '--root' && i + 1 < s.args.length) root.push(a, s.args[i + 1]);
    else if (a.startsWith('--root=')) root.push(a);
  });
  return root;
}

/** `perfd config --json`: the settings in force, and which of the workspace's wait for `perfd trust`. */
export function configCommand(s: Settings): { command: string; args: string[] } {
  return perfdCommand(s, ['config', '--json', ...rootArgs(s)]);
}

/** `perfd trust` (record the user's trust in the workspace's settings) or `perfd trust --show`. */
export function trustCommand(s: Settings, show = false): { command: string; args: string[] } {
  return perfdCommand(s, ['trust', ...(show ? ['--show'] : []), ...rootArgs(s)]);
}

/** The workspace settings that wait for the user's trust, from `perfd config --json` (undefined: unreadable). */
export function waitingForTrust(stdout: string): string[] | undefined {
  try {
    const v = JSON.parse(stdout) as { waiting_for_trust?: unknown };
    const w = v?.waiting_for_trust;
    return Array.isArray(w) && w.every((x) => typeof x === 'string') ? (w as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** What the extension says when a trusted VS Code workspace still has perfd settings waiting. */
export function trustMessage(folder: string, waiting: readonly string[]): string {
  const shown = waiting.length > 3 ? `${waiting.slice(0, 3).join(', ')} and ${waiting.length - 3} more` : waiting.join(', ');
  return `perfd ignores ${shown} in "${folder}" until you trust them: they send data, read outside the ` +
    'workspace or spend money. Trusting VS Code\'s workspace does not trust them.';
}

/** Commands of the server that run a model or write a file: none while VS Code is in Restricted Mode. */
export const NEEDS_WORKSPACE_TRUST: ReadonlySet<string> = new Set(['perfd.run', 'perfd.createSubplan', 'perfd.writeAnswer']);

export const RESTRICTED_MESSAGE =
  'perfd runs no model and writes no file in Restricted Mode: trust this workspace first (Manage Workspace Trust).';

function perfdCommand(s: Settings, args: string[]): { command: string; args: string[] } {
  return { command: s.path, args: PYTHON_RE.test(path.basename(s.path)) ? ['-m', 'perfd', ...args] : args };
}

export interface ExecEnv {
  PATH?: string;
  PATHEXT?: string;
  platform: string;
  isExecutable: (file: string) => boolean;
  cwd?: string;
  /** The user's home folder, for the usual install places searched after PATH. */
  home?: string;
}

/**
 * Where installers put `perfd` that a GUI app's PATH may lack: on macOS VS Code started from
 * the Dock or Finder gets launchd's PATH (`/usr/bin:/bin:/usr/sbin:/sbin`), not the one a login
 * shell builds from ~/.zprofile. pipx and `pip install --user` on Linux use ~/.local/bin,
 * Homebrew /opt/homebrew/bin (Apple silicon) or /usr/local/bin (Intel), python.org's
 * framework build `pip install --user` ~/Library/Python/3.X/bin. Searched in this order,
 * after PATH, for a bare name only. None on Windows (PATH and PATHEXT there).
 */
export function usualDirs(platform: string, home: string | undefined): string[] {
  if (platform === 'win32') return [];
  const inHome = (...parts: string[]) => (home ? [path.posix.join(home, ...parts)] : []);
  const dirs = [...inHome('.local', 'bin')];
  if (platform === 'darwin') {
    dirs.push('/opt/homebrew/bin', '/usr/local/bin');
    for (const v of ['3.14', '3.13', '3.12', '3.11']) dirs.push(...inHome('Library', 'Python', v, 'bin'));
  } else {
    dirs.push('/usr/local/bin', '/home/linuxbrew/.linuxbrew/bin');
  }
  return dirs;
}

/**
 * The executable's absolute path: a path as given (relative to cwd), a bare name searched on
 * PATH and then in `usualDirs`; undefined when there is none.
 */
export function resolveExecutable(cmd: string, env: ExecEnv): string | undefined {
  const win = env.platform === 'win32';
  const p = win ? path.win32 : path.posix;
  const exts = win ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').filter(Boolean)] : [''];
  const tryFile = (f: string) => exts.map((e) => f + e).find((c) => env.isExecutable(c));
  if (cmd.includes('/') || (win && cmd.includes('\\'))) {
    return tryFile(p.isAbsolute(cmd) ? cmd : p.resolve(env.cwd ?? '.', cmd));
  }
  for (const dir of [...(env.PATH ?? '').split(win ? ';' : ':'), ...usualDirs(env.platform, env.home)]) {
    if (!dir) continue;
    const hit = tryFile(p.join(dir, cmd));
    if (hit) return hit;
  }
  return undefined;
}

/** Why perfd was not found, and what to do: one message for the error notification and the log. */
export function notFoundMessage(cmd: string, platform: string, home: string | undefined): string {
  if (cmd.includes('/') || (platform === 'win32' && cmd.includes('\\'))) {
    return `perfd: the executable "${cmd}" was not found. Install perfd or correct "perfd.path".`;
  }
  const places = usualDirs(platform, home);
  const where = places.length ? ` or in ${places.join(', ')}` : '';
  const set = platform === 'darwin'
    ? ' VS Code started from the Dock or Finder does not see the PATH your shell sets up: set'
    : ' Set';
  const which = platform === 'win32' ? 'where perfd' : 'which perfd';
  return `perfd: "${cmd}" was not found on PATH${where}.${set} "perfd.path" to its full path (\`${which}\` in a terminal prints it).`;
}

export const PLAN_FILE_RE = /^(PLAN|SUBPLAN|EXECUTION_TASK)_.*\.md$/;

export function isPlanFile(file: string | undefined): boolean {
  if (!file) return false;
  return PLAN_FILE_RE.test(file.split(/[\\/]/).pop() ?? '');
}

/** The language client's document selector: markdown PLAN_/SUBPLAN_/EXECUTION_TASK_ files on disk. */
export const DOCUMENT_SELECTOR = [
  { scheme: 'file', language: 'markdown', pattern: '**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md' },
];

/**
 * One folder's client's selector: its plan files only, so in a multi-root workspace each file
 * goes to the server of the folder that holds it. Glob characters `{}*?` in the folder's path
 * are matched literally by putting each in a class (`[{]` matches "{").
 */
export function folderSelector(folder: string): { scheme: string; language: string; pattern: string }[] {
  const base = folder.replace(/\\/g, '/').replace(/\/+$/, '').replace(/[{}*?]/g, (c) => `[${c}]`);
  return [{ scheme: 'file', language: 'markdown', pattern: `${base}/**/{PLAN,SUBPLAN,EXECUTION_TASK}_*.md` }];
}

export const INSTALL_HELP = `# Installing perfd

The perfd extension runs the perfd language server (\`perfd lsp\`), which comes with the
perfd Python package (Python 3.11 or newer).

1. Install perfd, for example in a virtual environment:

   \`\`\`sh
   python3 -m venv ~/.venvs/perfd
   ~/.venvs/perfd/bin/pip install perfd        # or, from a checkout: pip install -e .
   \`\`\`

2. Make \`perfd\` visible to VS Code, either
   - put it in a folder the extension searches: PATH, \`~/.local/bin\` (pipx puts it there),
     and on macOS \`/opt/homebrew/bin\` and \`/usr/local/bin\` too (e.g.
     \`ln -s ~/.venvs/perfd/bin/perfd ~/.local/bin/perfd\`), or
   - set the setting **perfd.path** to the executable, e.g. \`~/.venvs/perfd/bin/perfd\`
     (\`which perfd\` in a terminal prints it). On macOS, VS Code started from the Dock or
     Finder does not get the PATH your login shell builds (~/.zprofile, ~/.zshrc), so a
     \`perfd\` found in Terminal may not be found by the editor: set **perfd.path**.
     A Python interpreter works too (\`~/.venvs/perfd/bin/python\`): the extension then runs
     \`python -m perfd lsp\`.

3. Run **perfd: Restart Daemon** from the Command Palette.

Extra arguments for the server (e.g. \`["--root", "/path/to/project"]\`) go in **perfd.args**.
The server's log is in the **perfd** output channel; set **perfd.trace.server** to
\`messages\` or \`verbose\` to see the LSP traffic as well.
`;
