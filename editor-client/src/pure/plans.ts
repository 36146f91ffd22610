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
  // the code actions' commands
  'perfd.run': 'perfd.lens.run',
  'perfd.createSubplan': 'perfd.action.createSubplan',
  'perfd.openFile': 'perfd.action.openFile',
};

export function rewriteLensCommand(command: string): string {
  return LENS_COMMANDS[command] ?? command;
}

interface CommandLike {
  command: string;
}

/**
 * Code actions as the client received them: a bare Command (its `command` a string) or a
 * CodeAction (its `command`, if any, a Command). Each server command is pointed at ours.
 */
export function rewriteCodeActions<T extends CommandLike | { command?: CommandLike }>(actions: T[]): T[] {
  for (const a of actions) {
    const c = (a as { command?: unknown }).command;
    if (typeof c === 'string') (a as CommandLike).command = rewriteLensCommand(c);
    else if (c && typeof (c as CommandLike).command === 'string') (c as CommandLike).command = rewriteLensCommand((c as CommandLike).command);
  }
  return actions;
}
