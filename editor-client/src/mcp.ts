// Registers `perfd mcp` with VS Code's agent mode through its MCP server definition provider API,
// on VS Code versions that have it (1.101 and later: feature-detected, as the extension supports
// older ones, whose typings do not declare it). Definitions come from src/pure/mcp.ts.
import * as vscode from 'vscode';
import { MCP_PROVIDER_ID, McpDefinition } from './pure/mcp';

/** What the extension uses of VS Code's MCP API (vscode.lm.registerMcpServerDefinitionProvider). */
interface StdioDefinition {
  cwd?: vscode.Uri;
}
type StdioDefinitionClass = new (
  label: string,
  command: string,
  args?: string[],
  env?: Record<string, string | number | null>,
  version?: string,
) => StdioDefinition;
interface McpProvider {
  onDidChangeMcpServerDefinitions: vscode.Event<void>;
  provideMcpServerDefinitions(): Promise<StdioDefinition[]>;
  resolveMcpServerDefinition(server: StdioDefinition): StdioDefinition | undefined;
}
interface McpApi {
  lm: { registerMcpServerDefinitionProvider(id: string, provider: McpProvider): vscode.Disposable };
  McpStdioServerDefinition: StdioDefinitionClass;
}

/** VS Code's MCP API where this VS Code has it, else undefined. */
export function mcpApi(api: unknown): McpApi | undefined {
  const a = api as { lm?: { registerMcpServerDefinitionProvider?: unknown }; McpStdioServerDefinition?: unknown };
  if (typeof a.lm?.registerMcpServerDefinitionProvider !== 'function' || typeof a.McpStdioServerDefinition !== 'function') {
    return undefined;
  }
  return a as McpApi;
}

/**
 * Offer `perfd mcp` for each folder `definitions()` names, telling VS Code to ask again when trust
 * is granted, folders change or perfd.path/perfd.args change. A server is started only in a trusted
 * window (checked again when VS Code starts one). Nothing on a VS Code without the API.
 */
export function registerMcpServers(definitions: () => Promise<McpDefinition[]>, api: unknown = vscode): vscode.Disposable[] {
  const mcp = mcpApi(api);
  if (!mcp) return [];
  const changed = new vscode.EventEmitter<void>();
  const provider: McpProvider = {
    onDidChangeMcpServerDefinitions: changed.event,
    provideMcpServerDefinitions: async () =>
      (await definitions()).map((d) => {
        const def = new mcp.McpStdioServerDefinition(d.label, d.command, d.args, {}, d.version || undefined);
        def.cwd = vscode.Uri.file(d.cwd);
        return def;
      }),
    resolveMcpServerDefinition: (server) => (vscode.workspace.isTrusted ? server : undefined),
  };
  return [
    changed,
    mcp.lm.registerMcpServerDefinitionProvider(MCP_PROVIDER_ID, provider),
    vscode.workspace.onDidGrantWorkspaceTrust(() => changed.fire()),
    vscode.workspace.onDidChangeWorkspaceFolders(() => changed.fire()),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('perfd.path') || e.affectsConfiguration('perfd.args')) changed.fire();
    }),
  ];
}
