"""The daemon's method table: one thin `cmd_<name>` per JSON-RPC method (see perfd.wire.protocol).

The table decodes a request's params into the method's params Struct (from
perfd.wire.protocol; INVALID_PARAMS with one line saying what is wrong when
they are not that) and calls the typed handler, `cmd_x(params, ctx)`, or
`cmd_x(ctx)` for a method without params. A handler calls the engine or
perfd.app and returns a protocol Struct; errors are RpcError (a JSON-RPC
error) or UserError (the engine's, answered as USER_ERROR).
perfd.daemon.connections dispatches to the table and records the latency.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
import msgspec

import perfd
from perfd import exitcodes
from perfd.daemon.host import ModelSource, Send, StatsSource, StopSignal, Subscribers, WarmSignals
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import GenerateResult, PlanStatus, WorkspaceStatus
from perfd.llm.errors import LLMError
from perfd.safetext import encode_json, shown
from perfd.settings.live import LiveSettings
from perfd.settings.resolve import Settings
from perfd.settings.sources import SettingsError
from perfd.wire import protocol as P
from perfd.wire.ipc import MAX_FRAME, raw_body

if TYPE_CHECKING:
    from perfd.app.commands import Output

S = TypeVar("S", bound=msgspec.Struct)
# A run's output goes out in runChunk notifications of at most this many characters: at
# most 6 bytes each once JSON-escaped (\u001b), so a piece always fits a frame (1 MiB).
CHUNK_CHARS = 128 * 1024
# A command line of more arguments is parsed in a worker process (see parse_heavy):
# argparse's time grows with the square of their count (64 repeated options: about
# 1 ms), and only linearly with their length (1 MiB in 256 arguments: about 0.6 ms).
HEAVY_ARGS = 64


def heavy_argv(argv: list[str]) -> bool:
    return len(argv) > HEAVY_ARGS


def parse_niced(argv: list[str]) -> argparse.Namespace | Output:
    """parse(argv) in the worker process, which first lowers its own priority (once): on a
    busy machine the cores go to the daemon's loop, which serves everyone, before this
    command line, which is only its sender's."""
    from perfd.app.commands import parse

    global _NICED
    if not _NICED:
        _NICED = True
        try:
            os.nice(19)
        except OSError:
            pass
        # Linux: SCHED_IDLE runs it only on a core nothing else wants (nice 19 still takes a
        # share from the loop's own core); elsewhere nice is what there is.
        idle = getattr(os, "SCHED_IDLE", None)
        if idle is not None and hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(0, idle, os.sched_param(0))
            except OSError:
                pass
    return parse(argv)


_NICED = False
_enc = msgspec.json.Encoder()
log = logging.getLogger("perfd.daemon")


# What an error carries beside its code and message (ErrorObject.data): a Struct, or a few names.
ErrorData = msgspec.Struct | dict[str, str | None] | None


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: ErrorData = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Context(msgspec.Struct, frozen=True):
    """Where a request came from: its connection (for subscriptions and notifications).

    `send` queues a frame and waits while the connection's outbox is full (an
    answer, a run's chunks); `post` never waits: a connection that does not read
    its notifications is dropped instead (see perfd.daemon.connections).
    """

    cid: int
    send: Send
    post: Send
    # Waits (bounded by the caller) until every queued frame is written: `shutdown` answers
    # before the daemon stops, rather than with a queued answer cancelled with everything else.
    drain: Callable[[], Awaitable[None]] | None = None


class Served(msgspec.Struct, frozen=True):
    """A command line's answer, to be counted under its command (`generate`, `run`, ...) rather than
    under the `cli` method; failed when it exited non-zero: one error rule for every command."""

    result: P.CliResult | P.RunResult | bytes  # bytes: the raw body (perfd.wire.ipc)
    command: str
    failed: bool


# A method as the table holds it: the request's params as sent (JSON: an object, an array or null; b""
# when absent), decoded by the table entry itself, and its answer (a protocol Struct, or Served for a
# command line).
Handler = Callable[[bytes, Context], Awaitable[msgspec.Struct]]


def params_as(body: bytes, decoder: msgspec.json.Decoder[S]) -> S:
    """A request's params decoded as the decoder's Struct; INVALID_PARAMS when they are not an object of that shape."""
    if not body or body == b"null":
        body = b"{}"  # none given: every field takes its default (or is missing)
    elif body[0] == 0x5B:  # [
        raise RpcError(P.INVALID_PARAMS, "params must be an object (by name)")
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError: a field of the wrong type, unknown or missing
        raise RpcError(P.INVALID_PARAMS, f"invalid params: {exc}") from None


def typed(kind: type[S], handler: Callable[[S, Context], Awaitable[msgspec.Struct]]) -> Handler:
    """`handler` as the table calls it: the params decoded as `kind` first."""
    decoder = msgspec.json.Decoder(kind)

    async def call(params: bytes, ctx: Context) -> msgspec.Struct:
        return await handler(params_as(params, decoder), ctx)

    return call


def bare(handler: Callable[[Context], Awaitable[msgspec.Struct]]) -> Handler:
    """A method without params as the table calls it: whatever params were sent are not read."""

    async def call(params: bytes, ctx: Context) -> msgspec.Struct:
        return await handler(ctx)

    return call


def check_version(version: str | None) -> None:
    if version is not None and version != perfd.__version__:
        raise RpcError(P.VERSION_MISMATCH, "version mismatch", {"daemon": perfd.__version__, "client": version})


# The tables that shape the daemon itself (its engine, its limits): a change needs a new daemon.
SHAPING = ("workspace", "cache", "daemon")
# The tables that shape answers: a caller whose PERFD_* change them is answered in its own process.
ANSWERS = ("workspace", "cache")


class Methods:
    """The table of methods, over one daemon's engine, stats and shared model client.

    Given what the methods use, never the daemon: its root and engine, its stats,
    the subscribers' registry, the warm-up's signals, its stop signal (`shutdown`),
    its model client and whether its watcher runs.
    """

    def __init__(self, root: str, engine: Engine, *, stats: StatsSource, subscribers: Subscribers,
                 warm: WarmSignals, stop: StopSignal, llm: ModelSource, watching: Callable[[], bool],
                 settings: LiveSettings | None = None, started_settings: str | None = None) -> None:
        self.root = root
        self.settings = settings if settings is not None else LiveSettings(root)
        if started_settings is None:  # the settings in force now are the ones this table starts with
            try:
                own = self.settings.current()
                started_settings = self.settings.fingerprint(own, *SHAPING)
            except SettingsError:
                started_settings = ""
        self.started_settings = started_settings  # the fingerprint of the SHAPING tables the daemon started with
        self.engine = engine
        self.stats = stats
        self.subscribers = subscribers
        self.warm = warm
        self.stop = stop
        self.llm = llm
        self.watching = watching
        self._heavy = anyio.CapacityLimiter(1)  # one heavy parse at a time, in one worker process
        self._heavy_turn = anyio.Lock()

    async def parse_heavy(self, argv: list[str]) -> argparse.Namespace | Output | None:
        """parse(argv) in a worker process when the command line is long, else None (the caller parses).

        argparse's time grows with the square of the argument count (256 repeated
        options: about 15 ms). On the loop that would stall every client; in a
        thread too, as the loop would wait for the GIL. A worker process (one, kept
        warm by anyio) parses while the loop serves; engine work stays on the loop.
        """
        if not heavy_argv(argv):
            return None
        import anyio.to_process  # only for such command lines: pickle, subprocess
        import anyio.to_thread

        from perfd.app.commands import parse

        async with self._heavy_turn:
            t0 = time.monotonic()
            try:
                got: argparse.Namespace | Output = await anyio.to_process.run_sync(parse_niced, argv,
                                                                                    limiter=self._heavy)
            except (OSError, anyio.BrokenWorkerProcess):  # no worker could start: in a thread, off the loop
                log.warning("no worker process for a long command line; parsing it in a thread")
                got = await anyio.to_thread.run_sync(parse, argv, limiter=self._heavy)
            # Rest three times as long as it worked before the next one: such command lines
            # (only an attacker sends them) get at most a quarter of one core; the rest
            # stays everyone's.
            await anyio.sleep(min(1.0, 3 * (time.monotonic() - t0)))
        return got

    def request_settings(self, variables: Mapping[str, str] | None) -> Settings:
        """The settings a request is answered with, checked before it is: SettingsError when unusable (the
        caller answers it, exit 1, as in-process); SETTINGS_CHANGED when what shapes this daemon changed
        since it started (it stops once this is answered, and the client asks a new one: no request is
        lost); SETTINGS_DIFFER when the caller's PERFD_* give other [workspace] or [cache] settings (that
        call is worked in the client's process, and this daemon goes on serving everyone else)."""
        own, theirs = self.settings.both(variables)
        if self.settings.fingerprint(own, *SHAPING) != self.started_settings:
            self.stop.clear_state()  # the next client starts a new daemon, with the new settings
            raise RpcError(P.SETTINGS_CHANGED, "the workspace's settings changed since this daemon started")
        if theirs is not own and self.settings.fingerprint(theirs, *ANSWERS) != self.settings.fingerprint(own, *ANSWERS):
            raise RpcError(P.SETTINGS_DIFFER, "your PERFD_* settings give other [workspace] or [cache] settings "
                                              "than this daemon's")
        return theirs

    def engine_for(self, root: str) -> Engine:
        """The daemon's engine, for a command line about its own root only (see own_root)."""
        self.own_root(root)
        return self.engine

    def stats_for(self, root: str) -> P.StatsSnapshot:
        self.own_root(root)
        return self.stats.snapshot()

    def own_root(self, root: str) -> None:
        """UserError (exit 1) for a root other than this daemon's: another root has a daemon of its own
        (its socket is found from that root), and a cold engine built here would answer slowly and
        be thrown away."""
        if os.path.realpath(root) != self.root:
            raise UserError(f"this daemon serves {self.root}, not {root}", code="foreign-root")

    def table(self) -> dict[str, Handler]:
        """Every method by name, its params decoded into its Struct of perfd.wire.protocol before it runs."""
        return {
            "initialize": typed(P.InitializeParams, self.cmd_initialize),
            "lsp": bare(self.cmd_lsp),
            "ping": bare(self.cmd_ping),
            "generate": typed(P.GenerateParams, self.cmd_generate),
            "status": typed(P.StatusParams, self.cmd_status),
            "stats": bare(self.cmd_stats),
            "invalidate": typed(P.InvalidateParams, self.cmd_invalidate),
            "names": typed(P.NamesParams, self.cmd_names),
            "subscribe": bare(self.cmd_subscribe),
            "shutdown": bare(self.cmd_shutdown),
            "cli": typed(P.CliParams, self.cmd_cli),
            "run": typed(P.RunParams, self.cmd_run),
        }

    async def cmd_initialize(self, p: P.InitializeParams, ctx: Context) -> P.InitializeResult:
        return P.InitializeResult(version=perfd.__version__, compatible=p.version == perfd.__version__,
                                  pid=os.getpid(), root=self.root)

    async def cmd_lsp(self, ctx: Context) -> NoReturn:
        # Reached only when the upgrade was refused (see connections.lsp_upgrade): another version.
        raise RpcError(P.VERSION_MISMATCH, "version mismatch", {"daemon": perfd.__version__})

    async def cmd_ping(self, ctx: Context) -> P.PingResult:
        ping = P.PingResult(pong=True, pid=os.getpid(), version=perfd.__version__, root=self.root,
                            uptime_s=self.stats.uptime())
        try:
            s = self.settings.current()
        except SettingsError as exc:
            ping.settings_error = str(exc)
            return ping
        ping.plans_dir, ping.settings, ping.waiting_for_trust = s.workspace.plans_dir, s.fingerprint(), list(s.waiting)
        try:
            llm = self.llm()
        except LLMError as exc:
            ping.settings_error = str(exc)
        else:
            if llm is not None:
                ping.model, ping.model_host = llm.config.model, urlsplit(llm.config.base_url).netloc
        return ping

    async def cmd_generate(self, p: P.GenerateParams, ctx: Context) -> GenerateResult:
        with self.engine.synced(p.sync):
            return self.engine.generate(p.plan, achievement=p.achievement, cwd=p.cwd or self.root,
                                        trust_plan=p.trust_plan)

    async def cmd_status(self, p: P.StatusParams, ctx: Context) -> WorkspaceStatus | PlanStatus:
        if p.plan is None:
            asked_at = time.monotonic()
            async with self.warm.waiting():  # every plan: the warm-up is parsing them, on every core
                with self.engine.answering(asked_at), self.engine.synced(p.sync):
                    return self.engine.status()
        with self.engine.synced(p.sync):
            return self.engine.plan_status(p.plan, cwd=p.cwd or self.root, trust_plan=p.trust_plan)

    async def cmd_stats(self, ctx: Context) -> P.StatsSnapshot:
        await self.stats.refresh_team()
        return self.stats.snapshot()

    async def cmd_names(self, p: P.NamesParams, ctx: Context) -> P.NamesResult:
        """Every plan's name, or a plan's achievement numbers: shell completion's words, taken from the
        memoised status (or the plan's), without sending the whole of it."""
        try:
            self.request_settings(p.env)
        except SettingsError:
            return P.NamesResult()  # (in-process it would fail too: nothing to offer)
        if p.plan is None:
            asked_at = time.monotonic()
            async with self.warm.waiting():  # as `status`: every plan
                with self.engine.answering(asked_at), self.engine.synced(p.sync):
                    return P.NamesResult(plans=[s.plan for s in self.engine.status().plans])
        with self.engine.synced(p.sync):
            st = self.engine.plan_status(p.plan, cwd=p.cwd or self.root)
        return P.NamesResult(achievements=[a.number for a in st.achievements])

    async def cmd_invalidate(self, p: P.InvalidateParams, ctx: Context) -> P.InvalidateResult:
        root = self.root
        if p.path is not None:
            self.engine.workspace.check_inside(os.path.join(root, p.path), shown=p.path)
        return P.InvalidateResult(invalidated=self.engine.invalidate(
            None if p.path is None else os.path.join(root, p.path)))

    async def cmd_subscribe(self, ctx: Context) -> P.SubscribeResult:
        self.subscribers.add(ctx.cid, ctx.post)
        return P.SubscribeResult(subscribed=True, watching=self.watching())

    async def cmd_shutdown(self, ctx: Context) -> P.ShutdownResult:
        self.stop.clear_state()  # before the answer: the next client starts afresh
        return P.ShutdownResult(stopping=True, pid=os.getpid())

    async def cmd_cli(self, p: P.CliParams, ctx: Context) -> Served:
        """A command line, in the root the client found (p.root: used as is, refused when not this daemon's)."""
        check_version(p.version)
        from perfd.app.commands import Output, run, user_error_output

        if p.root is not None:
            try:
                self.own_root(p.root)
            except UserError as exc:
                return cli_answer(user_error_output(exc), p.raw)
        try:
            self.request_settings(p.env)
        except SettingsError as exc:  # as in-process: one line, exit 1 (the daemon serves on; a fix is seen next)
            return cli_answer(Output(stderr=f"perfd: {shown(str(exc))}\n", code=exitcodes.ERROR,
                                     command=p.argv[0] if p.argv else ""), p.raw)
        asked_at = time.monotonic()
        async with self.warm.waiting(wants_every_plan(p.argv)):  # the warm-up is parsing every plan, on every core
            parsed = await self.parse_heavy(p.argv)
            await anyio.lowlevel.checkpoint()
            if p.argv[:1] == ["stats"]:
                await self.stats.refresh_team()
            with self.engine.answering(asked_at):
                out = run(p.argv, p.cwd, engine_for=self.engine_for, stats_for=self.stats_for, in_daemon=True,
                          parsed=parsed, root=p.root)
        return cli_answer(out, p.raw)

    async def cmd_run(self, p: P.RunParams, ctx: Context) -> Served:
        """`perfd run` on the shared LLMClient: output as `runChunk` notifications, then the RunResult.

        The request is its own task: a client that disconnects cancels it, which
        closes the model's response and frees its connection.
        """
        check_version(p.version)
        from perfd.app.commands import Output
        from perfd.app.run import NoModel, open_client, prepare, require_key
        from perfd.app.run_render import execute, settle

        try:
            self.request_settings(p.env)
        except SettingsError as exc:
            raise UserError(shown(str(exc)), code="settings", hint="") from None  # printed as is by the run client
        prepared = prepare(p.argv, p.cwd, engine_for=self.engine_for, parsed=await self.parse_heavy(p.argv),
                           root=p.root)  # engine_for refuses a root other than this daemon's, in one line
        llm = None
        settled: list[GenerateResult] | None = None
        if not isinstance(prepared, Output):
            early_out, early_err = io.StringIO(), io.StringIO()  # nothing to do, or refused: no model needed
            got = settle(prepared[0], prepared[1], p.cwd, out=early_out, err=early_err)
            if isinstance(got, int):
                prepared = Output(stdout=early_out.getvalue(), stderr=early_err.getvalue(), code=got)
            else:
                settled = got
        if not isinstance(prepared, Output):
            try:
                llm = open_client(lambda: self.llm(p.env, model=prepared[0].model))
                if not prepared[0].dry_run:  # a dry run sends nothing: it needs no key
                    require_key(llm)
            except NoModel as exc:  # the client may have what the daemon lacks: it runs the request itself
                key = exc.api_key_env
                raise RpcError(P.NO_MODEL, f"the daemon's environment has no {key}" if key else
                               "the daemon's environment configures no model", {"api_key_env": key}) from None
            except UserError as exc:
                raise UserError(shown(exc.message), code=exc.code, hint=exc.hint) from None
        # Created only once the run is accepted: nothing is left unclosed when it is refused above.
        tx, rx = anyio.create_memory_object_stream[tuple[Literal["out", "err"], str]](math.inf)
        out, err = _Sink(tx, "out"), _Sink(tx, "err")
        result = P.RunResult(code=prepared.code if isinstance(prepared, Output) else 0)

        async def pump() -> None:
            async with rx:
                async for stream, text in rx:
                    # A chunk of any size: in pieces that each fit a frame however JSON escapes them.
                    for i in range(0, len(text), CHUNK_CHARS):
                        body = encode_json(P.Notification(method="runChunk", params=P.RunChunk(
                            text=text[i:i + CHUNK_CHARS], stream=stream)), _enc)
                        try:
                            await ctx.send(body)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            pass  # the client left; its request is being cancelled

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            with tx:
                if isinstance(prepared, Output):
                    out.write(prepared.stdout)
                    err.write(prepared.stderr)
                elif llm is not None:
                    request, engine = prepared
                    result = await execute(request, engine, llm, p.cwd, out=out, err=err, tty=p.tty, results=settled)
        result = fit_run_result(result)
        return Served(result=result, command="run", failed=result.code != 0)


def cli_answer(out: Output, raw: bool) -> Served:
    """A command line's Output as the `cli` method answers it: the raw body (perfd.wire.ipc) or a CliResult."""
    result: P.CliResult | bytes = (raw_body(out.code, out.stdout, out.stderr) if raw else
                                   P.CliResult(stdout=out.stdout, stderr=out.stderr, code=out.code))
    return Served(result=result, command=out.command or "cli", failed=out.code != 0)


def fit_run_result(result: P.RunResult) -> P.RunResult:
    """`result`, its answers' text left out when they would not fit one frame.

    The text has gone out already, in runChunk notifications of any total size;
    the result that ends the run must still fit a frame, or a run the daemon
    completed (the model paid) would end in an error.
    """
    if sum(len(a.text) for a in result.answers) * 6 + 65536 <= MAX_FRAME:  # 6: the worst JSON escape
        return result
    return msgspec.structs.replace(result, answers=[msgspec.structs.replace(a, text="") for a in result.answers])


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
