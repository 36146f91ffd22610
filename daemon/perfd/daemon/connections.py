"""The daemon's connections: accept, check the peer, read frames, dispatch requests, upgrade to LSP.

Every connection is its own task, and every request on it its own task: a
client that disconnects cancels its in-flight requests. A request's answer
(or error) goes out through one send lock per connection, because anyio
socket streams refuse concurrent sends. No exception in one request reaches
the connection or the daemon: it becomes a JSON-RPC error and one log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
from anyio.abc import SocketAttribute

import perfd
from perfd.daemon.methods import Context, Handler, Methods, RpcError, Served
from perfd.daemon.peer import peer_allowed
from perfd.engine.errors import UserError
from perfd.wire import protocol as P
from perfd.wire.ipc import FrameDecoder, FrameTooLarge, frame

if TYPE_CHECKING:
    from perfd.daemon.server import Daemon

log = logging.getLogger("perfd.daemon")
_enc = msgspec.json.Encoder()
_req_dec = msgspec.json.Decoder(P.Request)
_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
ServeLsp = Callable[..., Awaitable[None]]


def error_body(id_: Any, code: int, message: str, data: Any = None) -> bytes:
    try:
        return _enc.encode(P.ErrorResponse(id=id_, error=P.ErrorObject(code, message, data)))
    except Exception:  # e.g. a lone surrogate from a file name: still an answer, in plain ASCII
        safe = message.encode("ascii", "backslashreplace").decode("ascii")
        return _enc.encode(P.ErrorResponse(id=id_ if isinstance(id_, (int, str)) else None,
                                           error=P.ErrorObject(code, safe)))


def lsp_upgrade(body: bytes) -> Any:
    """The id of an `lsp` upgrade request of this version, or None for any other frame."""
    if b'"lsp"' not in body:
        return None
    try:
        req = _req_dec.decode(body)
    except msgspec.DecodeError:
        return None
    if req.method != "lsp" or req.id is None:
        return None
    version = req.params.get("version") if isinstance(req.params, dict) else None
    return req.id if version in (None, perfd.__version__) else None  # else cmd_lsp says why


def load_lsp() -> ServeLsp:
    from perfd.daemon.codecache import import_cached

    session = import_cached("perfd.lsp.session")  # attrs' generated code from the last start
    return session.serve_lsp  # type: ignore[no-any-return]


class Connections:
    """Accepts and serves the daemon's socket connections."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.methods: dict[str, Handler] = Methods(daemon).table()
        self.serve_lsp: ServeLsp | None = None  # perfd.lsp.session.serve_lsp, once loaded

    async def accept(self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                tg.start_soon(self.connection, stream)

    async def connection(self, stream: anyio.abc.SocketStream) -> None:
        d = self.d
        try:
            peer = d.peer_check.read(stream.extra(SocketAttribute.raw_socket))
        except Exception as exc:  # whatever the kernel answers, only this connection is refused
            log.warning("refused a connection: its peer's credentials are unreadable (%s: %s)",
                        type(exc).__name__, exc)
            await stream.aclose()
            return
        if not peer_allowed(peer.uid):
            log.warning("refused a connection from uid %d (pid %s)", peer.uid, peer.pid or "unknown")
            await stream.aclose()
            return
        d.connections += 1
        d.last_activity = time.monotonic()
        send_lock = anyio.Lock()
        cid = id(stream)

        async def send(body: bytes) -> None:
            async with send_lock:
                await stream.send(frame(body))

        dec = FrameDecoder()
        upgrade: tuple[Any, bytes] | None = None
        try:
            async with anyio.create_task_group() as tg:
                while upgrade is None:
                    try:
                        data = await stream.receive(65536)
                    except (anyio.EndOfStream, *_CLOSED):
                        break
                    try:
                        bodies = dec.feed(data)
                    except FrameTooLarge as exc:
                        d.stats.record("(frame)", 0, error=True)
                        try:
                            await send(error_body(None, P.INVALID_REQUEST, str(exc)))
                        except _CLOSED:
                            pass
                        break
                    for i, body in enumerate(bodies):
                        d.last_activity = time.monotonic()
                        rid = lsp_upgrade(body)
                        if rid is not None:
                            # The connection leaves JSON-RPC framing and carries LSP
                            # from here on: whatever followed the request is LSP.
                            upgrade = (rid, b"".join(frame(b) for b in bodies[i + 1:]) + dec.take_rest())
                            break
                        tg.start_soon(self.request, body, Context(cid=cid, send=send))
                # The client went away (or broke the framing), or upgraded: cancel its work.
                tg.cancel_scope.cancel()
            if upgrade is not None:
                await self.lsp(stream, send, *upgrade)
        finally:
            d.subscribers.pop(cid, None)
            d.connections -= 1
            d.last_activity = time.monotonic()
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def request(self, body: bytes, ctx: Context) -> None:
        t0 = time.perf_counter_ns()
        method = "(invalid)"
        rid: Any = None
        has_id = True
        out: bytes
        failed = False
        try:
            try:
                req = _req_dec.decode(body)
            except msgspec.DecodeError:
                try:
                    obj = msgspec.json.decode(body)
                except msgspec.DecodeError:
                    raise RpcError(P.PARSE_ERROR, "parse error: not JSON") from None
                if isinstance(obj, dict) and isinstance(obj.get("id"), (int, str)):
                    rid = obj["id"]
                raise RpcError(P.INVALID_REQUEST, "invalid request: not a JSON-RPC 2.0 request object") from None
            rid = req.id
            has_id = b'"id"' in body
            handler = self.methods.get(req.method)
            if handler is None:
                method = "(unknown)"
                raise RpcError(P.METHOD_NOT_FOUND, f"method not found: {req.method}")
            method = req.method
            result = await handler(req.params, ctx)
            if isinstance(result, Served):  # a command line: counted under its command, failed when non-zero
                method, failed, result = result.command, result.failed, result.result
            out = result if isinstance(result, bytes) else _enc.encode(P.Response(id=rid, result=result))
        except RpcError as exc:
            failed = True
            out = error_body(rid, exc.code, exc.message, exc.data)
        except UserError as exc:
            failed = True
            out = error_body(rid, P.USER_ERROR, exc.message,
                             P.UserErrorData(code=exc.code, hint=exc.hint, candidates=exc.candidates))
        except Exception as exc:  # a bug: answer and keep serving
            failed = True
            log.exception("internal error in %s", method)
            out = error_body(rid, P.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        self.d.stats.record(method, time.perf_counter_ns() - t0, failed)
        if has_id or failed:
            try:
                await ctx.send(out)
            except _CLOSED:
                return
        if method == "shutdown" and not failed:
            self.d.stop("shutdown requested")

    async def lsp(self, stream: anyio.abc.SocketStream, send: Callable[[bytes], Awaitable[None]], rid: Any,
                  rest: bytes) -> None:
        """One editor's LSP session over this connection (see perfd.lsp.session)."""
        d = self.d
        if self.serve_lsp is None:
            # The first session imports pygls and lsprotocol: 0.5 to 1 s of CPU (attrs builds
            # about 570 classes). On the loop that would stall every other client for as long,
            # among them the editor's own early `perfd stats`, sent while its session starts.
            # In a worker thread the loop keeps answering; the GIL switches every 5 ms. Two
            # sessions racing here import once: the second thread waits on import_cached's
            # lock. (Testing sys.modules instead would not do: the module is there while it is
            # still being imported, and the second session would wait for it on the loop.)
            self.serve_lsp = await anyio.to_thread.run_sync(load_lsp)
        serve_lsp = self.serve_lsp
        t0 = time.perf_counter_ns()
        await send(_enc.encode(P.Response(id=rid, result={"lsp": True, "version": perfd.__version__})))
        d.stats.record("lsp", time.perf_counter_ns() - t0, False)
        await serve_lsp(stream, rest, d.engine, stats=d.editor_stats, record=d.stats.record,
                        registry=d.lsp_sessions, llm=d.llm)
