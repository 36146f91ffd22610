// Rewriting the server's code lens commands. (Which plan a file belongs to is the server's to
// say: the extension hands it the file, see Commands.askAboutPlan.)
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
