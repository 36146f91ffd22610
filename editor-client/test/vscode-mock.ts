// A small stand-in for the `vscode` module: enough of the API for src/extension.ts, recording
// what the extension does so tests can assert on it.
import { vi } from 'vitest';

type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (l: Listener<T>) => {
    this.listeners.push(l);
    return { dispose: () => (this.listeners = this.listeners.filter((x) => x !== l)) };
  };
  fire(e: T) {
    for (const l of [...this.listeners]) l(e);
  }
  dispose() {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  get fsPath() {
    return this.path;
  }
  static from(c: { scheme: string; path: string }) {
    return new Uri(c.scheme, c.path);
  }
  static file(p: string) {
    return new Uri('file', p);
  }
  static parse(s: string) {
    const i = s.indexOf(':');
    return new Uri(s.slice(0, i), s.slice(i + 1).replace(/^\/\//, ''));
  }
  toString() {
    return `${this.scheme}:${this.path}`;
  }
}

export class ThemeIcon {
  static readonly Folder = new ThemeIcon('folder');
  constructor(readonly id: string) {}
}

export enum TreeItemCollapsibleState {
  None = 0,
  Collapsed = 1,
  Expanded = 2,
}

export class TreeItem {
  id?: string;
  description?: string;
  iconPath?: unknown;
  tooltip?: unknown;
  contextValue?: string;
  command?: unknown;
  resourceUri?: Uri;
  constructor(
    readonly label: string,
    readonly collapsibleState: TreeItemCollapsibleState = TreeItemCollapsibleState.None,
  ) {}
}

export class RelativePattern {
  constructor(
    readonly base: unknown,
    readonly pattern: string,
  ) {}
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  constructor(
    readonly startLine: number,
    readonly startCharacter: number,
    readonly endLine: number,
    readonly endCharacter: number,
  ) {}
}

export class WorkspaceEdit {
  readonly inserts: { uri: Uri; pos: Position; text: string }[] = [];
  insert(uri: Uri, pos: Position, text: string) {
    this.inserts.push({ uri, pos, text });
  }
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class MarkdownString {
  supportThemeIcons = false;
  constructor(readonly value: string) {}
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}
export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}
export enum ViewColumn {
  Active = -1,
  Beside = -2,
}

export interface FakeDoc {
  uri: Uri;
  languageId: string;
  getText(): string;
}

export interface UntitledDoc extends FakeDoc {
  text: string;
  closed: boolean;
  readonly isClosed: boolean;
  readonly lineCount: number;
  lineAt(n: number): { range: { end: Position } };
}

export const state = {
  untitled: [] as UntitledDoc[],
  config: {} as Record<string, unknown>,
  commands: new Map<string, (...a: unknown[]) => unknown>(),
  providers: new Map<string, { provideTextDocumentContent(u: Uri): string }>(),
  messages: [] as { level: string; text: string; actions: string[] }[],
  /** Answers for show*Message, by a substring of the message. */
  answers: [] as { match: string; answer: string | undefined }[],
  pickAnswer: undefined as undefined | ((items: { label: string }[]) => { label: string } | undefined),
  /** What showInputBox answers (undefined: dismissed). */
  inputAnswer: undefined as string | undefined,
  shown: [] as FakeDoc[],
  clipboard: '',
  statusBar: undefined as undefined | Record<string, unknown>,
  output: [] as string[],
  textDocuments: [] as FakeDoc[],
  workspaceFolders: [{ uri: Uri.file('/ws'), name: 'ws', index: 0 }] as { uri: Uri; name: string; index: number }[] | undefined,
  findFilesResult: [] as Uri[],
  openListeners: new EventEmitter<FakeDoc>(),
  configListeners: new EventEmitter<{ affectsConfiguration(k: string): boolean }>(),
  activeEditor: undefined as undefined | { document: FakeDoc },
  trees: new Map<string, { provider: unknown; view: Record<string, unknown> }>(),
  contexts: new Map<string, unknown>(),
  editorListeners: new EventEmitter<unknown>(),
  folderListeners: new EventEmitter<{ added: { uri: Uri; name: string; index: number }[]; removed: { uri: Uri; name: string; index: number }[] }>(),
  /** MCP server definition providers, by id (vscode.lm.registerMcpServerDefinitionProvider). */
  mcpProviders: new Map<string, unknown>(),
  /** VS Code's workspace trust (false: Restricted Mode). */
  trusted: true,
  trustListeners: new EventEmitter<void>(),
};

export function resetMock() {
  state.config = {};
  state.commands.clear();
  state.providers.clear();
  state.messages = [];
  state.answers = [];
  state.pickAnswer = undefined;
  state.inputAnswer = undefined;
  state.shown = [];
  state.clipboard = '';
  state.statusBar = undefined;
  state.output = [];
  state.textDocuments = [];
  state.workspaceFolders = [{ uri: Uri.file('/ws'), name: 'ws', index: 0 }];
  state.findFilesResult = [];
  state.openListeners = new EventEmitter();
  state.configListeners = new EventEmitter();
  state.activeEditor = undefined;
  state.trees = new Map();
  state.untitled = [];
  state.contexts = new Map();
  state.editorListeners = new EventEmitter();
  state.folderListeners = new EventEmitter();
  state.trusted = true;
  state.trustListeners = new EventEmitter();
  state.mcpProviders = new Map();
}

function message(level: string) {
  return (text: string, ...actions: string[]) => {
    state.messages.push({ level, text, actions });
    const a = state.answers.find((x) => text.includes(x.match));
    return Promise.resolve(a?.answer);
  };
}

export const window = {
  createOutputChannel: vi.fn((name: string) => ({
    name,
    append: (s: string) => state.output.push(s),
    appendLine: (s: string) => state.output.push(s),
    replace: () => undefined,
    clear: () => undefined,
    show: () => undefined,
    hide: () => undefined,
    dispose: () => undefined,
  })),
  createStatusBarItem: vi.fn(() => {
    const item: Record<string, unknown> = { visible: false };
    item.show = () => (item.visible = true);
    item.hide = () => (item.visible = false);
    item.dispose = () => undefined;
    state.statusBar = item;
    return item;
  }),
  showInformationMessage: vi.fn(message('info')),
  showWarningMessage: vi.fn(message('warning')),
  showErrorMessage: vi.fn(message('error')),
  showQuickPick: vi.fn(async (items: { label: string }[]) => state.pickAnswer?.(items)),
  showInputBox: vi.fn(async () => state.inputAnswer),
  showTextDocument: vi.fn(async (doc: FakeDoc | Uri) => {
    if (doc instanceof Uri) doc = { uri: doc, languageId: 'markdown', getText: () => '' };
    state.shown.push(doc);
    return { document: doc };
  }),
  withProgress: vi.fn(async (_o: unknown, task: (p: unknown, t: unknown) => Promise<unknown>) =>
    task({ report: () => undefined }, { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) })),
  createTreeView: vi.fn((id: string, o: { treeDataProvider: unknown }) => {
    const expand = new EventEmitter<unknown>();
    const collapse = new EventEmitter<unknown>();
    const view: Record<string, unknown> = {
      onDidExpandElement: expand.event,
      onDidCollapseElement: collapse.event,
      expand: (e: unknown) => expand.fire({ element: e }),
      collapse: (e: unknown) => collapse.fire({ element: e }),
      dispose: () => undefined,
    };
    state.trees.set(id, { provider: o.treeDataProvider, view });
    return view;
  }),
  onDidChangeActiveTextEditor: (l: Listener<unknown>) => state.editorListeners.event(l),
  get activeTextEditor() {
    return state.activeEditor;
  },
};

export const workspace = {
  getConfiguration: vi.fn((section: string) => ({
    get: (key: string, dflt?: unknown) => state.config[`${section}.${key}`] ?? dflt,
  })),
  get workspaceFolders() {
    return state.workspaceFolders;
  },
  get isTrusted() {
    return state.trusted;
  },
  onDidGrantWorkspaceTrust: (l: Listener<void>) => state.trustListeners.event(l),
  getWorkspaceFolder: (u: Uri) => state.workspaceFolders?.find((f) => u.path.startsWith(f.uri.path + '/')),
  findFiles: vi.fn(async () => state.findFilesResult),
  get textDocuments() {
    return state.textDocuments;
  },
  onDidOpenTextDocument: (l: Listener<FakeDoc>) => state.openListeners.event(l),
  onDidChangeWorkspaceFolders: (l: Listener<{ added: { uri: Uri; name: string; index: number }[]; removed: { uri: Uri; name: string; index: number }[] }>) =>
    state.folderListeners.event(l),
  onDidChangeConfiguration: (l: Listener<{ affectsConfiguration(k: string): boolean }>) => state.configListeners.event(l),
  registerTextDocumentContentProvider: vi.fn((scheme: string, p: { provideTextDocumentContent(u: Uri): string }) => {
    state.providers.set(scheme, p);
    return { dispose: () => state.providers.delete(scheme) };
  }),
  /** Untitled documents made by openTextDocument({ language, content }), with applyEdit appending. */
  applyEdit: vi.fn(async (edit: WorkspaceEdit) => {
    for (const i of edit.inserts) {
      const doc = state.untitled.find((d) => d.uri === i.uri);
      if (!doc || doc.closed) return false;
      doc.text += i.text;
    }
    return true;
  }),
  openTextDocument: vi.fn(async (uri: Uri | { language: string; content: string }) => {
    if (!(uri instanceof Uri)) {
      const doc: UntitledDoc = {
        uri: Uri.from({ scheme: 'untitled', path: `Untitled-${state.untitled.length + 1}` }),
        languageId: uri.language,
        text: uri.content,
        closed: false,
        get isClosed() {
          return doc.closed;
        },
        getText: () => doc.text,
        get lineCount() {
          return doc.text.split('\n').length;
        },
        lineAt: (n: number) => ({ range: { end: new Position(n, doc.text.split('\n')[n].length) } }),
      };
      state.untitled.push(doc);
      return doc;
    }
    const p = state.providers.get(uri.scheme);
    const text = p ? p.provideTextDocumentContent(uri) : '';
    return { uri, languageId: uri.path.endsWith('.md') ? 'markdown' : 'plaintext', getText: () => text } as FakeDoc;
  }),
};

export const languages = {
  setTextDocumentLanguage: vi.fn(async (doc: FakeDoc, languageId: string) => ({ ...doc, languageId })),
};

export const commands = {
  registerCommand: vi.fn((id: string, fn: (...a: unknown[]) => unknown) => {
    if (state.commands.has(id)) throw new Error(`command '${id}' already exists`);
    state.commands.set(id, fn);
    return { dispose: () => state.commands.delete(id) };
  }),
  executeCommand: vi.fn(async (id: string, ...args: unknown[]) => {
    if (id === 'setContext') return void state.contexts.set(String(args[0]), args[1]);
    return state.commands.get(id)?.(...args);
  }),
};

export const env = {
  clipboard: {
    writeText: vi.fn(async (t: string) => {
      state.clipboard = t;
    }),
    readText: vi.fn(async () => state.clipboard),
  },
  openExternal: vi.fn(async () => true),
};

/** VS Code 1.101's MCP API: a stdio server definition, and the provider registry. */
export class McpStdioServerDefinition {
  cwd?: Uri;
  constructor(
    readonly label: string,
    readonly command: string,
    readonly args: string[] = [],
    readonly env: Record<string, string | number | null> = {},
    readonly version?: string,
  ) {}
}

export const lm = {
  registerMcpServerDefinitionProvider: vi.fn((id: string, provider: unknown) => {
    state.mcpProviders.set(id, provider);
    return { dispose: () => state.mcpProviders.delete(id) };
  }),
};
