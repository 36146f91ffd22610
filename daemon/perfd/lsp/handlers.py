"""The LSP features of a session: plain functions of (session, params), registered by `register`.

Handlers are thin: fetch the document, ask the engine, convert with
perfd.lsp.features. The open buffer's text (didOpen/didChange, incremental
sync) is what gets parsed for that document, not the file on disk.
"""

from __future__ import annotations

import functools
import os

from lsprotocol import types as lsp

from perfd.lsp import features as F
from perfd.lsp.binding import async_feature, feature
from perfd.lsp.state import Session


def register(s: Session, *, watch: bool) -> None:
    """Every LSP feature of `s` (the perfd.* commands are perfd.lsp.commands' and perfd.lsp.run's).

    `watch`: start a file watcher when the client is initialized (standalone mode).
    """
    feature(s, lsp.INITIALIZED, initialized_watching if watch else initialized)
    feature(s, lsp.TEXT_DOCUMENT_DID_OPEN, did_open, timed="didOpen")
    feature(s, lsp.TEXT_DOCUMENT_DID_CHANGE, did_change, timed="didChange")
    feature(s, lsp.TEXT_DOCUMENT_DID_SAVE, did_save)
    feature(s, lsp.TEXT_DOCUMENT_DID_CLOSE, did_close)
    feature(s, lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL, document_symbol, timed="documentSymbol")
    feature(s, lsp.WORKSPACE_SYMBOL, workspace_symbol, timed="workspaceSymbol")
    feature(s, lsp.TEXT_DOCUMENT_CODE_LENS, code_lens, timed="codeLens")
    feature(s, lsp.TEXT_DOCUMENT_HOVER, hover, timed="hover")
    feature(s, lsp.TEXT_DOCUMENT_DEFINITION, definition)
    feature(s, lsp.TEXT_DOCUMENT_DOCUMENT_LINK, document_link)
    feature(s, lsp.TEXT_DOCUMENT_FOLDING_RANGE, folding_range)
    feature(s, lsp.TEXT_DOCUMENT_COMPLETION, completion, lsp.CompletionOptions(trigger_characters=["@", " ", "."]))
    feature(s, lsp.TEXT_DOCUMENT_CODE_ACTION, code_action, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, F.ACTION_KIND]), timed="codeAction")
    feature(s, lsp.WINDOW_WORK_DONE_PROGRESS_CANCEL, progress_cancel)
    async_feature(s, lsp.SHUTDOWN, shutdown)


# -- life cycle ----------------------------------------------------------------------


def initialized(s: Session, params: lsp.InitializedParams) -> None:
    s.maybe_send_stats(force=True)


def initialized_watching(s: Session, params: lsp.InitializedParams) -> None:
    """initialized, standalone: this session watches the plans itself."""
    if os.path.isdir(s.engine.plans_dir):
        from perfd.background import spawn
        from perfd.runtime.watcher import watch as watch_files

        spawn(watch_files(s.engine.plans_dir, functools.partial(files_changed, s)), name="lsp-watcher")
    initialized(s, params)


async def files_changed(s: Session, paths: set[str]) -> None:
    """What the standalone watcher saw: the engine forgets it, the editor is told."""
    s.engine.changed(sorted(paths))
    s.refresh(paths)


async def shutdown(s: Session, params: None) -> None:
    # Only the session's own client (standalone): the daemon closes its shared one itself.
    await s.drop_llm()


def progress_cancel(s: Session, params: lsp.WorkDoneProgressCancelParams) -> None:
    s.cancel_run(params.token)


# -- text sync -------------------------------------------------------------------------


def did_open(s: Session, params: lsp.DidOpenTextDocumentParams) -> None:
    s.publish(params.text_document.uri)


def did_change(s: Session, params: lsp.DidChangeTextDocumentParams) -> None:
    s.publish(params.text_document.uri)


def did_save(s: Session, params: lsp.DidSaveTextDocumentParams) -> None:
    s.publish(params.text_document.uri)


def did_close(s: Session, params: lsp.DidCloseTextDocumentParams) -> None:
    s.close_document(params.text_document.uri)


# -- features ----------------------------------------------------------------------------


def document_symbol(s: Session, params: lsp.DocumentSymbolParams) -> list[F.SymbolJSON]:
    uri = params.text_document.uri
    return F.document_symbols(s.parsed(uri), s.lines(uri), units=s.units)


def workspace_symbol(s: Session, params: lsp.WorkspaceSymbolParams) -> list[lsp.WorkspaceSymbol]:
    return F.workspace_symbols([s.engine.plan_status(p) for p in s.engine.plans()], params.query)


def code_lens(s: Session, params: lsp.CodeLensParams) -> list[F.CodeLensJSON]:
    got = s.plan_status(params.text_document.uri)
    if got is None or got.doc is None:
        return []
    return F.code_lenses(got.status, got.doc, s.lines(params.text_document.uri))


def hover(s: Session, params: lsp.HoverParams) -> lsp.Hover | None:
    got = s.plan_status(params.text_document.uri)
    if got is None:
        return None
    return F.hover(got.status, s.lines(params.text_document.uri), params.position, s.engine.root, s.plan_doc(got),
                   units=s.units)


def definition(s: Session, params: lsp.DefinitionParams) -> lsp.Location | None:
    uri = params.text_document.uri
    got = s.plan_status(uri)
    if got is None:
        return None
    files = F.plan_files(got.status, os.path.dirname(got.status.path))
    return F.definition(got.status, s.lines(uri), params.position, s.path_of(uri), files, units=s.units)


def document_link(s: Session, params: lsp.DocumentLinkParams) -> list[lsp.DocumentLink]:
    got = s.plan_status(params.text_document.uri)
    if got is None:
        return []
    files = F.plan_files(got.status, os.path.dirname(got.status.path))
    return F.document_links(s.lines(params.text_document.uri), files, units=s.units)


def folding_range(s: Session, params: lsp.FoldingRangeParams) -> list[F.FoldingRangeJSON]:
    return F.folding_ranges(s.parsed(params.text_document.uri))


def completion(s: Session, params: lsp.CompletionParams) -> lsp.CompletionList:
    got = s.plan_status(params.text_document.uri)
    items = F.completions(got.status if got else None, s.engine.plan_names(), s.lines(params.text_document.uri),
                          params.position, units=s.units)
    return lsp.CompletionList(is_incomplete=False, items=items)


def code_action(s: Session, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
    uri = params.text_document.uri
    got = s.plan_status(uri)
    if got is None or got.doc is None:  # actions live in PLAN files
        return []
    actions = F.code_actions(got.status, got.doc, s.lines(uri), params.range, params.context.diagnostics, uri)
    return F.only_kinds(actions, params.context.only)
