// The command handlers, written against small interfaces (the perfd API and a UI facade) so
// they are unit-tested without VS Code. extension.ts wires them to the real vscode API.
import type { PerfdApi } from './api';
import {
  achievementMessage,
  achievementPickItems,
  basename,
  errorMessage,
  generatedMessage,
  notPlanText,
  PickItem,
  planPickItems,
  planStatusMarkdown,
  promptDocName,
  ServerState,
  splitPlans,
  statsMarkdown,
  workspaceStatusMarkdown,
} from './pure/format';
import { isPlanFile, RESTRICTED_MESSAGE } from './pure/settings';
import type { Settings } from './pure/settings';
import type { GenerateResult, StatsPayload } from './pure/types';

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
  /** Stream a run's answer into an editor (extension.ts: liveRun); without it the answer is shown whole. `model`: '' for [llm]. */
  runLive?(api: PerfdApi, plan: string, achievement: string | null, model: string): Promise<void>;
  /** Ask for a line of text (an input box); undefined when dismissed. */
  input?(prompt: string, value: string): Promise<string | undefined>;
}

export interface Host {
  /**
   * The API of the session a command acts on: the folder holding `file` (a plan path or an open
   * file), else the active editor's folder, else the only session. Undefined when that session
   * is not running, or when several folders could be meant (then chooseApi asks).
   */
  api(file?: string): PerfdApi | undefined;
  /** Several folders have perfd and nothing says which: ask. null when the pick is dismissed, undefined when the picked one is not running. */
  chooseApi?(): Promise<PerfdApi | undefined | null>;
  state(): ServerState;
  lastStats(): StatsPayload | undefined;
  restart(): Promise<void>;
  showOutput(): void;
  /** Reports a measured duration (the output channel shows it; the end-to-end test reads it). */
  timing?(what: string, ms: number, note?: string): void;
}

export const NOT_RUNNING =
  'perfd: the language server is not running. See the perfd output channel, or run "perfd: Restart Daemon".';
/** How a run's model is named in messages: '' is [llm]. */
export function modelName(model: string): string {
  return model ? `the model ${model}` : 'the model';
}

export const RUN_NOT_AVAILABLE =
  'perfd: "Run Next With Model" is not available yet in this perfd: the server does not offer perfd.run. Update perfd to a version with model runs.';

export class Commands {
  constructor(
    private readonly host: Host,
    private readonly ui: Ui,
  ) {}

  private async withApi<T>(fn: (api: PerfdApi) => Promise<T>, file?: string): Promise<T | undefined> {
    let api = this.host.api(file ?? this.ui.activeFile());
    if (!api && this.host.chooseApi) {
      const picked = await this.host.chooseApi();
      if (picked === null) return undefined; // the pick was dismissed
      api = picked;
    }
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
   * Asks the server about the plan a command acts on; the one place where a file becomes a plan.
   *
   * The given (menu) or active PLAN/SUBPLAN/EXECUTION_TASK file goes to the server as it is: the
   * server's engine decides which plan owns it (any path a plan owns names that plan), in the same
   * request that answers (`ask`), so the extension has no ownership rule of its own and no extra
   * round trip. `ask` must be a question without side effects (a prompt, a status): when the
   * server finds no plan for the file, or there is no such file, the plan is the workspace's only
   * plan, else the user's pick, and `ask` is asked again with its PLAN file's path.
   */
  private async askAboutPlan<T>(api: PerfdApi, file: string | undefined, ask: (plan: string) => Promise<T>): Promise<T | undefined> {
    const f = file ?? this.ui.activeFile();
    if (f && isPlanFile(f)) {
      try {
        return await ask(f);
      } catch {
        // No plan owns it (or it left the workspace): choose as for any other file. A failure
        // that is not about the plan fails again below, and is reported then.
      }
    }
    const plan = await this.pickPlan(api);
    return plan === undefined ? undefined : ask(plan);
  }

  /** The workspace's only plan, else the user's pick: its PLAN file's path. */
  private async pickPlan(api: PerfdApi): Promise<string | undefined> {
    const st = await api.status();
    const { plans, notPlans } = splitPlans(st.plans);
    if (!plans.length) {
      const others = notPlans.length ? ` (${notPlans.length} document${notPlans.length === 1 ? '' : 's'} named PLAN_ ${notPlans.length === 1 ? 'says it is' : 'say they are'} not a plan)` : '';
      void this.ui.warn(`perfd: no plans found under ${st.root}${others}.`);
      return undefined;
    }
    if (plans.length === 1) return plans[0].path;
    const picked = await this.ui.pick(planPickItems(plans), 'Which plan?');
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
      const r = await this.askAboutPlan(api, file, (plan) =>
        this.ui.progress('perfd: generating the next prompt…', () => api.generateNext(plan)),
      );
      if (!r) return undefined;
      await this.present(r, started, Date.now());
      return r;
    }, file);
  }

  /** perfd: Generate Prompt for Achievement… */
  generateForAchievement(file?: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const st = await this.askAboutPlan(api, file, (plan) => api.planStatus(plan));
      if (!st) return undefined;
      if (st.not_plan) {
        void this.ui.warn(`perfd: ${basename(st.path)} is ${notPlanText(st)}.`);
        return undefined;
      }
      const items = achievementPickItems(st);
      if (!items.length) {
        void this.ui.warn(`perfd: @${st.plan} has no achievements.`);
        return undefined;
      }
      const a = await this.ui.pick(items, `Achievement of @${st.plan} to generate the prompt for`);
      if (!a) return undefined;
      const r = await this.ui.progress(`perfd: generating the prompt for ${a.number}…`, () => api.generate(st.path, a.number));
      await this.present(r);
      return r;
    }, file);
  }

  /**
   * perfd: Run Next With Model (needs a server that offers perfd.run). `model`: a `[models.NAME]`, ''
   * for [llm]; none: the perfd.model setting.
   */
  runNext(file?: string, model?: string): Promise<unknown> {
    return this.withApi(async (api) => {
      if (!api.hasCommand('perfd.run')) {
        void this.ui.info(RUN_NOT_AVAILABLE);
        return undefined;
      }
      return this.runNextOn(api, file, model ?? this.ui.settings().model);
    }, file);
  }

  private async runNextOn(api: PerfdApi, file: string | undefined, model: string): Promise<unknown> {
    // The plan first (a question), then the run: a failed model call is never retried on another plan.
    const st = await this.askAboutPlan(api, file, (plan) => api.planStatus(plan));
    if (!st) return undefined;
    if (this.ui.runLive) {
      await this.ui.runLive(api, st.path, null, model);
      return undefined;
    }
    const r = await this.ui.progress(`perfd: running the next step with ${modelName(model)}…`, () => api.run(st.path, null, model));
    const text = typeof r === 'string' ? r : '```json\n' + JSON.stringify(r, null, 2) + '\n```\n';
    await this.ui.showDocument('perfd run.md', text);
    return r;
  }

  /** perfd: Run with Model…: the next step of the plan, with a model picked now (the server's names when it can tell them). */
  runWithModel(file?: string): Promise<unknown> {
    return this.withApi(async (api) => {
      if (!api.hasCommand('perfd.run')) {
        void this.ui.info(RUN_NOT_AVAILABLE);
        return undefined;
      }
      if (api.refuses('perfd.run')) {
        void this.ui.error(RESTRICTED_MESSAGE); // asked before the pick: no choice to make for a run that cannot happen
        return undefined;
      }
      const model = await this.askModel(api);
      return model === undefined ? undefined : this.runNextOn(api, file, model);
    }, file);
  }

  /** The model for a run: '' for [llm], a [models.NAME], undefined when the question is dismissed. */
  private async askModel(api: PerfdApi): Promise<string | undefined> {
    const current = this.ui.settings().model;
    if (!api.hasCommand('perfd.models')) {
      if (!this.ui.input) return current;
      const typed = await this.ui.input('Model to run with: the NAME of a [models.NAME] of perfd.toml (empty: [llm])', current);
      return typed === undefined ? undefined : typed.trim();
    }
    const { models, waiting } = await api.models();
    const items: PickItem<string>[] = [
      { label: '[llm]', description: `the default model${current ? '' : ' · the perfd.model setting'}`, value: '' },
      ...models.map((n) => ({ label: n, description: `[models.${n}]${n === current ? ' · the perfd.model setting' : ''}`, value: n })),
    ];
    const waits = waiting.length ? ` (${waiting.join(', ')} wait${waiting.length === 1 ? 's' : ''} for \`perfd trust\`)` : '';
    return this.ui.pick(items, `Model to run the next step with${waits}`);
  }

  /** Run one achievement (the code action "Run N.N with the model", the view's Run), with the perfd.model setting's model. */
  runAchievement(plan: string, achievement: string | null): Promise<void> {
    return this.withApi(async (api) => {
      if (!api.hasCommand('perfd.run')) {
        void this.ui.info(RUN_NOT_AVAILABLE);
        return;
      }
      const model = this.ui.settings().model;
      if (this.ui.runLive) return this.ui.runLive(api, plan, achievement, model);
      const r = await this.ui.progress(`perfd: running ${achievement ?? 'the next step'} with ${modelName(model)}…`, () =>
        api.run(plan, achievement, model),
      );
      await this.ui.showDocument('perfd run.md', '```json\n' + JSON.stringify(r, null, 2) + '\n```\n');
    }, plan);
  }

  /** "Create SUBPLAN for N.N": the server writes the scaffold (never over a file) and opens it. */
  createSubplan(plan: string, achievement: string): Promise<string | undefined> {
    return this.withApi(async (api) => {
      const r = await api.createSubplan(plan, achievement);
      if (!r.shown) await this.ui.openFile(r.path);
      void this.ui.info(`perfd: created ${r.path.split(/[\\/]/).pop()} for ${achievement} from the template.`);
      return r.path;
    }, plan);
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
    }, plan);
  }

  lensGenerate(plan: string, achievement: string): Promise<GenerateResult | undefined> {
    return this.withApi(async (api) => {
      const r = await this.ui.progress(`perfd: generating the prompt for ${achievement}…`, () =>
        api.generate(plan, achievement),
      );
      await this.present(r);
      return r;
    }, plan);
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
    }, plan);
  }
}
