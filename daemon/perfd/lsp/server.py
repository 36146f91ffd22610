"""perfd's language server: a factory that builds one pygls session over a shared engine.

Handlers are thin: fetch the document, ask the engine, convert with
perfd.lsp.features. The open buffer's text (didOpen/didChange, incremental
sync) is what gets parsed for that document, not the file on disk.

One factory call per editor connection, each with its own protocol object
(perfd.lsp.pygls_adapter), so one editor leaving never takes the others down.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp

from perfd.runtime import heap
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.lsp import features as F
from perfd.lsp.commands import register_commands
from perfd.lsp.pygls_adapter import PerfdProtocol
from perfd.lsp.state import Session
from perfd.wire.protocol import StatsSnapshot

if TYPE_CHECKING:
    from perfd.llm import LLMClient

log = logging.getLogger("perfd.lsp")

COMMANDS = ("perfd.generateNext", "perfd.generate", "perfd.status", "perfd.stats", "perfd.clearCache", "perfd.run",
            "perfd.createSubplan", "perfd.openFile", "perfd.writeAnswer")


def _never() -> Any:
    raise UserError("the plan of this document is gone", code="unknown-plan")


def build_server(engine: Engine, *, stats: Callable[[], StatsSnapshot] | None = None,
                 watch: bool = False, llm: Callable[[], LLMClient | None] | None = None) -> Session:
    """A new session (server + state) over `engine`, with every feature registered.

    `watch`: start a file watcher when the client is initialized (standalone mode).
    `llm`: returns the model client for perfd.run (the daemon passes its shared
    one); without it the session creates its own from the workspace config.
    """
    s = Session(engine, stats, llm)
    server = s.server

    @server.feature(lsp.INITIALIZED)
    def initialized(params: lsp.InitializedParams) -> None:
        if watch and os.path.isdir(engine.workspace.plans_dir):
            from perfd.background import spawn
            from perfd.runtime.watcher import watch as watch_files

            async def changed(paths: set[str]) -> None:
                engine.changed(sorted(paths))
                s.refresh(paths)

            spawn(watch_files(engine.workspace.plans_dir, changed), name="lsp-watcher")
        s.maybe_send_stats(force=True)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        s.timed("didOpen", lambda: s.publish(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        s.timed("didChange", lambda: s.publish(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        s.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        s.buffers.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(params: lsp.DocumentSymbolParams) -> list[F.SymbolJSON]:
        uri = params.text_document.uri
        return s.timed("documentSymbol",  # type: ignore[no-any-return]
                       lambda: F.document_symbols(s.parsed(uri), s.lines(uri), units=s.units))

    @server.feature(lsp.WORKSPACE_SYMBOL)
    def workspace_symbol(params: lsp.WorkspaceSymbolParams) -> list[lsp.WorkspaceSymbol]:
        def run() -> list[lsp.WorkspaceSymbol]:
            statuses = [engine.plan_status(p) for p in engine.workspace.plans()]
            return F.workspace_symbols(statuses, params.query)

        return s.timed("workspaceSymbol", run)  # type: ignore[no-any-return]

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(params: lsp.CodeLensParams) -> list[F.CodeLensJSON]:
        def run() -> list[F.CodeLensJSON]:
            got = s.plan_status(params.text_document.uri)
            if got is None or got[1] is None:
                return []
            return F.code_lenses(got[0], got[1], s.lines(params.text_document.uri))

        return s.timed("codeLens", run)  # type: ignore[no-any-return]

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(params: lsp.HoverParams) -> lsp.Hover | None:
        def run() -> lsp.Hover | None:
            got = s.plan_status(params.text_document.uri)
            if got is None:
                return None
            return F.hover(got[0], s.lines(params.text_document.uri), params.position, engine.root,
                           got[1] or engine.plan_doc(engine.plan_for_path(got[0].path) or _never()), units=s.units)

        return s.timed("hover", run)  # type: ignore[no-any-return]

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(params: lsp.DefinitionParams) -> lsp.Location | None:
        got = s.plan_status(params.text_document.uri)
        if got is None:
            return None
        st = got[0]
        files = F.plan_files(st, os.path.dirname(st.path))
        return F.definition(st, s.lines(params.text_document.uri), params.position,
                            s.path_of(params.text_document.uri), files, units=s.units)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_LINK)
    def document_link(params: lsp.DocumentLinkParams) -> list[lsp.DocumentLink]:
        got = s.plan_status(params.text_document.uri)
        if got is None:
            return []
        st = got[0]
        return F.document_links(s.lines(params.text_document.uri), F.plan_files(st, os.path.dirname(st.path)),
                                units=s.units)

    @server.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)
    def folding_range(params: lsp.FoldingRangeParams) -> list[F.FoldingRangeJSON]:
        return F.folding_ranges(s.parsed(params.text_document.uri))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=["@", " ", "."]))
    def completion(params: lsp.CompletionParams) -> lsp.CompletionList:
        got = s.plan_status(params.text_document.uri)
        names = [p.name for p in engine.workspace.plans()]
        items = F.completions(got[0] if got else None, names, s.lines(params.text_document.uri), params.position,
                              units=s.units)
        return lsp.CompletionList(is_incomplete=False, items=items)

    register_commands(s)  # the perfd.* commands and code actions (perfd.lsp.commands)

    return s


def run_stdio(root: str) -> None:
    """`perfd lsp --standalone`: everything in this process, over stdin/stdout."""
    import sys

    session = build_server(Engine(root), watch=True)
    heap.settle()  # see perfd.runtime.heap: keeps collector pauses out of request latency
    proto = session.server.protocol
    assert isinstance(proto, PerfdProtocol)
    # Alone in its process, a session's exit is the process's exit (as the LSP spec asks).
    proto.on_exit = lambda: sys.exit(0 if proto.shutdown_requested else 1)
    session.server.start_io()
