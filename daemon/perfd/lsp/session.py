"""Run one LSP session over a daemon connection (after the `lsp` upgrade request).

Each editor gets its own pygls server from perfd.lsp.server.build_server, over
the daemon's one engine, so every window and the CLI share the cache and the
stats. pygls's message loop (pygls.io_.run_async) reads from an adapter over
the anyio stream; replies go through a queue drained by one task, because an
anyio socket stream refuses concurrent sends and pygls writes from several
handlers.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from pygls.io_ import run_async

from perfd.engine.engine import Engine
from perfd.lsp.server import build_server
from perfd.lsp.state import ModelFor, Session
from perfd.wire.protocol import StatsSnapshot

log = logging.getLogger("perfd.lsp")
MAX_HEADER_LINE = 65536


class _Reader:
    """pygls's AsyncReader (readline / readexactly) over an anyio byte stream; b"" at the end."""

    def __init__(self, stream: BufferedByteReceiveStream) -> None:
        self._s = stream

    async def readline(self) -> bytes:
        try:
            return await self._s.receive_until(b"\n", MAX_HEADER_LINE) + b"\n"
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError,
                anyio.DelimiterNotFound, OSError):
            return b""

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self._s.receive_exactly(n)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError,
                OSError):
            return b""


class _Writer:
    """pygls's writer: queue the bytes; one task sends them in order."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[bytes](math.inf)

    def write(self, data: bytes) -> None:
        try:
            self.send.send_nowait(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the session is closing: nothing more goes out

    def close(self) -> None:
        self.send.close()


async def serve_lsp(stream: anyio.abc.ByteStream, leftover: bytes, engine: Engine, *,
                    stats: Callable[[], StatsSnapshot] | None = None,
                    record: Callable[[str, int, bool], None] | None = None,
                    registry: set[Session] | None = None,
                    llm: ModelFor | None = None) -> None:
    """Serve LSP on `stream` until the editor exits or disconnects; other sessions are untouched."""
    buffered = BufferedByteReceiveStream(stream)
    if leftover:
        buffered.feed_data(leftover)
    session = build_server(engine, stats=stats, llm=llm)
    session.on_timing = record
    proto = session.protocol
    writer = _Writer()
    proto.set_writer(writer)
    stop = threading.Event()

    def on_exit() -> None:
        # `exit` ends this session only: stop reading, flush what is queued, close.
        stop.set()
        session.closed.set()

    proto.on_exit = on_exit

    async def pump() -> None:
        async with writer.receive:
            async for data in writer.receive:
                try:
                    await stream.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return

    if registry is not None:
        registry.add(session)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            await run_async(stop_event=stop, reader=_Reader(buffered), protocol=proto, logger=log,
                            error_handler=session.server.report_server_error)
            writer.close()  # pump drains the queue, then ends
    finally:
        if registry is not None:
            registry.discard(session)
        with anyio.CancelScope(shield=True):
            await stream.aclose()
