// Which plan a file belongs to, and rewriting the server's code lens commands.
import * as path from 'node:path';
import type { PlanSummary } from './types';

function norm(p: string): string {
  return path.resolve(p).replace(/\\/g, '/').replace(/\/+$/, '');
}

/**
 * The plan a file belongs to, like the server's Engine.plan_for_path: its own PLAN file, or the
 * plan whose folder holds it (deepest folder wins; a folder shared by several flat plans
 * credits none of them).
 */
export function planForFile(plans: PlanSummary[], file: string): PlanSummary | undefined {
  const f = norm(file);
  const exact = plans.find((p) => norm(p.path) === f);
  if (exact) return exact;
  const byFolder = new Map<string, PlanSummary[]>();
  for (const p of plans) {
    const dir = norm(path.dirname(p.path));
    byFolder.set(dir, [...(byFolder.get(dir) ?? []), p]);
  }
  let best: { dir: string; plan: PlanSummary } | undefined;
  for (const [dir, ps] of byFolder) {
    if (ps.length !== 1) continue;
    if (f.startsWith(dir + '/') && (!best || dir.length > best.dir.length)) best = { dir, plan: ps[0] };
  }
  return best?.plan;
}

/**
 * Server command ids used by perfd's code lenses, and the client-side command ids they are
 * rewritten to. vscode-languageclient's ExecuteCommandFeature registers a VS Code command for
 * every id in the server's executeCommandProvider.commands (returning the raw JSON); registering
 * those ids again would throw "command already exists", so the lenses are pointed at our own
 * ids, whose handlers call workspace/executeCommand and present the answer.
 */
export const LENS_COMMANDS: Record<string, string> = {
  'perfd.generateNext': 'perfd.lens.generateNext',
  'perfd.generate': 'perfd.lens.generate',
  'perfd.status': 'perfd.lens.status',
};

export function rewriteLensCommand(command: string): string {
  return LENS_COMMANDS[command] ?? command;
}
