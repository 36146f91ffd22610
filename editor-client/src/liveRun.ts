// "Run" in the editor: perfd.run's answer streams into a new untitled Markdown editor as the
// model writes it (perfd/runChunk notifications), with progress and a Cancel button in the
// notification area; the answer can then be saved where the achievement's state asks, under
// the `perfd run --write` rules (the server writes it: inside the workspace, atomically, never
// over a file).
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { PerfdApi } from './api';
import { errorMessage } from './pure/format';
import { StreamBuffer } from './pure/stream';

export interface RunHost {
  streams: Map<string, StreamBuffer>;
  log(line: string): void;
  timing(what: string, ms: number, note?: string): void;
  root(plan: string): string | undefined;
}

let seq = 0;

/** `model`: a `[models.NAME]` to run with, '' for `[llm]`. */
export async function liveRun(host: RunHost, api: PerfdApi, plan: string, achievement: string | null, model = ''): Promise<void> {
  const id = `run-${process.pid}-${Date.now()}-${++seq}`;
  const started = Date.now();
  let doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: '' });
  const editor = await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
  const buffer = new StreamBuffer(
    async (text) => {
      const end = doc.lineAt(doc.lineCount - 1).range.end;
      // The editor's own edit goes straight to its model; a WorkspaceEdit takes the bulk-edit
      // path (participants, undo groups) first, which the first token paid for in hundreds of ms.
      if (editor && !doc.isClosed && (vscode.window.visibleTextEditors ?? []).includes(editor)) {
        if (await editor.edit((b) => b.insert(end, text), { undoStopBefore: false, undoStopAfter: false })) return;
      }
      const edit = new vscode.WorkspaceEdit();
      edit.insert(doc.uri, end, text);
      if (!(await vscode.workspace.applyEdit(edit))) throw new Error('the run editor is closed');
    },
    () => {
      const now = Date.now();
      host.log(`stream: first chunk shown at epoch ${now}`);
      host.timing('run to first streamed text', now - started);
    },
  );
  host.streams.set(id, buffer);
  const what = achievement ? `${achievement} of ${path.basename(plan)}` : `the next step of ${path.basename(plan)}`;
  let cancelled = false;
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `perfd: running ${what}`, cancellable: true },
      async (progress, token) => {
        token.onCancellationRequested(() => {
          cancelled = true;
          buffer.close();
        });
        progress.report({ message: model ? `asking ${model}…` : 'asking the model…' });
        return api.runStreamed(plan, achievement, id, token, model);
      },
    );
    await buffer.drain();
    if (result.achievement === null) {
      // nothing to run: say why, in the editor that was opened for it
      if (!doc.getText()) {
        buffer.close();
        const edit = new vscode.WorkspaceEdit();
        edit.insert(doc.uri, new vscode.Position(0, 0), result.prompt ?? 'Nothing to run.');
        await vscode.workspace.applyEdit(edit);
      }
      void vscode.window.showInformationMessage(`perfd: nothing to run in ${path.basename(plan)} (${result.state}).`);
      return;
    }
    if (doc.isClosed) {
      // the editor was closed while the answer came: the whole answer in a new one
      doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: result.text });
      await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
    } else if (!doc.getText() && result.text) {
      // a cached answer arrives whole, without chunks
      const edit = new vscode.WorkspaceEdit();
      edit.insert(doc.uri, new vscode.Position(0, 0), result.text);
      await vscode.workspace.applyEdit(edit);
    }
    host.log(`run ${result.plan} ${result.achievement}: ${result.tokens ?? 0} tokens${result.cached ? ' (from the cache)' : ''} in ${Date.now() - started} ms`);
    const target = result.write_path;
    const summary = `perfd: ${result.achievement} (${result.state}) answered${result.cached ? ' from the cache' : ''}.`;
    if (!target) {
      void vscode.window.showInformationMessage(summary);
      return;
    }
    const root = host.root(plan);
    const shown = root ? path.relative(root, target) : target;
    const choice = await vscode.window.showInformationMessage(`${summary} Save it to ${shown}?`, 'Save', 'Keep Unsaved');
    if (choice !== 'Save') return;
    try {
      const saved = await api.writeAnswer(plan, result.achievement, doc.getText());
      await vscode.window.showTextDocument(doc, { preview: false });
      await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
      await vscode.window.showTextDocument(vscode.Uri.file(saved.path), { preview: false });
    } catch (e) {
      void vscode.window.showErrorMessage(`perfd: not saved: ${errorMessage(e).replace(/^perfd: /, '')}`);
    }
  } catch (e) {
    buffer.close();
    if (cancelled || /cancel/i.test(errorMessage(e))) {
      host.log(`run of ${what} cancelled after ${buffer.applied} characters`);
      void vscode.window.showInformationMessage(`perfd: the run of ${what} was cancelled; what arrived stays in the editor, unsaved.`);
    } else {
      void vscode.window.showErrorMessage(`perfd: ${errorMessage(e).replace(/^perfd: /, '')}`);
    }
  } finally {
    host.streams.delete(id);
  }
}
