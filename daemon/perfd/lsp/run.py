"""perfd.run over LSP: the answer's pieces as they arrive (perfd/runChunk) and as work-done progress."""

from __future__ import annotations

import time

import msgspec
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from perfd.app.run import RunListener

RUN_CHUNK_NOTIFICATION = "perfd/runChunk"
RUN_REPORT_INTERVAL_S = 0.1  # perfd.run: at most ten progress reports a second


class RunStreamChunk(msgspec.Struct, frozen=True):
    """perfd/runChunk: the next piece of a perfd.run answer, sent as it arrives.

    `id` is the one the client gave in perfd.run's options ({"stream": id}),
    so it can tell concurrent runs apart.
    """

    id: str
    achievement: str
    text: str


class ProgressReporter(RunListener):
    """perfd.run's partial text: every piece as a perfd/runChunk (when the client gave a stream id),
    and the text so far as work-done progress reports, at most ten a second."""

    def __init__(self, server: LanguageServer, token: str | None, stream_id: str | None) -> None:
        self.server = server
        self.token = token
        self.stream_id = stream_id
        self.text = ""
        self.last = 0.0

    def delta(self, achievement: str, text: str) -> None:
        self.text += text
        if self.stream_id is not None:
            self.server.protocol.notify(RUN_CHUNK_NOTIFICATION, msgspec.to_builtins(
                RunStreamChunk(id=self.stream_id, achievement=achievement, text=text)))
        now = time.monotonic()
        if self.token is not None and now - self.last >= RUN_REPORT_INTERVAL_S:
            self.last = now
            self.flush()

    def flush(self) -> None:
        if self.token is None:
            return
        # A client that takes the pieces (perfd/runChunk) gets a short count, not the whole text
        # again ten times a second: an editor draws every report it is sent.
        message = f"{len(self.text)} characters" if self.stream_id is not None else self.text
        self.server.work_done_progress.report(self.token, lsp.WorkDoneProgressReport(message=message))
