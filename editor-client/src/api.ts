// perfd's workspace/executeCommand calls, over any connection that can send an LSP request:
// vscode-languageclient's LanguageClient in the extension, a bare vscode-jsonrpc connection in
// the integration test. No `vscode` import.
import type {
  ClearCacheResult,
  GenerateResult,
  PlanStatus,
  StatsPayload,
  WorkspaceStatus,
} from './pure/types';

export interface RequestSender {
  sendRequest(method: string, params: unknown): Promise<unknown>;
}

export const EXECUTE_COMMAND = 'workspace/executeCommand';
export const STATS_NOTIFICATION = 'perfd/stats';

export class PerfdApi {
  constructor(
    private readonly conn: RequestSender,
    /** The server's executeCommandProvider.commands (from its initialize result). */
    private readonly serverCommands: readonly string[] = [],
  ) {}

  hasCommand(command: string): boolean {
    return this.serverCommands.includes(command);
  }

  async execute<T>(command: string, args: unknown[] = []): Promise<T> {
    const r = await this.conn.sendRequest(EXECUTE_COMMAND, { command, arguments: args });
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

  run(plan: string): Promise<unknown> {
    return this.execute<unknown>('perfd.run', [plan]);
  }
}

function checkGenerate(r: GenerateResult): GenerateResult {
  if (!r || typeof r.prompt !== 'string') throw new Error('perfd: unexpected answer (no prompt)');
  return { ...r, parallel_options: r.parallel_options ?? [], problems: r.problems ?? [] };
}
