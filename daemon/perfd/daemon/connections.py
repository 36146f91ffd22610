"""The daemon's connections: accept, check the peer, read frames, dispatch requests, upgrade to LSP.

Every connection is its own task, and every request on it its own task: a
client that disconnects cancels its in-flight requests. Answers and
notifications leave through one bounded outbox per connection (anyio socket
streams refuse concurrent sends), written by one pump task.

No client can end or bloat the daemon (see README, Security):
- at most `max_connections` are open at once (the soft open-file limit is
  raised toward the hard one at start, and the cap kept below it); past the
  cap a client gets one TOO_BUSY error and is closed;
- accept failing for want of descriptors (EMFILE, ENFILE) backs off and
  retries, it never ends the accept loop;
- a connection with nothing in flight that sends nothing for `idle_s` is
  closed (subscribers, which wait for notifications, excepted);
- a client that sends requests but never reads the answers holds at most
  `max_pending` requests in flight (their answers wait in the outbox and
  the socket buffer), past which it is dropped; a subscriber whose outbox is
  full is dropped rather than waited for;
- no exception in a request, or in serving a connection, reaches the daemon:
  it becomes a JSON-RPC error (when there is someone to answer) and one log line.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
from anyio.abc import SocketAttribute

import perfd
from perfd.daemon.host import ServeEditor, ServeLsp, StatsSink, StopSignal, Subscribers
from perfd.daemon.methods import Context, ErrorData, Handler, RpcError, Served
from perfd.daemon.peer import PeerCheck, peer_allowed
from perfd.engine.errors import UserError
from perfd.safetext import encode_json
from perfd.settings.schema import DaemonSettings
from perfd.wire import protocol as P
from perfd.wire.ipc import MAX_FRAME, FrameDecoder, FrameTooLarge, frame

log = logging.getLogger("perfd.daemon")
_enc = msgspec.json.Encoder()
_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
# Errors of a JSON body that is not JSON at all: msgspec raises DecodeError, but
# UnicodeDecodeError for invalid UTF-8 in a string and RecursionError for nesting too deep.
_NOT_JSON = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_NO_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# Bodies past BIG_BODY are read at most BIG_BODY_RATE bytes a second, all connections
# together: decoding and dispatching one takes the loop about 1.5 ms per MiB, so a
# client sending the largest frames back to back keeps it busy a sixth of the time at
# most, and everyone else's requests are served in between. (No real request is big.)
BIG_BODY = 64 * 1024
BIG_BODY_RATE = 100 * 1024 * 1024
# Descriptors kept for everything but client connections: logs, databases, the
# watcher, model connections, the listener, a refused client being told why.
FD_RESERVE = 128


class _Req(msgspec.Struct):
    """A request as read off the wire: unlike protocol.Request, an absent id (a notification) is UNSET,
    and the params are left as sent (an empty Raw when absent) for the method table to decode into the
    method's own params Struct (see perfd.daemon.methods.typed)."""

    jsonrpc: str
    method: str
    id: int | str | None | msgspec.UnsetType = msgspec.UNSET
    params: msgspec.Raw = msgspec.Raw()


class _LspParams(msgspec.Struct):
    version: str | None = None


_req_dec = msgspec.json.Decoder(_Req)
_lsp_params_dec = msgspec.json.Decoder(_LspParams)
_STRUCTURED = b"{[n"  # the first byte of params that are an object, an array or null (JSON-RPC: nothing else)


def structured(params: bytes) -> bool:
    """Whether params (as sent, b"" when absent) are absent, an object, an array or null, as JSON-RPC allows."""
    return not params or params[0] in _STRUCTURED


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What one daemon allows its clients ([daemon] settings, PERFD_* environment variables win)."""

    max_connections: int = 16384  # open at once (further kept under the open-file limit)
    idle_s: float = 300.0  # a connection with nothing in flight that sends nothing for this long is closed
    max_pending: int = 256  # requests in flight on one connection
    outbox_frames: int = 64  # answers and notifications queued on one connection
    # Bytes of frames not yet complete, all connections together: 10,000 clients each
    # sending 1 MiB less a byte would otherwise hold 10 GB. Past it, the connection
    # that adds to it is told TOO_BUSY and closed.
    max_buffered_mb: float = 256.0


def limits_for(settings: DaemonSettings, *, open_files: int) -> Limits:
    """Limits from the [daemon] settings in force (perfd.settings: validated, PERFD_* over the files),
    the cap kept under `open_files` less a reserve."""
    return Limits(max_connections=max(1, min(settings.max_connections, open_files - FD_RESERVE)),
                  idle_s=settings.connection_idle_s, max_pending=settings.max_pending,
                  outbox_frames=Limits().outbox_frames, max_buffered_mb=settings.max_buffered_mb)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard one (where allowed); the soft limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard if hard != resource.RLIM_INFINITY else 1 << 20, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return int(soft if soft != resource.RLIM_INFINITY else 1 << 20)


def error_body(id_: P.Id, code: int, message: str, data: ErrorData = None) -> bytes:
    try:  # a name that is not UTF-8 (a lone surrogate) is escaped, see perfd.safetext
        return encode_json(P.ErrorResponse(id=id_, error=P.ErrorObject(code, message, data)), _enc)
    except Exception:  # still an answer, in plain ASCII
        safe = message.encode("ascii", "backslashreplace").decode("ascii")
        return _enc.encode(P.ErrorResponse(id=id_ if isinstance(id_, (int, str)) else None,
                                           error=P.ErrorObject(code, safe)))


def lsp_upgrade(body: bytes) -> int | str | None:
    """The id of an `lsp` upgrade request of this version, or None for any other frame."""
    if b'"lsp"' not in body:
        return None
    try:
        req = _req_dec.decode(body)
    except _NOT_JSON:
        return None
    if req.method != "lsp" or req.id is None or req.id is msgspec.UNSET:
        return None
    params = bytes(req.params)
    if not structured(params):
        return None
    version = None
    if params[:1] == b"{":  # else no version given (absent, null, by position)
        try:
            version = _lsp_params_dec.decode(params).version
        except msgspec.ValidationError:  # a version that is not a string: cmd_lsp says why
            return None
    return req.id if version in (None, perfd.__version__) else None  # else cmd_lsp says why


def load_lsp() -> ServeLsp:
    from perfd.daemon.codecache import import_cached

    session = import_cached("perfd.lsp.session")  # attrs' generated code from the last start
    serve: ServeLsp = session.serve_lsp
    return serve


class Outbox:
    """One connection's outgoing frames: bounded, written in order by one pump task."""

    def __init__(self, stream: anyio.abc.SocketStream, size: int) -> None:
        self._stream = stream
        self._tx, self._rx = anyio.create_memory_object_stream[bytes](size)
        self._queued = 0  # frames queued and not yet written
        self._empty = anyio.Event()
        self._empty.set()
        self.scope: anyio.CancelScope | None = None  # the connection's, cancelled when a subscriber overflows
        self.overflowed = False

    def _queue(self) -> None:
        if self._queued == 0:
            self._empty = anyio.Event()
        self._queued += 1

    async def send(self, body: bytes) -> None:
        """Queue an answer, waiting while the outbox is full (a request in flight is the backpressure)."""
        data = frame(body)
        self._queue()
        try:
            await self._tx.send(data)
        except BaseException:
            self._written()
            raise

    async def post(self, body: bytes) -> None:
        """Queue a notification without waiting: a full outbox drops the connection (BrokenResourceError)."""
        data = frame(body)
        self._queue()
        try:
            self._tx.send_nowait(data)
        except anyio.WouldBlock:
            self._written()
            self.overflowed = True
            if self.scope is not None:
                self.scope.cancel()
            raise anyio.BrokenResourceError from None

    def _written(self) -> None:
        self._queued -= 1
        if self._queued == 0:
            self._empty.set()

    async def drain(self) -> None:
        """Until every queued frame is written (or dropped with the connection)."""
        await self._empty.wait()

    async def pump(self, scope: anyio.CancelScope) -> None:
        try:
            async with self._rx:
                async for data in self._rx:
                    try:
                        await self._stream.send(data)
                    finally:
                        self._written()
        except _CLOSED:
            scope.cancel()  # the client went away: stop reading and cancel its requests
        finally:
            self._queued = 0
            self._empty.set()


class _Pending:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class Connections:
    """Accepts and serves the daemon's socket connections.

    Given the method table and what serving needs of the daemon, never the daemon
    itself: who may connect, where latencies go, the subscribers' registry, the
    stop signal (a `shutdown` request) and how an editor's session is served.
    It keeps the count of open connections and the time of the last activity,
    which the daemon reads to decide when it is idle.
    """

    def __init__(self, methods: dict[str, Handler], *, peer_check: PeerCheck, stats: StatsSink,
                 subscribers: Subscribers, stop: StopSignal, serve_editor: ServeEditor,
                 limits: Limits | None = None) -> None:
        self.methods = methods
        self.peer_check = peer_check
        self.stats = stats
        self.subscribers = subscribers
        self.stop = stop
        self.serve_editor = serve_editor
        self.limits = limits or Limits()
        self.open = 0  # connections open (counted from accept, so the cap holds before their task runs)
        self.last_activity = time.monotonic()
        self.serve_lsp: ServeLsp | None = None  # perfd.lsp.session.serve_lsp, once loaded
        self.refused = 0  # over the cap, told so
        self.dropped = 0  # idle, or not reading their answers
        self.accept_backoffs = 0  # accept found no descriptor free
        self._last_backoff_log = 0.0
        self._big = anyio.Lock()  # paces big bodies, all connections together (BIG_BODY_RATE)
        self.buffered = 0  # bytes of incomplete frames, all connections together

    async def accept(self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        backoff = 0.0
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return  # the listener was closed: the daemon is stopping
                except OSError as exc:
                    # Out of descriptors (or memory): the client waits in the backlog while
                    # connections close; never a reason to stop serving the others.
                    backoff = min(1.0, backoff * 2 or 0.01)
                    self.accept_backoffs += 1
                    now = time.monotonic()
                    if now - self._last_backoff_log > 10:
                        self._last_backoff_log = now
                        log.warning("accept failed (%s) with %d connections open; backing off",
                                    errno.errorcode.get(exc.errno or 0, exc), self.open)
                    await anyio.sleep(backoff if exc.errno in _NO_DESCRIPTORS else 0.001)
                    continue
                backoff = 0.0
                if self.open >= self.limits.max_connections:
                    self.refused += 1
                    tg.start_soon(self.refuse, stream)
                    continue
                self.open += 1  # counted now, so the cap holds before the task runs
                tg.start_soon(self.connection, stream)

    async def refuse(self, stream: anyio.abc.SocketStream) -> None:
        """Over the cap: one error saying so, then close (never waiting long on this client)."""
        try:
            with anyio.move_on_after(0.5):
                await stream.send(frame(error_body(None, P.TOO_BUSY, "too many connections: the daemon serves "
                                                   f"its maximum of {self.limits.max_connections}")))
        except Exception:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def connection(self, stream: anyio.abc.SocketStream) -> None:
        cid = id(stream)
        self.last_activity = time.monotonic()
        try:
            await self._serve(stream, cid)
        except Exception:  # a bug in serving one connection ends that connection, never the daemon
            log.exception("serving a connection")
        finally:
            self.subscribers.drop(cid)
            self.open -= 1
            self.last_activity = time.monotonic()
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve(self, stream: anyio.abc.SocketStream, cid: int) -> None:
        try:
            peer = self.peer_check.read(stream.extra(SocketAttribute.raw_socket))
        except Exception as exc:  # whatever the kernel answers, only this connection is refused
            log.warning("refused a connection: its peer's credentials are unreadable (%s: %s)",
                        type(exc).__name__, exc)
            return
        if not peer_allowed(peer.uid):
            log.warning("refused a connection from uid %d (pid %s)", peer.uid, peer.pid or "unknown")
            return
        outbox = Outbox(stream, self.limits.outbox_frames)
        ctx = Context(cid=cid, send=outbox.send, post=outbox.post, drain=outbox.drain)
        dec = FrameDecoder()
        try:
            await self._read(stream, cid, ctx, outbox, dec)
        finally:
            self.buffered -= dec.pending

    async def _read(self, stream: anyio.abc.SocketStream, cid: int, ctx: Context, outbox: Outbox,
                    dec: FrameDecoder) -> None:
        limits = self.limits
        pending = _Pending()
        upgrade: tuple[int | str, bytes] | None = None
        max_buffered = int(limits.max_buffered_mb * 1048576)
        async with anyio.create_task_group() as tg:
            outbox.scope = tg.cancel_scope
            tg.start_soon(outbox.pump, tg.cancel_scope)
            while upgrade is None:
                data = b""
                with anyio.move_on_after(limits.idle_s):
                    try:
                        data = await stream.receive(65536)
                    except (anyio.EndOfStream, *_CLOSED):
                        break
                if not data:  # idle for idle_s
                    if pending.n == 0 and cid not in self.subscribers:
                        self.dropped += 1
                        log.info("closed a connection idle for %g s", limits.idle_s)
                        break
                    continue
                before = dec.pending
                try:
                    bodies = dec.feed(data)
                except FrameTooLarge as exc:
                    self.stats.record("(frame)", 0, error=True)
                    with anyio.move_on_after(1.0):
                        try:
                            await stream.send(frame(error_body(None, P.INVALID_REQUEST, str(exc))))
                        except _CLOSED:
                            pass
                    break
                finally:
                    self.buffered += dec.pending - before
                if dec.pending > BIG_BODY and self.buffered > max_buffered:
                    self.dropped += 1
                    log.warning("dropped a connection: %d MiB of incomplete frames held, all clients together",
                                self.buffered >> 20)
                    with anyio.move_on_after(1.0):
                        try:
                            await stream.send(frame(error_body(None, P.TOO_BUSY, "too busy: too many incomplete "
                                                               "frames held; try again")))
                        except _CLOSED:
                            pass
                    break
                over = False
                for i, body in enumerate(bodies):
                    self.last_activity = time.monotonic()
                    rid = lsp_upgrade(body)
                    if rid is not None:
                        # The connection leaves JSON-RPC framing and carries LSP
                        # from here on: whatever followed the request is LSP.
                        rest = dec.take_rest()
                        self.buffered -= len(rest)
                        upgrade = (rid, b"".join(frame(b) for b in bodies[i + 1:]) + rest)
                        break
                    if pending.n >= limits.max_pending:
                        over = True
                        break
                    if len(body) > BIG_BODY:
                        async with self._big:
                            await anyio.sleep(len(body) / BIG_BODY_RATE)
                    pending.n += 1
                    tg.start_soon(self.request, body, ctx, pending)
                if over:
                    self.dropped += 1
                    log.warning("dropped a connection with %d requests in flight (it does not read its answers)",
                                pending.n)
                    break
            # The client went away (or broke the framing, idled, overflowed), or upgraded: cancel its work.
            tg.cancel_scope.cancel()
        if outbox.overflowed:
            self.dropped += 1
            log.warning("dropped a subscriber that does not read its notifications")
        if upgrade is not None:
            send_lock = anyio.Lock()

            async def send(body: bytes) -> None:
                async with send_lock:
                    await stream.send(frame(body))

            await self.lsp(stream, send, *upgrade)

    async def request(self, body: bytes, ctx: Context, pending: _Pending | None = None) -> None:
        """One request, guarded: nothing it raises ends its connection or the daemon."""
        try:
            await self._request(body, ctx)
        except _CLOSED:
            pass  # the client left before its answer
        except Exception:
            log.exception("request failed outside its handler")
        finally:
            if pending is not None:
                pending.n -= 1

    async def _request(self, body: bytes, ctx: Context) -> None:
        t0 = time.perf_counter_ns()
        method = "(invalid)"
        rid: P.Id = None
        notification = False
        out: bytes
        failed = False
        handing_over = False  # SETTINGS_CHANGED answered: the daemon stops once it is out
        try:
            try:
                req = _req_dec.decode(body)
            except _NOT_JSON:
                try:
                    obj = msgspec.json.decode(body)
                except _NOT_JSON:
                    raise RpcError(P.PARSE_ERROR, "parse error: not JSON (UTF-8, nested at most "
                                                  "a few hundred levels)") from None
                if isinstance(obj, dict) and isinstance(obj.get("id"), (int, str)):
                    rid = obj["id"]
                raise RpcError(P.INVALID_REQUEST, "invalid request: not a JSON-RPC 2.0 request object") from None
            params = bytes(req.params)  # one copy, cheaper to look into than the Raw
            if not structured(params):  # a number, a string, true or false
                rid = req.id if isinstance(req.id, (int, str)) else None
                raise RpcError(P.INVALID_REQUEST, "invalid request: not a JSON-RPC 2.0 request object")
            if req.jsonrpc != "2.0":
                rid = req.id if req.id is not msgspec.UNSET else None
                raise RpcError(P.INVALID_REQUEST, "invalid request: jsonrpc must be \"2.0\"")
            notification = req.id is msgspec.UNSET
            rid = None if req.id is msgspec.UNSET else req.id
            handler = self.methods.get(req.method)
            if handler is None:
                method = "(unknown)"
                raise RpcError(P.METHOD_NOT_FOUND, f"method not found: {req.method}")
            method = req.method
            result = await handler(params, ctx)
            answer: msgspec.Struct | bytes = result
            if isinstance(result, Served):  # a command line: counted under its command, failed when non-zero
                method, failed, answer = result.command, result.failed, result.result
            out = answer if isinstance(answer, bytes) else encode_json(P.Response(id=rid, result=answer), _enc)
        except RpcError as exc:
            failed = True
            out = error_body(rid, exc.code, exc.message, exc.data)
            handing_over = exc.code == P.SETTINGS_CHANGED
        except UserError as exc:
            failed = True
            out = error_body(rid, P.USER_ERROR, exc.message,
                             P.UserErrorData(code=exc.code, hint=exc.hint, candidates=exc.candidates))
        except Exception as exc:  # a bug: answer and keep serving
            failed = True
            log.exception("internal error in %s", method)
            out = error_body(rid, P.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        if len(out) > MAX_FRAME:  # an answer (or an error echoing a huge name) that no frame can carry
            failed = True
            out = error_body(rid if isinstance(rid, (int, str)) and len(str(rid)) < 4096 else None,
                             P.INTERNAL_ERROR, f"the answer ({len(out)} bytes) exceeds a frame ({MAX_FRAME})")
        self.stats.record(method, time.perf_counter_ns() - t0, failed)
        if not notification:  # JSON-RPC: a notification is never answered, not even with an error
            await ctx.send(out)
        if (method == "shutdown" and not failed) or handing_over:
            if ctx.drain is not None:
                with anyio.move_on_after(1.0):  # the answer out first (bounded: a client that never reads)
                    await ctx.drain()
            self.stop.stop("shutdown requested" if not handing_over else "settings changed: a new daemon takes over")

    async def lsp(self, stream: anyio.abc.SocketStream, send: Callable[[bytes], Awaitable[None]], rid: int | str,
                  rest: bytes) -> None:
        """One editor's LSP session over this connection (see perfd.lsp.session)."""
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
        self.stats.record("lsp", time.perf_counter_ns() - t0, False)
        await self.serve_editor(serve_lsp, stream, rest)
