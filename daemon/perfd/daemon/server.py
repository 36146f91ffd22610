"""The perfd daemon: one engine per workspace root, served over a Unix socket (JSON-RPC 2.0).

Life cycle: take an flock on <hash>.lock in the runtime folder (a second
daemon for the same root refuses to start), remove a stale socket (holding the
lock proves it is stale), bind the socket 0600 (folder 0700), write the pid
file, then serve until SIGTERM/SIGINT, `shutdown`, the idle timeout, or the
memory cap. State files (socket, pid file) are removed before the process
stops answering; the lock file stays (removing flock files races).

Every connection is its own task, and every request on it its own task: a
client that disconnects cancels its in-flight requests. Engine calls are
synchronous and short (a warm answer is a few stats), so they run on the
loop; `ping` never waits for anything. Peers are checked with SO_PEERCRED.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import logging.handlers
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import anyio.to_thread
import msgspec
from anyio.abc import SocketAttribute

import perfd
from perfd.daemon import heap
from perfd.wire import protocol as P
from perfd.wire.rendezvous import state_paths
from perfd.config import table
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.daemon.peer import peer_allowed, peer_credentials
from perfd.wire.ipc import FrameDecoder, FrameTooLarge, frame, raw_body
from perfd.daemon.stats import Stats, rss_bytes

log = logging.getLogger("perfd.daemon")
EXIT_ALREADY_RUNNING = 3
DEFAULT_IDLE_TIMEOUT_S = 1800.0

_enc = msgspec.json.Encoder()
_req_dec = msgspec.json.Decoder(P.Request)


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class AlreadyRunning(Exception):
    pass


def _params(params: Any, kind: type[Any]) -> Any:
    if isinstance(params, list):
        raise RpcError(P.INVALID_PARAMS, "params must be an object (by name)")
    try:
        return msgspec.convert(params or {}, kind)
    except msgspec.ValidationError as exc:
        raise RpcError(P.INVALID_PARAMS, f"invalid params: {exc}") from None


def _float_setting(env: str, cfg: dict[str, Any], key: str, default: float) -> float:
    raw = os.environ.get(env)
    value: Any = raw if raw not in (None, "") else cfg.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        log.warning("ignoring invalid %s=%r", key, value)
        return default


def error_body(id_: Any, code: int, message: str, data: Any = None) -> bytes:
    return _enc.encode(P.ErrorResponse(id=id_, error=P.ErrorObject(code, message, data)))


class Daemon:
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.paths = state_paths(self.root)
        self.engine = Engine(self.root)
        cfg = table(self.engine.config, "daemon")
        self.idle_timeout_s = _float_setting("PERFD_IDLE_TIMEOUT_S", cfg, "idle_timeout_s", DEFAULT_IDLE_TIMEOUT_S)
        self.max_rss_mb = _float_setting("PERFD_MAX_RSS_MB", cfg, "max_rss_mb", 0.0)
        self.stats = Stats()
        self.connections = 0
        self.subscribers: dict[int, Callable[[bytes], Awaitable[None]]] = {}
        self.lsp_sessions: set[Any] = set()  # perfd.lsp.server.Session, one per editor connection
        self.last_activity = time.monotonic()
        self.watching = False
        self.stop_reason = ""
        self._lock_fd = -1
        self._llm: Any = None  # perfd.llm.LLMClient shared by every client of this daemon (see llm())
        self._llm_loaded = False
        self._serve_lsp: Callable[..., Awaitable[None]] | None = None  # perfd.lsp.session.serve_lsp, once loaded
        self._tg: anyio.abc.TaskGroup | None = None
        self._stop_event: anyio.Event | None = None
        self._methods: dict[str, Callable[[Any, Any], Awaitable[Any]]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("cmd_")
        }

    # -- life cycle ----------------------------------------------------------------

    def acquire_lock(self) -> None:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.root) from None
        self._lock_fd = fd

    def clear_state(self) -> None:
        """Remove socket and pid file (we hold the lock, so they are ours)."""
        for path in (self.paths.sock, self.paths.pid):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _write_pid(self) -> None:
        tmp = self.paths.pid + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.paths.pid)

    async def run(self) -> None:
        self.acquire_lock()
        self.clear_state()  # a leftover of a daemon killed with -9
        old = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self.paths.sock)
        finally:
            os.umask(old)
        os.chmod(self.paths.sock, 0o600)
        self._write_pid()
        self._stop_event = anyio.Event()
        log.info("perfd %s daemon pid %d serving %s on %s (idle timeout %.0f s, rss cap %s MB)",
                 perfd.__version__, os.getpid(), self.root, self.paths.sock, self.idle_timeout_s,
                 self.max_rss_mb or "off")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._signals)
                tg.start_soon(self._housekeeping)
                tg.start_soon(self._watch)
                tg.start_soon(self._accept, listener)
        finally:
            self.clear_state()
            await self.close_llm()
            log.info("stopped (%s)", self.stop_reason or "cancelled")

    def stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
            log.info("stopping: %s", reason)
        self.clear_state()
        if self._stop_event is not None:
            self._stop_event.set()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            async for signum in sigs:
                self.stop(f"signal {signal.Signals(signum).name}")
                return

    async def _housekeeping(self) -> None:
        period = max(0.05, min(1.0, self.idle_timeout_s / 4))
        while True:
            await anyio.sleep(period)
            if self.connections == 0 and time.monotonic() - self.last_activity > self.idle_timeout_s:
                self.stop(f"idle for {self.idle_timeout_s:g} s")
                return
            if not os.path.isdir(self.root):
                self.stop("the workspace folder is gone")  # nothing left to serve
                return
            if self.max_rss_mb > 0 and rss_bytes() > self.max_rss_mb * 1048576:
                self.stop(f"rss {rss_bytes() / 1048576:.1f} MB over max_rss_mb {self.max_rss_mb:g}")
                return
            heap.settle_if_grown()  # after a lazy import (pygls, httpx): see perfd.daemon.heap

    async def _watch(self) -> None:
        from perfd.daemon.watcher import watch

        await watch(self)

    # -- connections ---------------------------------------------------------------

    async def _accept(self, listener: Any) -> None:
        assert self._tg is not None
        async with listener:
            while True:
                stream = await listener.accept()
                self._tg.start_soon(self._connection, stream)

    async def _connection(self, stream: Any) -> None:
        try:
            _pid, uid, _gid = peer_credentials(stream.extra(SocketAttribute.raw_socket))
        except OSError:
            uid = -1
        if not peer_allowed(uid):
            log.warning("refused a connection from uid %d", uid)
            await stream.aclose()
            return
        self.connections += 1
        self.last_activity = time.monotonic()
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
                    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        break
                    try:
                        bodies = dec.feed(data)
                    except FrameTooLarge as exc:
                        self.stats.record("(frame)", 0, error=True)
                        try:
                            await send(error_body(None, P.INVALID_REQUEST, str(exc)))
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            pass
                        break
                    for i, body in enumerate(bodies):
                        self.last_activity = time.monotonic()
                        rid = _lsp_upgrade(body)
                        if rid is not None:
                            # The connection leaves JSON-RPC framing and carries LSP
                            # from here on: whatever followed the request is LSP.
                            upgrade = (rid, b"".join(frame(b) for b in bodies[i + 1:]) + dec.take_rest())
                            break
                        tg.start_soon(self._request, body, send, cid)
                # The client went away (or broke the framing), or upgraded: cancel its work.
                tg.cancel_scope.cancel()
            if upgrade is not None:
                await self._lsp(stream, send, *upgrade)
        finally:
            self.subscribers.pop(cid, None)
            self.connections -= 1
            self.last_activity = time.monotonic()
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _request(self, body: bytes, send: Callable[[bytes], Awaitable[None]], cid: int) -> None:
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
            handler = self._methods.get(req.method)
            if handler is None:
                method = "(unknown)"
                raise RpcError(P.METHOD_NOT_FOUND, f"method not found: {req.method}")
            method = req.method
            result = await handler(req.params, {"cid": cid, "send": send})
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
        self.stats.record(method, time.perf_counter_ns() - t0, failed)
        if has_id or failed:
            try:
                await send(out)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
        if method == "shutdown" and not failed:
            self.stop("shutdown requested")

    async def _lsp(self, stream: Any, send: Callable[[bytes], Awaitable[None]], rid: Any, rest: bytes) -> None:
        """One editor's LSP session over this connection (see perfd.lsp.session)."""
        if self._serve_lsp is None:
            # The first session imports pygls and lsprotocol: 0.5 to 1 s of CPU (attrs builds
            # about 570 classes). On the loop that would stall every other client for as long,
            # among them the editor's own early `perfd stats`, sent while its session starts.
            # In a worker thread the loop keeps answering; the GIL switches every 5 ms. Two
            # sessions racing here import once: the second thread waits on import_cached's
            # lock. (Testing sys.modules instead would not do: the module is there while it is
            # still being imported, and the second session would wait for it on the loop.)
            self._serve_lsp = await anyio.to_thread.run_sync(_load_lsp)
        serve_lsp = self._serve_lsp
        t0 = time.perf_counter_ns()
        await send(_enc.encode(P.Response(id=rid, result={"lsp": True, "version": perfd.__version__})))
        self.stats.record("lsp", time.perf_counter_ns() - t0, False)
        await serve_lsp(stream, rest, self.engine, stats=self.lsp_stats, record=self.stats.record,
                        registry=self.lsp_sessions, llm=self.llm)

    def lsp_stats(self) -> dict[str, Any]:
        """The payload of perfd/stats: the daemon's shared stats, so every editor sees every client's effects."""
        snap = self.snapshot()
        out: dict[str, Any] = msgspec.to_builtins(snap)
        out["sessions"] = len(self.lsp_sessions)
        # {method: {p50_ms, p95_ms, p99_ms, ...}} for status bars, besides the list form.
        out["latency"] = {m.method: msgspec.to_builtins(m.latency) for m in snap.methods}
        return out

    def refresh_editors(self) -> None:
        for session in list(self.lsp_sessions):
            try:
                session.refresh()
            except Exception:
                log.exception("refreshing an editor session")

    # -- the shared model client ---------------------------------------------------------

    def llm(self) -> Any:
        """The workspace's LLMClient, created on first use from perfd.toml [llm] and the DAEMON's environment.

        One per daemon: every `perfd run` and editor session shares its connection
        pool, rate limit, breaker and response cache. None when no model is
        configured. API keys are read from the environment the daemon was
        started with, never from a client's.
        """
        if not self._llm_loaded:
            from perfd.llm import client_from_workspace

            self._llm = client_from_workspace(self.root)  # LLMConfigError propagates (retried next call)
            self._llm_loaded = True
        return self._llm

    async def close_llm(self) -> None:
        llm, self._llm, self._llm_loaded = self._llm, None, False
        if llm is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await llm.aclose()
                except Exception:
                    log.exception("closing the model client")

    # -- methods -----------------------------------------------------------------------

    def _engine_for(self, root: str) -> Engine:
        return self.engine if os.path.realpath(root) == self.root else Engine(root)

    async def cmd_initialize(self, params: Any, ctx: Any) -> P.InitializeResult:
        p = _params(params, P.InitializeParams)
        return P.InitializeResult(version=perfd.__version__, compatible=p.version == perfd.__version__,
                                  pid=os.getpid(), root=self.root)

    async def cmd_lsp(self, params: Any, ctx: Any) -> Any:
        # Reached only when the upgrade was refused (see _lsp_upgrade): another version.
        raise RpcError(P.VERSION_MISMATCH, "version mismatch", {"daemon": perfd.__version__})

    async def cmd_ping(self, params: Any, ctx: Any) -> P.PingResult:
        return P.PingResult(pong=True, pid=os.getpid(), version=perfd.__version__, root=self.root,
                            uptime_s=self.stats.uptime())

    async def cmd_generate(self, params: Any, ctx: Any) -> Any:
        p = _params(params, P.GenerateParams)
        return self.engine.generate(p.plan, achievement=p.achievement, cwd=p.cwd or self.root,
                                    trust_plan=p.trust_plan)

    async def cmd_status(self, params: Any, ctx: Any) -> Any:
        p = _params(params, P.StatusParams)
        if p.plan is None:
            return self.engine.status()
        return self.engine.plan_status(p.plan, cwd=p.cwd or self.root, trust_plan=p.trust_plan)

    async def cmd_stats(self, params: Any, ctx: Any) -> P.StatsSnapshot:
        return self.snapshot()

    def snapshot(self) -> P.StatsSnapshot:
        return P.StatsSnapshot(
            version=perfd.__version__, pid=os.getpid(), root=self.root, uptime_s=self.stats.uptime(),
            rss_bytes=rss_bytes(), connections=self.connections, subscribers=len(self.subscribers),
            watcher_events=self.stats.watcher_events, watcher_batches=self.stats.watcher_batches,
            cache=self.engine.cache.stats(), memo_hits=self.engine.memo_hits, methods=self.stats.method_stats(),
            llm=self._llm.stats() if self._llm is not None else None)

    async def cmd_invalidate(self, params: Any, ctx: Any) -> P.InvalidateResult:
        p = _params(params, P.InvalidateParams)
        if p.path is not None:
            self.engine.workspace.check_inside(os.path.join(self.root, p.path), shown=p.path)
        return P.InvalidateResult(invalidated=self.engine.invalidate(
            None if p.path is None else os.path.join(self.root, p.path)))

    async def cmd_subscribe(self, params: Any, ctx: Any) -> P.SubscribeResult:
        self.subscribers[ctx["cid"]] = ctx["send"]
        return P.SubscribeResult(subscribed=True, watching=self.watching)

    async def cmd_shutdown(self, params: Any, ctx: Any) -> P.ShutdownResult:
        self.clear_state()  # before the answer: the next client starts afresh
        return P.ShutdownResult(stopping=True, pid=os.getpid())

    async def cmd_cli(self, params: Any, ctx: Any) -> Any:
        p = _params(params, P.CliParams)
        if p.version is not None and p.version != perfd.__version__:
            raise RpcError(P.VERSION_MISMATCH, "version mismatch",
                           {"daemon": perfd.__version__, "client": p.version})
        from perfd.app.commands import run

        await anyio.lowlevel.checkpoint()
        out = run(p.argv, p.cwd, engine_for=self._engine_for, stats_for=lambda _root: self.snapshot(),
                  in_daemon=True)
        if p.raw:
            return raw_body(out.code, out.stdout, out.stderr)
        return P.CliResult(stdout=out.stdout, stderr=out.stderr, code=out.code)

    async def cmd_run(self, params: Any, ctx: Any) -> P.RunResult:
        """`perfd run` on the shared LLMClient: output as `runChunk` notifications, then the RunResult.

        The request is its own task: a client that disconnects cancels it, which
        closes the model's response and frees its connection.
        """
        p = _params(params, P.RunParams)
        if p.version is not None and p.version != perfd.__version__:
            raise RpcError(P.VERSION_MISMATCH, "version mismatch",
                           {"daemon": perfd.__version__, "client": p.version})
        from perfd.app.run import prepare
        from perfd.app.run_render import execute
        from perfd.llm import LLMError

        send = ctx["send"]
        tx, rx = anyio.create_memory_object_stream[tuple[Literal["out", "err"], str]](math.inf)
        out, err = _Sink(tx, "out"), _Sink(tx, "err")
        prepared = prepare(p.argv, p.cwd, engine_for=self._engine_for)
        if not isinstance(prepared, tuple):
            out.write(prepared.stdout)
            err.write(prepared.stderr)
            llm = None
        else:
            try:
                llm = self.llm()
            except LLMError as exc:
                raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
            key = llm.config.api_key_env if llm is not None else None
            if llm is None or (key and not os.environ.get(key, "").strip()):
                raise RpcError(P.NO_MODEL, "the daemon's environment configures no model" if llm is None else
                               f"the daemon's environment has no {key}", {"api_key_env": key})

        async def pump() -> None:
            async with rx:
                async for stream, text in rx:
                    body = _enc.encode(P.Notification(method="runChunk", params=P.RunChunk(text=text, stream=stream)))
                    try:
                        await send(body)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass  # the client left; its request is being cancelled

        result = P.RunResult(code=0 if isinstance(prepared, tuple) else prepared.code)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            with tx:
                if isinstance(prepared, tuple) and llm is not None:
                    request, engine = prepared
                    result = await execute(request, engine, llm, p.cwd, out=out, err=err, tty=p.tty)
        return result

    async def notify(self, method: str, params: Any) -> None:
        if not self.subscribers:
            return
        body = _enc.encode(P.Notification(method=method, params=params))
        for cid, send in list(self.subscribers.items()):
            try:
                await send(body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self.subscribers.pop(cid, None)


class _Sink:
    """A text stream (write/flush) that queues its output for the `run` request's notifications."""

    def __init__(self, tx: Any, stream: Literal["out", "err"]) -> None:
        self._tx = tx
        self._stream = stream

    def write(self, text: str) -> int:
        if text:
            try:
                self._tx.send_nowait((self._stream, text))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        return len(text)

    def flush(self) -> None:
        pass


def _load_lsp() -> Callable[..., Awaitable[None]]:
    from perfd.daemon.codecache import import_cached

    session = import_cached("perfd.lsp.session")  # attrs' generated code from the last start
    return session.serve_lsp  # type: ignore[no-any-return]


def _lsp_upgrade(body: bytes) -> Any:
    """The id of an `lsp` upgrade request, or None for any other frame."""
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


def setup_logging(path: str) -> None:
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s pid %(process)d %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(root: str) -> int:
    """Serve `root` in this process until stopped; exit code 3 when a daemon already serves it."""
    os.umask(0o077)  # logs, pid file and socket stay private
    d = Daemon(root)
    setup_logging(d.paths.log)
    try:
        anyio.run(d.run)
    except AlreadyRunning:
        pid = ""
        try:
            with open(d.paths.pid) as f:
                pid = f.read().strip()
        except OSError:
            pass
        sys.stderr.write(f"perfd: a daemon already serves {d.root}" + (f" (pid {pid})" if pid else "") + "\n")
        return EXIT_ALREADY_RUNNING
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.ENAMETOOLONG, errno.EACCES):
            sys.stderr.write(f"perfd: cannot serve on {d.paths.sock}: {exc}\n")
            log.error("cannot bind %s: %s", d.paths.sock, exc)
            return 1
        raise
    return 0
