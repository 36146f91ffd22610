"""One editor connection's state: its pygls server, its documents' parses, the stats throttle.

perfd.lsp.server builds a Session and has the handler modules (perfd.lsp.handlers,
perfd.lsp.commands, perfd.lsp.run) register theirs on it; they all take a Session,
so it lives here, apart from the factory and the handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

import msgspec
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from perfd import __version__
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.plan_parser import PlanMemo
from perfd.engine.text import decode, read_bytes
from perfd.runtime.stats import Stats, snapshot
from perfd.lsp import features as F
from perfd.lsp.pygls_adapter import PerfdProtocol
from perfd.lsp.positions import Units
from perfd.engine.types import PlanDoc, PlanStatus
from perfd.wire.protocol import RunAnswer, StatsSnapshot

if TYPE_CHECKING:
    from perfd.llm import LLMClient

log = logging.getLogger("perfd.lsp")
_T = TypeVar("_T")

STATS_NOTIFICATION = "perfd/stats"
STATS_MIN_INTERVAL_S = 0.25  # at most four perfd/stats notifications a second per session
PLANS_CHANGED_NOTIFICATION = "perfd/plansChanged"


class PlansChanged(msgspec.Struct, frozen=True):
    """perfd/plansChanged: files of the workspace changed on disk; views re-read what they show.

    `paths` are the files the watcher saw (empty: anything may have changed).
    """

    root: str
    paths: list[str]


class DocumentPlan(NamedTuple):
    """The plan a document belongs to: its status, and its parse when the document is the PLAN itself."""

    status: PlanStatus
    doc: PlanDoc | None


class _Buffer:
    """What a session derived from one version of an open document."""

    __slots__ = ("version", "lines", "doc", "memo")

    def __init__(self, version: int | None, memo: PlanMemo) -> None:
        self.version = version
        self.lines: list[str] | None = None
        self.doc: PlanDoc | None = None
        self.memo = memo  # the chunks of the last parse, kept across versions: an edit re-reads only its own


class ModelFor(Protocol):
    """The model client for perfd.run: [llm]'s, or a [models.NAME]'s; None when none is configured."""

    def __call__(self, *, model: str | None = None) -> LLMClient | None: ...


class Session:
    """Per-connection state: the server, its documents' parses, the stats throttle."""

    def __init__(self, engine: Engine, stats: Callable[[], StatsSnapshot] | None,
                 llm: ModelFor | None = None) -> None:
        self.engine = engine
        # The model client for perfd.run: the daemon's shared one, else this session's own (lazily).
        self._own_llm: LLMClient | None = None
        self._own_llm_loaded = False
        self.llm: ModelFor = llm or self._standalone_llm
        self._named: dict[str, LLMClient | None] = {}  # standalone: the [models.NAME] clients made
        # Standalone, the session keeps its own counters; in the daemon `stats` is the daemon's.
        self.own_stats = Stats()
        self.stats: Callable[[], StatsSnapshot] = stats or (
            lambda: snapshot(root=engine.root, engine=engine, stats=self.own_stats, sessions=1))
        self.server = LanguageServer("perfd", __version__, protocol_cls=PerfdProtocol)
        self.buffers: dict[str, _Buffer] = {}  # open documents, by uri
        self.last_stats = 0.0
        self.closed = asyncio.Event()
        self.on_timing: Callable[[str, int, bool], None] | None = None
        self.related_published: dict[str, set[str]] = {}  # plan uri -> other files given diagnostics
        # perfd.run's model calls in flight, by request id and by progress token (to cancel them)
        self.runs: dict[object, asyncio.Future[RunAnswer]] = {}
        proto = self.server.protocol
        assert isinstance(proto, PerfdProtocol)
        self.protocol = proto  # the server's, typed as what it is: its hooks are set here and by the transports
        proto.on_exit = self._on_exit
        proto.on_cancel = self.cancel_run

    def _on_exit(self) -> None:
        self.closed.set()

    @property
    def units(self) -> Units:
        """Columns as this client and the server agreed at initialize (see perfd.lsp.positions)."""
        return Units(self.server.workspace.position_encoding)

    def _standalone_llm(self, *, model: str | None = None) -> LLMClient | None:
        if model is not None:
            if model not in self._named:
                from perfd.llm import client_from_workspace

                self._named[model] = client_from_workspace(self.engine.root, model=model)
            return self._named[model]
        if not self._own_llm_loaded:
            from perfd.llm import client_from_workspace

            self._own_llm = client_from_workspace(self.engine.root)
            self._own_llm_loaded = True
        return self._own_llm

    async def drop_llm(self) -> None:
        """Close the model client this session made for itself, if any (standalone); a later run makes a
        new one. The daemon's shared client is the daemon's to close."""
        own, self._own_llm, self._own_llm_loaded = self._own_llm, None, False
        named, self._named = list(self._named.values()), {}
        for client in (own, *named):
            if client is not None:
                await client.aclose()  # commits the queued cache and history writes

    # -- documents ----------------------------------------------------------------

    def path_of(self, uri: str) -> str:
        doc = self.server.workspace.get_text_document(uri)
        if not doc.path:
            raise UserError(f"not a file URI: {uri}", code="bad-uri")
        return doc.path

    def _buffer(self, uri: str) -> tuple[TextDocument, str, _Buffer]:
        """The document's text and what was derived from its current version (reset when the version moves).

        A document that is not open is read from disk each time (see _disk_text) and nothing
        is kept for it.
        """
        td = self.server.workspace.get_text_document(uri)
        if td.version is None:
            return td, _disk_text(self._disk_path(uri)), _Buffer(None, PlanMemo())
        buf = self.buffers.get(uri)
        if buf is None:
            buf = self.buffers[uri] = _Buffer(td.version, PlanMemo())
        elif buf.version != td.version:
            buf.version, buf.lines, buf.doc = td.version, None, None
        return td, td.source, buf

    def _disk_path(self, uri: str) -> str:
        """The real path of a document that is not open, which is read from disk: only inside the workspace,
        symlinks resolved (a UserError otherwise, answered as InvalidParams), never read before that."""
        return self.engine.check_inside(self.path_of(uri))

    def lines(self, uri: str) -> list[str]:
        _, text, buf = self._buffer(uri)
        if buf.lines is None:
            buf.lines = text.split("\n")
        return buf.lines

    def parsed(self, uri: str) -> PlanDoc:
        td, text, buf = self._buffer(uri)
        if buf.doc is None:
            buf.doc = self.engine.parse_text(td.path, text, memo=buf.memo)
        return buf.doc

    def _file_lines(self, path: str) -> list[str]:
        """Lines of another file of a plan, for its diagnostics' ranges: none when it is unreadable or has
        come to lead out of the workspace (a file swapped for a symlink since the engine read it)."""
        try:
            return _disk_text(self.engine.check_inside(path)).split("\n")
        except (UserError, OSError):
            return []

    def plan_status(self, uri: str) -> DocumentPlan | None:
        """Status of the plan this document belongs to; a PLAN buffer is parsed from memory."""
        path = self.path_of(uri)
        plan = self.engine.plan_for_path(path)
        if plan is None:
            return None
        if os.path.realpath(plan.path) == os.path.realpath(path):
            doc = self.parsed(uri)
            return DocumentPlan(self.engine.plan_status_with(plan, doc), doc)
        return DocumentPlan(self.engine.plan_status(plan), None)

    def plan_doc(self, got: DocumentPlan) -> PlanDoc:
        """The parse of the document's PLAN: the buffer's when it is the PLAN, else the file's."""
        if got.doc is not None:
            return got.doc
        plan = self.engine.plan_for_path(got.status.path)
        if plan is None:
            raise UserError("the plan of this document is gone", code="unknown-plan")
        return self.engine.plan_doc(plan)

    def close_document(self, uri: str) -> None:
        """The editor closed `uri`: forget its parses and clear its diagnostics."""
        self.buffers.pop(uri, None)
        self.server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    # -- timing, for the stats notification ----------------------------------------

    def timed(self, name: str, fn: Callable[[], _T]) -> _T:
        t = time.perf_counter_ns()
        failed = True
        try:
            result = fn()
            failed = False
            return result
        finally:
            ns = time.perf_counter_ns() - t
            record = self.on_timing or self.own_stats.record  # the daemon's shared stats, else our own
            record("lsp/" + name, ns, failed)
            self.maybe_send_stats()

    def maybe_send_stats(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_stats < STATS_MIN_INTERVAL_S:
            return
        self.last_stats = now
        try:
            self.server.protocol.notify(STATS_NOTIFICATION, msgspec.to_builtins(self.stats()))
        except Exception:  # a closed transport: the session is going away
            log.debug("could not send stats", exc_info=True)

    # -- pushing diagnostics ---------------------------------------------------------

    def publish(self, uri: str) -> None:
        related: dict[str, list[lsp.Diagnostic]] = {}
        try:
            lines = self.lines(uri)
            path = self.path_of(uri)
            got = self.plan_status(uri)
            if got is None:
                problems = list(self.parsed(uri).problems) if _is_plan_name(path) else []
            else:
                problems = list(got.status.problems)
                if got.doc is not None:  # the PLAN itself: also its review files, SUBPLANs, parallel.json
                    for other, probs in F.related_diagnostics(got.status).items():
                        related[F.path_to_uri(other)] = F.diagnostics(probs, other, self._file_lines(other),
                                                                      units=self.units)
            diags = F.diagnostics(problems, path, lines, units=self.units)
        except UserError:
            diags = []
        self.server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diags))
        # Files not open in the editor get their problems too (the Problems panel shows them);
        # a file whose problems went away gets an empty list once.
        open_docs = self.server.workspace.text_documents
        for other_uri in set(related) | self.related_published.get(uri, set()):
            if other_uri in open_docs and other_uri != uri:
                continue  # its own publish covers it
            self.server.text_document_publish_diagnostics(
                lsp.PublishDiagnosticsParams(uri=other_uri, diagnostics=related.get(other_uri, [])))
        self.related_published[uri] = {u for u, d in related.items() if d}

    def refresh(self, paths: Collection[str] = ()) -> None:
        """Files changed on disk: tell the client (perfd/plansChanged, for its views), re-publish
        diagnostics and ask it to refresh lenses."""
        try:
            self.server.protocol.notify(PLANS_CHANGED_NOTIFICATION, msgspec.to_builtins(
                PlansChanged(root=self.engine.root, paths=sorted(paths))))
        except Exception:  # a closed transport: the session is going away
            log.debug("could not send plansChanged", exc_info=True)
        for uri in list(self.server.workspace.text_documents):
            self.publish(uri)
        caps = self.server.client_capabilities
        ws = caps.workspace if caps else None
        if ws and ws.code_lens and ws.code_lens.refresh_support:
            self.server.workspace_code_lens_refresh(None)
        self.maybe_send_stats()

    def cancel_run(self, key: object) -> None:
        """Cancel the perfd.run known by its request id or progress token (the model call is closed)."""
        task = self.runs.get(key)
        if task is not None and not task.done():
            task.cancel()


def _disk_text(path: str) -> str:
    """A file's text, decoded as the parsers decode it (so line numbers agree); OSError for anything that is
    not a regular file (a FIFO named like a plan must not hang the session)."""
    return decode(read_bytes(path), path)[0]


def _is_plan_name(path: str) -> bool:
    return os.path.basename(path).startswith("PLAN_")
