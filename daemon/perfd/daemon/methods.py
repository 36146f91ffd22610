"""The daemon's method table: one thin `cmd_<name>` per JSON-RPC method (see perfd.wire.protocol).

Each method checks its params, calls the engine or perfd.app, and returns a
protocol Struct; errors are RpcError (a JSON-RPC error) or UserError (the
engine's, answered as USER_ERROR). perfd.daemon.connections dispatches to
them and records their latency.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
import msgspec

import perfd
from perfd.engine.errors import UserError
from perfd.engine.types import GenerateResult, PlanStatus, WorkspaceStatus
from perfd.wire import protocol as P
from perfd.wire.ipc import raw_body

if TYPE_CHECKING:
    from perfd.daemon.server import Daemon

S = TypeVar("S", bound=msgspec.Struct)
Send = Callable[[bytes], Awaitable[None]]
_enc = msgspec.json.Encoder()


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Context(msgspec.Struct, frozen=True):
    """Where a request came from: its connection (for subscriptions and notifications)."""

    cid: int
    send: Send


Handler = Callable[[Any, Context], Awaitable[Any]]


def params_as(params: Any, kind: type[S]) -> S:
    """A request's params as `kind`; INVALID_PARAMS when they are not an object of that shape."""
    if isinstance(params, list):
        raise RpcError(P.INVALID_PARAMS, "params must be an object (by name)")
    try:
        return msgspec.convert(params or {}, kind)
    except msgspec.ValidationError as exc:
        raise RpcError(P.INVALID_PARAMS, f"invalid params: {exc}") from None


def check_version(version: str | None) -> None:
    if version is not None and version != perfd.__version__:
        raise RpcError(P.VERSION_MISMATCH, "version mismatch", {"daemon": perfd.__version__, "client": version})


class Methods:
    """The table of methods, over one daemon's engine, stats and shared model client."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def table(self) -> dict[str, Handler]:
        return {name[4:]: getattr(self, name) for name in dir(self) if name.startswith("cmd_")}

    async def cmd_initialize(self, params: Any, ctx: Context) -> P.InitializeResult:
        p = params_as(params, P.InitializeParams)
        return P.InitializeResult(version=perfd.__version__, compatible=p.version == perfd.__version__,
                                  pid=os.getpid(), root=self.d.root)

    async def cmd_lsp(self, params: Any, ctx: Context) -> Any:
        # Reached only when the upgrade was refused (see connections.lsp_upgrade): another version.
        raise RpcError(P.VERSION_MISMATCH, "version mismatch", {"daemon": perfd.__version__})

    async def cmd_ping(self, params: Any, ctx: Context) -> P.PingResult:
        return P.PingResult(pong=True, pid=os.getpid(), version=perfd.__version__, root=self.d.root,
                            uptime_s=self.d.stats.uptime())

    async def cmd_generate(self, params: Any, ctx: Context) -> GenerateResult:
        p = params_as(params, P.GenerateParams)
        return self.d.engine.generate(p.plan, achievement=p.achievement, cwd=p.cwd or self.d.root,
                                      trust_plan=p.trust_plan)

    async def cmd_status(self, params: Any, ctx: Context) -> WorkspaceStatus | PlanStatus:
        p = params_as(params, P.StatusParams)
        if p.plan is None:
            await self.d.warmed.wait()  # every plan: the warm-up is parsing them, on every core
            return self.d.engine.status()
        return self.d.engine.plan_status(p.plan, cwd=p.cwd or self.d.root, trust_plan=p.trust_plan)

    async def cmd_stats(self, params: Any, ctx: Context) -> P.StatsSnapshot:
        return self.d.snapshot()

    async def cmd_invalidate(self, params: Any, ctx: Context) -> P.InvalidateResult:
        p = params_as(params, P.InvalidateParams)
        root = self.d.root
        if p.path is not None:
            self.d.engine.workspace.check_inside(os.path.join(root, p.path), shown=p.path)
        return P.InvalidateResult(invalidated=self.d.engine.invalidate(
            None if p.path is None else os.path.join(root, p.path)))

    async def cmd_subscribe(self, params: Any, ctx: Context) -> P.SubscribeResult:
        self.d.subscribers[ctx.cid] = ctx.send
        return P.SubscribeResult(subscribed=True, watching=self.d.watching)

    async def cmd_shutdown(self, params: Any, ctx: Context) -> P.ShutdownResult:
        self.d.clear_state()  # before the answer: the next client starts afresh
        return P.ShutdownResult(stopping=True, pid=os.getpid())

    async def cmd_cli(self, params: Any, ctx: Context) -> P.CliResult | bytes:
        p = params_as(params, P.CliParams)
        check_version(p.version)
        from perfd.app.commands import run

        if not self.d.warmed.is_set() and wants_every_plan(p.argv):
            await self.d.warmed.wait()  # the warm-up is parsing every plan, on every core
        await anyio.lowlevel.checkpoint()
        out = run(p.argv, p.cwd, engine_for=self.d.engine_for, stats_for=lambda _root: self.d.snapshot(),
                  in_daemon=True)
        if p.raw:
            return raw_body(out.code, out.stdout, out.stderr)
        return P.CliResult(stdout=out.stdout, stderr=out.stderr, code=out.code)

    async def cmd_run(self, params: Any, ctx: Context) -> P.RunResult:
        """`perfd run` on the shared LLMClient: output as `runChunk` notifications, then the RunResult.

        The request is its own task: a client that disconnects cancels it, which
        closes the model's response and frees its connection.
        """
        p = params_as(params, P.RunParams)
        check_version(p.version)
        from perfd.app.commands import Output
        from perfd.app.run import prepare
        from perfd.app.run_render import execute
        from perfd.llm import LLMError

        tx, rx = anyio.create_memory_object_stream[tuple[Literal["out", "err"], str]](math.inf)
        out, err = _Sink(tx, "out"), _Sink(tx, "err")
        prepared = prepare(p.argv, p.cwd, engine_for=self.d.engine_for)
        if isinstance(prepared, Output):
            llm = None
            out.write(prepared.stdout)
            err.write(prepared.stderr)
            result = P.RunResult(code=prepared.code)
        else:
            try:
                llm = self.d.llm()
            except LLMError as exc:
                raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
            key = llm.config.api_key_env if llm is not None else None
            if llm is None or (key and not os.environ.get(key, "").strip()):
                raise RpcError(P.NO_MODEL, "the daemon's environment configures no model" if llm is None else
                               f"the daemon's environment has no {key}", {"api_key_env": key})
            result = P.RunResult(code=0)

        async def pump() -> None:
            async with rx:
                async for stream, text in rx:
                    body = _enc.encode(P.Notification(method="runChunk", params=P.RunChunk(text=text, stream=stream)))
                    try:
                        await ctx.send(body)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        pass  # the client left; its request is being cancelled

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            with tx:
                if llm is not None and not isinstance(prepared, Output):
                    request, engine = prepared
                    result = await execute(request, engine, llm, p.cwd, out=out, err=err, tty=p.tty)
        return result


def wants_every_plan(argv: list[str]) -> bool:
    """Whether a command line asks about every plan (`status` naming none), so waits for the warm-up."""
    return "status" in argv and not any(a.startswith("@") or a.endswith(".md") for a in argv)


class _Sink:
    """A text stream (write/flush) that queues its output for the `run` request's notifications."""

    def __init__(self, tx: MemoryObjectSendStream[tuple[Literal["out", "err"], str]],
                 stream: Literal["out", "err"]) -> None:
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
