// The command handlers, written against small interfaces (the perfd API and a UI facade) so
// they are unit-tested without VS Code. extension.ts wires them to the real vscode API.
import type { PerfdApi } from './api';
import {
  achievementMessage,
  achievementPickItems,
  errorMessage,
  generatedMessage,
  PickItem,
  planPickItems,
  planStatusMarkdown,
  promptDocName,
  ServerState,
  statsMarkdown,
  workspaceStatusMarkdown,
} from './pure/format';
import { planForFile } from './pure/plans';
import { isPlanFile } from './pure/settings';
import type { Settings } from './pure/settings';
import type { GenerateResult, PlanSummary, StatsPayload } from './pure/types';

export interface Ui {
  pick<T>(items: PickItem<T>[], placeholder: string): Promise<T | undefined>;
  info(message: string, ...actions: string[]): Promise<string | undefined>;
  warn(message: string, ...actions: string[]): Promise<string | undefined>;
  error(message: string, ...actions: string[]): Promise<string | undefined>;
  copy(text: string): Promise<void>;
  /** Show markdown in a read-only virtual document named `name`. */
  showDocument(name: string, markdown: string): Promise<void>;
  openFile(file: string): Promise<void>;
  /** File system path of the active editor's document, if it is a file. */
  activeFile(): string | undefined;
  settings(): Settings;
  /** Runs while a request is in flight (progress in the status bar / notification). */
  progress<T>(title: string, task: () => Promise<T>): Promise<T>;
}

export interface Host {
  /** The API over the running language client, or undefined when the server is not running. */
  api(): PerfdApi | undefined;
  state(): ServerState;
  lastStats(): StatsPayload | undefined;
  restart(): Promise<void>;
  showOutput(): void;
  /** Reports a measured duration (the output channel shows it; the end-to-end test reads it). */
  timing?(what: string, ms: number, note?: string): void;
}

export const NOT_RUNNING =
  'perfd: the language server is not running. See the perfd output channel, or run "perfd: Restart Daemon".';
export const RUN_NOT_AVAILABLE =
  'perfd: "Run Next With Model" is not available yet in this perfd: the server does not offer perfd.run. Update perfd to a version with model runs.';

export class Commands {
  /**
   * The workspace's plans as the last status listed them. A file inside one of them needs no
   * status round trip to find its plan; a file in none (a plan added since) asks afresh.
   */
  private knownPlans: PlanSummary[] | undefined;

  constructor(
    private readonly host: Host,
    private readonly ui: Ui,
  ) {}

  private async withApi<T>(fn: (api: PerfdApi) => Promise<T>): Promise<T | undefined> {
    const api = this.host.api();
    if (!api) {
      const a = await this.ui.error(NOT_RUNNING, 'Restart Daemon', 'Show Output');
      if (a === 'Restart Daemon') await this.host.restart();
      else if (a === 'Show Output') this.host.showOutput();
      return undefined;
    }
    try {
      return await fn(api);
    } catch (e) {
      void this.ui.error(`perfd: ${errorMessage(e).replace(/^perfd: /, '')}`);
      return undefined;
    }
  }

  /**
   * Learn the workspace's plans ahead of the first command (called once the server runs), so
   * that the first "Generate Next Prompt" on a plan file needs no status round trip either.
   * Failures are left for the command itself to report.
   */
  async rememberPlans(api: PerfdApi): Promise<void> {
    try {
      this.knownPlans = (await api.status()).plans;
    } catch {
      /* the command will ask again */
    }
  }

  /**
   * The plan to act on: the one the given (or active) PLAN/SUBPLAN/EXECUTION_TASK file belongs
   * to; the only plan of the workspace; else the user's pick. Returns the PLAN file's path.
   */
  async choosePlan(api: PerfdApi, file?: string): Promise<string | undefined> {
    const f0 = file ?? this.ui.activeFile();
    if (f0 && isPlanFile(f0) && this.knownPlans) {
      const known = planForFile(this.knownPlans, f0);
      if (known) return known.path;
    }
    const st = await api.status();
    this.knownPlans = st.plans;
    if (!st.plans.length) {
      void this.ui.warn(`perfd: no plans found under ${st.root}.`);
      return undefined;
    }
    const f = file ?? this.ui.activeFile();
    if (f && isPlanFile(f)) {
      const p = planForFile(st.plans, f);
      if (p) return p.path;
    }
    if (st.plans.length === 1) return st.plans[0].path;
    const picked = await this.ui.pick(planPickItems(st.plans), 'Which plan?');
    return picked?.path;
  }

  async present(r: GenerateResult, started?: number, answered?: number): Promise<void> {
    let copy = this.ui.settings().copyToClipboard;
    // The clipboard first: it is what the user is waiting for; the document follows.
    if (copy) {
      try {
        const copying = Date.now();
        await this.ui.copy(r.prompt);
        const done = Date.now();
        if (started !== undefined) {
          // the parts, for when the whole is slow: perfd's answer, then the editor's clipboard
          const parts = answered === undefined ? undefined : `answer ${answered - started} ms, clipboard ${done - copying} ms`;
          this.host.timing?.('generate next prompt to clipboard', done - started, parts);
        }
      } catch (e) {
        // e.g. a browser-hosted VS Code without clipboard permission: the document still has it
        copy = false;
        void this.ui.warn(`perfd: could not copy the prompt to the clipboard: ${errorMessage(e)}`);
      }
    }
    await this.ui.showDocument(promptDocName(r), r.prompt);
    const msg = generatedMessage(r, copy);
    if (msg.warning) void this.ui.warn(msg.warning);
    void this.ui.info(msg.info);
  }

  /** perfd: Generate Next Prompt. `file`: the explorer/editor menu's file, if any. */
  generateNextPrompt(file?: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const started = Date.now(); // from the command, plan lookup included: what the user waits for
      const remembered = this.knownPlans !== undefined;
      const plan = await this.choosePlan(api, file);
      if (!plan) return undefined;
      let r: GenerateResult;
      try {
        r = await this.ui.progress('perfd: generating the next prompt…', () => api.generateNext(plan));
      } catch (e) {
        if (!remembered) throw e;
        this.knownPlans = undefined; // the remembered plan may be gone: look again, once
        const again = await this.choosePlan(api, file);
        if (!again) return undefined;
        r = await this.ui.progress('perfd: generating the next prompt…', () => api.generateNext(again));
      }
      await this.present(r, started, Date.now());
      return r;
    });
  }

  /** perfd: Generate Prompt for Achievement… */
  generateForAchievement(file?: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const plan = await this.choosePlan(api, file);
      if (!plan) return undefined;
      const st = await api.planStatus(plan);
      const items = achievementPickItems(st);
      if (!items.length) {
        void this.ui.warn(`perfd: @${st.plan} has no achievements.`);
        return undefined;
      }
      const a = await this.ui.pick(items, `Achievement of @${st.plan} to generate the prompt for`);
      if (!a) return undefined;
      const r = await this.ui.progress(`perfd: generating the prompt for ${a.number}…`, () => api.generate(plan, a.number));
      await this.present(r);
      return r;
    });
  }

  /** perfd: Run Next With Model (needs a server that offers perfd.run). */
  runNext(file?: string): Promise<unknown> {
    return this.withApi(async (api) => {
      if (!api.hasCommand('perfd.run')) {
        void this.ui.info(RUN_NOT_AVAILABLE);
        return undefined;
      }
      const plan = await this.choosePlan(api, file);
      if (!plan) return undefined;
      const r = await this.ui.progress('perfd: running the next step with the model…', () => api.run(plan));
      const text = typeof r === 'string' ? r : '```json\n' + JSON.stringify(r, null, 2) + '\n```\n';
      await this.ui.showDocument('perfd run.md', text);
      return r;
    });
  }

  /** perfd: Show Status (all plans). */
  showStatus(): Promise<void> {
    return this.withApi(async (api) => {
      const st = await api.status();
      await this.ui.showDocument('perfd status.md', workspaceStatusMarkdown(st));
    });
  }

  /** perfd: Show Stats. Fresh from the server when it runs, else the last notification. */
  async showStats(): Promise<void> {
    const api = this.host.api();
    let stats = this.host.lastStats();
    if (api) {
      try {
        stats = await api.stats();
      } catch (e) {
        void this.ui.warn(`perfd: could not fetch stats: ${errorMessage(e)}`);
      }
    }
    await this.ui.showDocument('perfd stats.md', statsMarkdown(stats, this.host.state(), new Date()));
  }

  /** perfd: Clear Cache. */
  clearCache(): Promise<number | undefined> {
    return this.withApi(async (api) => {
      const r = await api.clearCache();
      void this.ui.info(`perfd: cache cleared (${r.cleared} entr${r.cleared === 1 ? 'y' : 'ies'}).`);
      return r.cleared;
    });
  }

  // -- code lens commands (the server's perfd.generateNext / perfd.generate / perfd.status) ----

  lensGenerateNext(plan: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const r = await this.ui.progress('perfd: generating the next prompt…', () => api.generateNext(plan));
      await this.present(r);
      return r;
    });
  }

  lensGenerate(plan: string, achievement: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const r = await this.ui.progress(`perfd: generating the prompt for ${achievement}…`, () =>
        api.generate(plan, achievement),
      );
      await this.present(r);
      return r;
    });
  }

  lensStatus(plan: string, achievement?: string): Promise<void> {
    return this.withApi(async (api) => {
      const st = await api.planStatus(plan);
      if (!achievement) {
        await this.ui.showDocument(`${st.plan} status.md`, planStatusMarkdown(st));
        return;
      }
      const a = (st.achievements ?? []).find((x) => x.number === achievement);
      const actions: string[] = [];
      if (a && a.state !== 'complete') actions.push('Generate prompt');
      const file = a?.active_execution ?? a?.fix ?? a?.subplan ?? undefined;
      if (file) actions.push(`Open ${file.split(/[\\/]/).pop()}`);
      const choice = await this.ui.info(achievementMessage(st, achievement), ...actions);
      if (choice === 'Generate prompt') await this.lensGenerate(plan, achievement);
      else if (choice && file && choice.startsWith('Open ')) await this.ui.openFile(file);
    });
  }
}
