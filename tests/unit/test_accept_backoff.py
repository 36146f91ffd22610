"""The accept loop: out of descriptors it backs off and retries, it never ends; past the cap it refuses."""

from __future__ import annotations

import errno
import socket
from typing import Any

import anyio
import pytest

from perfd.daemon.connections import Connections, Limits, limits_for
from perfd.settings.schema import DaemonSettings
from perfd.daemon.host import Subscribers
from perfd.daemon.peer import Peer, PeerCheck
from perfd.runtime.stats import Stats


class FakeListener:
    def __init__(self, script: list[Any]) -> None:
        self.script = script

    async def __aenter__(self) -> FakeListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def accept(self) -> Any:
        await anyio.sleep(0)
        step = self.script.pop(0) if self.script else anyio.ClosedResourceError()
        if isinstance(step, BaseException):
            raise step
        return step


class FakeStream:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    async def send(self, data: bytes) -> None:
        self.sent.append(data)

    async def aclose(self) -> None:
        self.closed = True


def _no_peer(sock: socket.socket) -> Peer:
    raise AssertionError("no connection is served here")


async def _no_editor(serve_lsp: object, stream: object, leftover: bytes) -> None:
    raise AssertionError("no editor here")


class _NoStop:
    def clear_state(self) -> None:
        pass

    def stop(self, reason: str) -> None:
        raise AssertionError("nothing stops the daemon here")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_emfile_and_enfile_back_off_then_accept_resumes(anyio_backend: str) -> None:
    conns = Connections({}, peer_check=PeerCheck("none", _no_peer), stats=Stats(), subscribers=Subscribers(),
                        stop=_NoStop(), serve_editor=_no_editor, limits=Limits(max_connections=1))
    served: list[Any] = []

    async def connection(stream: Any) -> None:
        served.append(stream)

    conns.connection = connection  # type: ignore[method-assign]
    over = FakeStream()
    script: list[Any] = [OSError(errno.EMFILE, "Too many open files"), OSError(errno.ENFILE, "File table overflow"),
                         OSError(errno.ECONNABORTED, "aborted"), "first", over]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await conns.accept(FakeListener(script), tg)  # type: ignore[arg-type]
    assert conns.accept_backoffs == 3
    assert served == ["first"]  # accepted after backing off, the loop never ended on an OSError
    assert conns.refused == 1 and over.closed and b"too many connections" in over.sent[0]


def test_the_cap_stays_under_the_open_file_limit() -> None:
    assert limits_for(DaemonSettings(), open_files=1024).max_connections == 1024 - 128
    assert limits_for(DaemonSettings(max_connections=50), open_files=1 << 20).max_connections == 50
    # a bad value never gets this far: the settings layer refuses it, naming the file and line
    assert limits_for(DaemonSettings(), open_files=1 << 20).max_connections == Limits().max_connections
