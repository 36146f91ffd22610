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

export const state = {
  config: {} as Record<string, unknown>,
  commands: new Map<string, (...a: unknown[]) => unknown>(),
  providers: new Map<string, { provideTextDocumentContent(u: Uri): string }>(),
  messages: [] as { level: string; text: string; actions: string[] }[],
  /** Answers for show*Message, by a substring of the message. */
  answers: [] as { match: string; answer: string | undefined }[],
  pickAnswer: undefined as undefined | ((items: { label: string }[]) => { label: string } | undefined),
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
};

export function resetMock() {
  state.config = {};
  state.commands.clear();
  state.providers.clear();
  state.messages = [];
  state.answers = [];
  state.pickAnswer = undefined;
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
  showTextDocument: vi.fn(async (doc: FakeDoc | Uri) => {
    if (doc instanceof Uri) doc = { uri: doc, languageId: 'markdown', getText: () => '' };
    state.shown.push(doc);
    return { document: doc };
  }),
  withProgress: vi.fn(async (_o: unknown, task: () => Promise<unknown>) => task()),
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
  getWorkspaceFolder: (u: Uri) => state.workspaceFolders?.find((f) => u.path.startsWith(f.uri.path + '/')),
  findFiles: vi.fn(async () => state.findFilesResult),
  get textDocuments() {
    return state.textDocuments;
  },
  onDidOpenTextDocument: (l: Listener<FakeDoc>) => state.openListeners.event(l),
  onDidChangeConfiguration: (l: Listener<{ affectsConfiguration(k: string): boolean }>) => state.configListeners.event(l),
  registerTextDocumentContentProvider: vi.fn((scheme: string, p: { provideTextDocumentContent(u: Uri): string }) => {
    state.providers.set(scheme, p);
    return { dispose: () => state.providers.delete(scheme) };
  }),
  openTextDocument: vi.fn(async (uri: Uri) => {
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
  executeCommand: vi.fn(async (id: string, ...args: unknown[]) => state.commands.get(id)?.(...args)),
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
