"""The perfd.* commands and code actions of a language-server session (generate, status, stats,
run, createSubplan, openFile, writeAnswer, clearCache), registered on its server by build_server.

Each command is a thin call into perfd.app or the engine; a failure is answered in one line
(CommandFailed), never with a Python traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from perfd.app.run import RunOptions, run_one, write_answer
from perfd.app.scaffold import create_subplan
from perfd.engine.errors import UserError
from perfd.lsp import features as F
from perfd.lsp.run import ProgressReporter

if TYPE_CHECKING:
    from perfd.lsp.state import Session

log = logging.getLogger("perfd.lsp")
_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _to_builtins(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(obj)
    return out


def register_commands(s: Session) -> None:
    """Register the session's perfd.* commands and code actions (moved from build_server, unchanged)."""
    server = s.server
    engine = s.engine

    def _plan_arg(args: tuple[Any, ...]) -> str:
        if not args or not isinstance(args[0], str):
            raise UserError("expected a plan (@NAME, path or file URI) as the first argument", code="bad-params")
        ref = args[0]
        if ref.startswith("file://"):
            from pygls.uris import to_fs_path

            ref = to_fs_path(ref) or ref
        return ref

    @server.command("perfd.generateNext")
    @_clear_errors
    def cmd_generate_next(*args: Any) -> dict[str, Any]:
        r = engine.generate(_plan_arg(args))
        return _to_builtins(r)

    @server.command("perfd.generate")
    @_clear_errors
    def cmd_generate(*args: Any) -> dict[str, Any]:
        number = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        return _to_builtins(engine.generate(_plan_arg(args), achievement=number))

    @server.command("perfd.status")
    @_clear_errors
    def cmd_status(*args: Any) -> dict[str, Any]:
        if args:
            return _to_builtins(engine.plan_status(_plan_arg(args)))
        return _to_builtins(engine.status())

    @server.command("perfd.stats")
    @_clear_errors
    def cmd_stats(*args: Any) -> dict[str, Any]:
        return _to_builtins(s.stats())

    @server.command("perfd.clearCache")
    @_clear_errors
    def cmd_clear(*args: Any) -> dict[str, Any]:
        n = engine.invalidate()
        s.refresh()
        return {"cleared": n}

    @server.feature(lsp.SHUTDOWN)
    async def shutdown(*args: Any) -> None:
        await s.drop_llm()

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, F.ACTION_KIND]))
    def code_action(params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        def run() -> list[lsp.CodeAction]:
            uri = params.text_document.uri
            got = s.plan_status(uri)
            if got is None or got[1] is None:  # actions live in PLAN files
                return []
            actions = F.code_actions(got[0], got[1], s.lines(uri), params.range, params.context.diagnostics, uri)
            only = params.context.only
            if only:
                actions = [a for a in actions if any(str(a.kind or "").startswith(str(k)) for k in only)]
            return actions

        return s.timed("codeAction", run)  # type: ignore[no-any-return]

    async def show(path: str) -> bool:
        """Ask the client to open `path` (window/showDocument), when it can; whether it did."""
        caps = server.client_capabilities
        window = caps.window if caps else None
        if not (window and window.show_document and window.show_document.support):
            return False
        try:
            got = await server.window_show_document_async(
                lsp.ShowDocumentParams(uri=F.path_to_uri(path), take_focus=True))
        except Exception:  # the client refused or went away: the file is there all the same
            log.debug("showDocument failed", exc_info=True)
            return False
        return bool(got and got.success)

    @server.command("perfd.createSubplan")
    async def cmd_create_subplan(*args: Any) -> dict[str, Any]:
        """Write the SUBPLAN scaffold of (plan, N.N) and open it; never over an existing file."""
        if len(args) < 2 or not isinstance(args[1], str):
            raise UserError("expected a plan and an achievement number", code="bad-params")
        path = create_subplan(engine, _plan_arg(args), args[1])
        s.refresh([path])
        return {"path": path, "shown": await show(path)}

    @server.command("perfd.openFile")
    async def cmd_open_file(*args: Any) -> dict[str, Any]:
        """Open a file of the workspace in the client (the code actions' "Open FIX for N.N")."""
        if not args or not isinstance(args[0], str):
            raise UserError("expected a file path", code="bad-params")
        path = engine.workspace.check_inside(_plan_arg(args))
        if not os.path.isfile(path):
            raise UserError(f"no such file: {os.path.relpath(path, engine.root)}", code="no-such-file")
        return {"path": path, "shown": await show(path)}

    @server.command("perfd.writeAnswer")
    def cmd_write_answer(*args: Any) -> dict[str, Any]:
        """Save a run's answer (plan, N.N, text) where the achievement's state asks, as `run --write` does:
        atomically, inside the workspace, never over an existing file."""
        if len(args) < 3 or not isinstance(args[1], str) or not isinstance(args[2], str):
            raise UserError("expected a plan, an achievement number and the text", code="bad-params")
        result = engine.generate(_plan_arg(args), achievement=args[1])
        path = write_answer(engine, result, args[2], force=False)
        engine.changed([path])
        s.refresh([path])
        return {"path": path}

    @server.feature(lsp.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(params: lsp.WorkDoneProgressCancelParams) -> None:
        s.cancel_run(params.token)

    @server.command("perfd.run")
    @_clear_errors
    async def cmd_run(*args: Any) -> dict[str, Any]:
        """Send the prompt of (plan, achievement?) to the model.

        The partial text goes out as work-done progress reports (throttled) and, when
        the third argument is {"stream": ID}, as a perfd/runChunk notification per piece
        as it arrives. $/cancelRequest or cancelling the progress cancels the model call.
        """
        number = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        options = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
        stream_id = options.get("stream") if isinstance(options.get("stream"), str) else None
        plan = _plan_arg(args)
        from perfd.llm import HOW_TO_CONFIGURE, LLMError

        try:
            llm = s.llm()
        except LLMError as exc:
            raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
        if llm is None:
            raise UserError("no model is configured, so there is nothing to run. " + " ".join(
                HOW_TO_CONFIGURE.split()), code="no-provider")
        result = engine.generate(plan, achievement=number)
        if result.achievement is None:
            return {"plan": result.plan, "achievement": None, "state": result.state, "text": "", "tokens": 0,
                    "cached": False, "prompt": result.prompt}
        request_id = server.protocol.msg_id
        token = f"perfd.run/{id(result)}/{request_id}"
        caps = server.client_capabilities
        progress = bool(caps and caps.window and caps.window.work_done_progress)
        if progress:
            try:
                await server.work_done_progress.create_async(token)
            except Exception:
                progress = False
        if progress:
            server.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(
                title=f"perfd: {result.achievement} ({result.state})", message=f"asking {llm.config.model}",
                cancellable=True))
        reporter = ProgressReporter(server, token if progress else None, stream_id)
        # The call runs in a task of its own, so a cancel stops it and this handler still answers.
        call = asyncio.ensure_future(run_one(engine, llm, result, RunOptions(), reporter))
        keys: list[object] = [token] + ([request_id] if request_id is not None else [])
        for key in keys:
            s.runs[key] = call
        try:
            await asyncio.wait({call})
        finally:
            for key in keys:
                s.runs.pop(key, None)
            if not call.done():  # this handler itself was cancelled (the session is closing)
                call.cancel()
            ok = call.done() and not call.cancelled() and call.exception() is None and call.result().ok
            if ok:
                reporter.flush()  # the last partial text, whatever the throttle skipped
            if progress:
                server.work_done_progress.end(token, lsp.WorkDoneProgressEnd(
                    message="done" if ok else "cancelled" if call.cancelled() else "failed"))
        if call.cancelled():
            raise UserError(f"the run of {result.achievement} was cancelled", code="cancelled")
        answer = call.result()
        if not answer.ok:
            raise UserError(f"the model call failed: {answer.error}", code="llm-failed")
        out = _to_builtins(answer)
        out["write_path"] = result.write_path
        return out


class CommandFailed(JsonRpcException):
    """A perfd.* command that could not do its work: a one-line message and perfd's error code and
    hint as data; never a Python traceback (pygls puts one in the data of any other exception)."""

    CODE = -32803  # LSP RequestFailed: the request was valid, the work failed


def _clear_errors(fn: _Fn) -> _Fn:
    """perfd.* commands: a UserError is its message; anything else is logged here and answered in one line."""

    def translate(exc: Exception) -> CommandFailed:
        if isinstance(exc, UserError):
            return CommandFailed(exc.message, data={"code": exc.code, "hint": exc.hint})
        log.exception("perfd command %s failed", fn.__name__)
        return CommandFailed(f"internal error: {type(exc).__name__}: {exc}", data={"code": "internal"})

    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def run_async(*args: Any) -> Any:
            try:
                return await fn(*args)
            except JsonRpcException:
                raise
            except Exception as exc:
                raise translate(exc) from None

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run_sync(*args: Any) -> Any:
        try:
            return fn(*args)
        except JsonRpcException:
            raise
        except Exception as exc:
            raise translate(exc) from None

    return run_sync  # type: ignore[return-value]
