"""The daemon keeps answering while the first editor session loads pygls and lsprotocol.

That import takes most of a second of CPU on a cold daemon. An editor asks for the
daemon's stats (`perfd stats --json`) beside its session's start, and CLI calls may come
in at the same moment: none of them may wait for it. The slow import is simulated with
a gate on the one seam, `perfd.daemon.connections.load_lsp`, so the test does not depend on timing.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import anyio
import orjson
import pytest
from conftest import make_workspace

from perfd.daemon import connections, server
from perfd.wire.ipc import FrameDecoder, frame


async def _ask(sock: str, body: bytes) -> dict[str, object]:
    async with await anyio.connect_unix(sock) as s:
        await s.send(frame(body))
        dec = FrameDecoder()
        while True:
            got = dec.feed(await s.receive())
            if got:
                reply = orjson.loads(got[0])
                assert isinstance(reply, dict)
                return reply


def _lsp_message(obj: dict[str, object]) -> bytes:
    body = orjson.dumps(obj)
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_requests_are_answered_while_the_first_lsp_session_loads(
        tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFD_RUNTIME_DIR", os.path.join(tmp_path, "r"))
    monkeypatch.setenv("PERFD_STATE_DIR", os.path.join(tmp_path, "s"))
    root = make_workspace(str(tmp_path))
    # As on a cold daemon: the session module is not loaded yet (restored after the test).
    monkeypatch.delitem(sys.modules, "perfd.lsp.session", raising=False)
    loading, release, loaded = threading.Event(), threading.Event(), threading.Event()
    real: Callable[..., object] = connections.load_lsp

    def slow_load() -> object:
        loading.set()
        release.wait(30)  # bounded: a broken daemon fails the test, never hangs it
        try:
            return real()
        finally:
            loaded.set()

    monkeypatch.setattr(connections, "load_lsp", slow_load)
    d = server.Daemon(root)
    sock = d.paths.sock
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(d.run)
            while not os.path.exists(sock):
                await anyio.sleep(0.01)
            editor = await anyio.connect_unix(sock)
            await editor.send(frame(b'{"jsonrpc":"2.0","id":1,"method":"lsp","params":{}}'))
            await anyio.to_thread.run_sync(loading.wait, 30)

            # The session is loading (and stays so until released): the daemon still answers.
            stats = await _ask(sock, orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "cli", "params": {
                "argv": ["stats", "--json", "--root", root], "cwd": "/"}}))
            assert not loaded.is_set(), "the daemon answered only after the session had loaded"
            result = stats["result"]
            assert isinstance(result, dict) and result["code"] == 0, stats
            assert orjson.loads(result["stdout"])["root"] == root
            pong = await _ask(sock, b'{"jsonrpc":"2.0","id":3,"method":"ping"}')
            assert isinstance(pong["result"], dict) and pong["result"]["pong"] is True

            # Released, the session is a working language server.
            release.set()
            dec = FrameDecoder()
            while not (got := dec.feed(await editor.receive())):
                pass
            assert orjson.loads(got[0])["result"]["lsp"] is True
            buf = dec.take_rest()
            await editor.send(_lsp_message({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                            "params": {"processId": None, "rootUri": "file://" + root,
                                                       "capabilities": {}}}))
            while b'"id":1' not in buf or b"capabilities" not in buf:
                buf += await editor.receive()
            assert b"codeLensProvider" in buf
            await editor.aclose()
            d.stop("test over")
