"""perfd.run over LSP: the model's answer, its pieces sent as they arrive (perfd/runChunk) and as
work-done progress; a cancel of the request or of the progress cancels the model call."""

from __future__ import annotations

import asyncio
import time

import msgspec
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from perfd.app.run import (NoModel, RunListener, RunOptions, check_not_blocked, nothing_to_do, open_client, require_key,
                           run_one)
from perfd.engine.errors import UserError
from perfd.lsp.binding import Args, JSONObject, async_command, plan_arg, str_arg, to_json
from perfd.lsp.state import Session

RUN_CHUNK_NOTIFICATION = "perfd/runChunk"
RUN_REPORT_INTERVAL_S = 0.1  # perfd.run: at most ten progress reports a second


class RunStreamChunk(msgspec.Struct, frozen=True):
    """perfd/runChunk: the next piece of a perfd.run answer, sent as it arrives.

    `id` is the one the client gave in perfd.run's options ({"stream": id}),
    so it can tell concurrent runs apart.
    """

    id: str
    achievement: str
    text: str


class ProgressReporter(RunListener):
    """perfd.run's partial text: every piece as a perfd/runChunk (when the client gave a stream id),
    and the text so far as work-done progress reports, at most ten a second."""

    def __init__(self, server: LanguageServer, token: str | None, stream_id: str | None) -> None:
        self.server = server
        self.token = token
        self.stream_id = stream_id
        self.text = ""
        self.last = 0.0

    def delta(self, achievement: str, text: str) -> None:
        self.text += text
        if self.stream_id is not None:
            self.server.protocol.notify(RUN_CHUNK_NOTIFICATION, msgspec.to_builtins(
                RunStreamChunk(id=self.stream_id, achievement=achievement, text=text)))
        now = time.monotonic()
        if self.token is not None and now - self.last >= RUN_REPORT_INTERVAL_S:
            self.last = now
            self.flush()

    def flush(self) -> None:
        if self.token is None:
            return
        # A client that takes the pieces (perfd/runChunk) gets a short count, not the whole text
        # again ten times a second: an editor draws every report it is sent.
        message = f"{len(self.text)} characters" if self.stream_id is not None else self.text
        self.server.work_done_progress.report(self.token, lsp.WorkDoneProgressReport(message=message))


def register(s: Session) -> None:
    async_command(s, "perfd.run", run, clear_errors=True)


async def run(s: Session, args: Args) -> JSONObject:
    """Send the prompt of (plan, achievement?) to the model.

    The partial text goes out as work-done progress reports (throttled) and, when
    the third argument is {"stream": ID}, as a perfd/runChunk notification per piece
    as it arrives. $/cancelRequest or cancelling the progress cancels the model call.
    The rules of a run are perfd.app.run's: nothing is sent for a complete achievement, and a blocked
    one is refused unless the options say {"blockedOk": true}.
    """
    number = str_arg(args, 1)
    options = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
    stream = options.get("stream")
    stream_id = stream if isinstance(stream, str) else None
    named = options.get("model")  # {"model": NAME}: a [models.NAME] instead of [llm]
    model = named if isinstance(named, str) and named else None
    plan = plan_arg(args)
    try:
        llm = open_client(lambda: s.llm(model=model))
        require_key(llm)
    except NoModel as exc:  # an editor shows one message: how to configure a model goes in it
        raise UserError(" ".join(f"{exc.message}. {exc.hint} {exc.details}".split()), code=exc.code) from None
    result = s.engine.generate(plan, achievement=number)
    idle = nothing_to_do(result)
    if idle is not None:  # nothing is sent for a complete achievement or plan ("achievement": null says so)
        return {"plan": result.plan, "achievement": None, "state": result.state, "text": "", "tokens": 0,
                "cached": False, "prompt": result.prompt, "nothing_to_do": True, "reason": idle.reason}
    run_options = RunOptions(blocked_ok=options.get("blockedOk") is True)
    check_not_blocked(s.engine, result, run_options)
    server = s.server
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
    call = asyncio.ensure_future(run_one(s.engine, llm, result, run_options, reporter))
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
    out = to_json(answer)
    out["write_path"] = result.write_path
    return out
