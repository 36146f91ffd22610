// perfd's workspace/executeCommand calls, over any connection that can send an LSP request:
// vscode-languageclient's LanguageClient in the extension, a bare vscode-jsonrpc connection in
// the integration test. No `vscode` import.
import type {
  ClearCacheResult,
  FileResult,
  GenerateResult,
  ModelNames,
  PlanStatus,
  RunResult,
  StatsPayload,
  WorkspaceStatus,
} from './pure/types';
import { NEEDS_WORKSPACE_TRUST, RESTRICTED_MESSAGE } from './pure/settings';

export interface RequestSender {
  /** `token`: cancelling it cancels the request ($/cancelRequest). */
  sendRequest(method: string, params: unknown, token?: CancellationToken): Promise<unknown>;
}

/** vscode's CancellationToken, as much of it as a request needs (no `vscode` import here). */
export interface CancellationToken {
  readonly isCancellationRequested: boolean;
  onCancellationRequested(listener: () => unknown): { dispose(): unknown };
}

export const EXECUTE_COMMAND = 'workspace/executeCommand';
export const STATS_NOTIFICATION = 'perfd/stats';
export const PLANS_CHANGED_NOTIFICATION = 'perfd/plansChanged';
export const RUN_CHUNK_NOTIFICATION = 'perfd/runChunk';

export class PerfdApi {
  constructor(
    private readonly conn: RequestSender,
    /** The server's executeCommandProvider.commands (from its initialize result). */
    private readonly serverCommands: readonly string[] = [],
    /** VS Code's Restricted Mode: then no command that runs a model or writes a file is sent. */
    private readonly restricted: () => boolean = () => false,
  ) {}

  hasCommand(command: string): boolean {
    return this.serverCommands.includes(command);
  }

  /** Whether `command` is refused here before it is sent (one that runs a model or writes, in Restricted Mode). */
  refuses(command: string): boolean {
    return NEEDS_WORKSPACE_TRUST.has(command) && this.restricted();
  }

  async execute<T>(command: string, args: unknown[] = [], token?: CancellationToken): Promise<T> {
    if (this.refuses(command)) throw new Error(RESTRICTED_MESSAGE);
    const r = await this.conn.sendRequest(EXECUTE_COMMAND, { command, arguments: args }, token);
    if (r === null || r === undefined) throw new Error(`perfd answered nothing to ${command}`);
    return r as T;
  }

  generateNext(plan: string): Promise<GenerateResult> {
    return this.execute<GenerateResult>('perfd.generateNext', [plan]).then(checkGenerate);
  }

  generate(plan: string, achievement: string): Promise<GenerateResult> {
    return this.execute<GenerateResult>('perfd.generate', [plan, achievement]).then(checkGenerate);
  }

  status(): Promise<WorkspaceStatus> {
    return this.execute<WorkspaceStatus>('perfd.status').then((s) => {
      if (!s || !Array.isArray(s.plans)) throw new Error('perfd.status: unexpected answer (no plans list)');
      return s;
    });
  }

  planStatus(plan: string): Promise<PlanStatus> {
    return this.execute<PlanStatus>('perfd.status', [plan]);
  }

  stats(): Promise<StatsPayload> {
    return this.execute<StatsPayload>('perfd.stats');
  }

  clearCache(): Promise<ClearCacheResult> {
    return this.execute<ClearCacheResult>('perfd.clearCache');
  }

  /** perfd.run of (plan, achievement or the next); `model`: a `[models.NAME]` instead of `[llm]` ('' or none: `[llm]`). */
  run(plan: string, achievement: string | null = null, model?: string): Promise<unknown> {
    const args = model ? [plan, achievement, runOptions({ model })] : achievement === null ? [plan] : [plan, achievement];
    return this.execute<unknown>('perfd.run', args);
  }

  /**
   * perfd.run of (plan, achievement or the next), its answer streamed as perfd/runChunk
   * notifications carrying `streamId`; cancelling `token` cancels the model call. `model` as for run.
   */
  runStreamed(plan: string, achievement: string | null, streamId: string, token?: CancellationToken, model?: string): Promise<RunResult> {
    return this.execute<RunResult>('perfd.run', [plan, achievement, runOptions({ stream: streamId, model })], token);
  }

  /** perfd.models: the `[models.NAME]` a run can take, and those waiting for `perfd trust`. */
  async models(): Promise<ModelNames> {
    const r = await this.execute<ModelNames>('perfd.models');
    const names = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    return { models: names(r?.models), waiting: names(r?.waiting) };
  }

  /** Write the SUBPLAN scaffold of an achievement (never over a file); the server opens it. */
  createSubplan(plan: string, achievement: string): Promise<FileResult> {
    return this.execute<FileResult>('perfd.createSubplan', [plan, achievement]);
  }

  /** Save an answer where the achievement's state asks (the `run --write` rules). */
  writeAnswer(plan: string, achievement: string, text: string): Promise<FileResult> {
    return this.execute<FileResult>('perfd.writeAnswer', [plan, achievement, text]);
  }
}

/** perfd.run's options (its third argument): the stream id, and the model only when one is named. */
export function runOptions(o: { stream?: string; model?: string }): { stream?: string; model?: string } {
  const out: { stream?: string; model?: string } = {};
  if (o.stream) out.stream = o.stream;
  if (o.model) out.model = o.model;
  return out;
}

function checkGenerate(r: GenerateResult): GenerateResult {
  if (!r || typeof r.prompt !== 'string') throw new Error('perfd: unexpected answer (no prompt)');
  return { ...r, parallel_options: r.parallel_options ?? [], problems: r.problems ?? [] };
}
