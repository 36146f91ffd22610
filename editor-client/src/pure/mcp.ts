// The MCP server definitions the extension gives VS Code's agent mode: one `perfd mcp` per
// workspace folder that holds plans. Pure: the folders, settings and executable lookup are passed in.
import { mcpCommand, Settings } from './settings';

export const MCP_PROVIDER_ID = 'perfd.mcp';

export interface McpDefinition {
  label: string;
  command: string;
  args: string[];
  cwd: string;
  version: string;
}

export interface McpFolder {
  name: string;
  path: string;
}

/**
 * None in Restricted Mode (an untrusted window starts no server of the extension's for an agent),
 * and none for a folder whose perfd executable cannot be found (the language server says why).
 */
export function mcpDefinitions(
  folders: readonly McpFolder[],
  settingsOf: (folder: string) => Settings,
  resolve: (command: string, cwd: string) => string | undefined,
  trusted: boolean,
  version: string,
): McpDefinition[] {
  if (!trusted) return [];
  const out: McpDefinition[] = [];
  for (const f of folders) {
    const s = settingsOf(f.path);
    const exe = resolve(s.path, f.path);
    if (!exe) continue;
    const { command, args } = mcpCommand({ ...s, path: exe }, f.path);
    out.push({ label: folders.length > 1 ? `perfd (${f.name})` : 'perfd', command, args, cwd: f.path, version });
  }
  return out;
}
