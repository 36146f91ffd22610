"""What the daemon's collaborators are given instead of the daemon: narrow Protocols and two small shared objects.

perfd.daemon.server builds the Daemon, which owns the connections
(perfd.daemon.connections), the method table (perfd.daemon.methods) and the
warm-up (perfd.daemon.warmup). None of them holds the Daemon: each receives
what it uses, as typed here. This module imports none of them, so that they
all can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc

if TYPE_CHECKING:
    from perfd.llm import LLMClient
    from perfd.wire.protocol import StatsSnapshot

Send = Callable[[bytes], Awaitable[None]]
# perfd.lsp.session.serve_lsp, loaded on the first editor session (its keyword arguments are the daemon's business)
ServeLsp = Callable[..., Awaitable[None]]
# Serves one editor's LSP session with serve_lsp on a connection that upgraded (the bytes already read after it).
ServeEditor = Callable[[ServeLsp, anyio.abc.ByteStream, bytes], Awaitable[None]]
class ModelSource(Protocol):
    """The model client for the settings in force (the daemon's own, or a request's PERFD_* over them);
    None when no model is configured; LLMConfigError when misconfigured."""

    def __call__(self, variables: Mapping[str, str] | None = None, *,
                 model: str | None = None) -> LLMClient | None: ...


class StatsSink(Protocol):
    """Where a request's latency goes (perfd.runtime.stats.Stats)."""

    def record(self, method: str, elapsed_ns: int, error: bool = False) -> None: ...


class StatsSource(Protocol):
    """The daemon's stats, as the `stats` and `ping` methods answer them."""

    def snapshot(self) -> StatsSnapshot: ...

    async def refresh_team(self) -> None: ...

    def uptime(self) -> float: ...


class StopSignal(Protocol):
    """The daemon's life cycle, as a `shutdown` request ends it."""

    def clear_state(self) -> None:
        """Remove the socket and pid file: the next client starts a new daemon."""

    def stop(self, reason: str) -> None: ...


class EditorSession(Protocol):
    """An editor's LSP session, as the daemon refreshes it when files change (perfd.lsp)."""

    def refresh(self, paths: Collection[str]) -> None: ...


class Subscribers:
    """The connections subscribed to notifications, by connection id: `subscribe` adds one, its close drops it."""

    def __init__(self) -> None:
        self._posts: dict[int, Send] = {}

    def add(self, cid: int, post: Send) -> None:
        self._posts[cid] = post

    def drop(self, cid: int) -> None:
        self._posts.pop(cid, None)

    def __contains__(self, cid: int) -> bool:
        return cid in self._posts

    def __len__(self) -> int:
        return len(self._posts)

    async def post(self, body: bytes) -> None:
        """`body` to every subscriber; one that cannot take it (gone, or not reading) is dropped."""
        for cid, post in list(self._posts.items()):
            try:
                await post(body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.drop(cid)


class WarmSignals:
    """How far the warm-up is (perfd.daemon.warmup), for the requests and the watcher that wait on it.

    `warmed`: every plan has an answer (a request for every plan waits for it);
    `parsed`: every file has been read (the watcher starts then); `watch_ready`:
    the watcher is up, or will not be (the warm-up waits for it, bounded);
    `waiters`: requests waiting for `warmed` (the watcher starts once they are
    answered).
    """

    def __init__(self) -> None:
        self.warmed = anyio.Event()
        self.parsed = anyio.Event()
        self.watch_ready = anyio.Event()
        self.waiters = 0

    @asynccontextmanager
    async def waiting(self, wait: bool = True) -> AsyncIterator[None]:
        """Wait (when `wait`) until `warmed`, counted among the waiters until the block ends."""
        if not wait or self.warmed.is_set():
            yield
            return
        self.waiters += 1
        try:
            await self.warmed.wait()
            yield
        finally:
            self.waiters -= 1
