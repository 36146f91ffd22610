"""`perfd run` as a person sees it: the run service's results rendered for a terminal or a pipe.

One renderer for both paths: in-process it writes to sys.stdout/stderr; in the
daemon the same text goes out as `runChunk` notifications (the client says
whether its stderr is a terminal). So a run prints the same bytes either way.

- One achievement: the answer streams to stdout as it arrives.
- `--parallel`: answers print on stdout once all are in, each under a header
  line naming the achievement, in achievement order (streams would interleave);
  on a terminal, stderr shows one live progress line per achievement meanwhile.
- `--json`: JSON lines on stdout, one RunAnswer per achievement, then a summary.
- The summary (stderr): per achievement, sent or from cache, tokens, cost
  where prices are configured (or what the cache saved), seconds, the file
  written or why not; then one total line, which every run ends with.
- Nothing to do (a complete achievement or plan): one line on stderr, nothing
  sent; `--json`: one NothingToDo object.
- `--dry-run`: the exact request, nothing sent: the prompt with its files inlined on
  stdout; on stderr the token estimate, the estimated cost, and the HTTP request as the
  provider would get it (URL, headers with secrets named not shown, body with each
  message's text elided: it is the prompt printed on stdout). `--json`: all of it in one object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec

from perfd import exitcodes
from perfd.app.run import (
    Call,
    NothingToDo,
    RunListener,
    RunRequest,
    check_writable,
    concurrency,
    exit_code,
    open_client,
    prepare_call,
    require_key,
    run_one,
    run_parallel,
    select,
    served_from_cache,
)
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import GenerateResult
from perfd.engine.workspace import display_path
from perfd.safetext import shown
from perfd.wire.protocol import RunAnswer, RunResult, RunSummary

from perfd.llm.types import RequestPreview

if TYPE_CHECKING:
    from perfd.llm import LLMClient

PROGRESS_INTERVAL_S = 0.1  # live progress lines: at most ten redraws a second


class TextSink(Protocol):
    """Where output goes: a text file, or the daemon's queue of `runChunk` notifications."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def answer_header(a: RunAnswer) -> str:
    """The line above each answer of a parallel run (tail's style: it names the achievement)."""
    return f"==> @{shown(a.plan)} {a.achievement} ({a.state}) <=="


def render_answers(answers: Sequence[RunAnswer]) -> str:
    """Every answer of a parallel run, each under its header, in the given (achievement) order."""
    parts = []
    for a in answers:
        body = a.text if a.ok else f"(no answer: {shown(a.error or '')})\n"
        parts.append(answer_header(a) + "\n" + body + ("" if body.endswith("\n") else "\n"))
    return "\n".join(parts)


def served(a: RunAnswer) -> str:
    """How one answer was served and what it cost, or what the cache saved."""
    if a.cached:
        parts = ["from cache", f"{a.tokens} tokens saved (nothing sent)"]
        if a.cost_saved is not None:
            parts.append(f"cost {a.cost_saved:.4f} saved")
    else:
        parts = ["sent", f"{a.tokens} tokens"]
        if a.cost is not None:
            parts.append(f"cost {a.cost:.4f}")
    parts.append(f"{a.seconds:.1f} s")
    return " · ".join(parts)


def summary_line(a: RunAnswer, root: str) -> str:
    """One achievement's summary: how it was served, what it cost, where it went."""
    if not a.ok:
        return f"  {a.achievement}  {a.state}  failed ({a.error_kind}): {shown(a.error or '')}"
    line = f"  {a.achievement}  {a.state}  " + served(a)
    if a.written:
        line += f" -> wrote {shown(display_path(root, a.written))}"
    elif a.write_error:
        line += f" (not written: {shown(a.write_error)})"
    return line


def write_failed_line(a: RunAnswer) -> str:
    """The one line a write the OS refused ends with: the file, the error, and how to see the answer again."""
    again = (f"; the answer is printed above and kept: perfd stats --history --answer {a.kept}"
             if a.kept is not None else "; the answer is printed above")
    return f"perfd: {shown(a.write_error or '')}{again}"


class DryRun(msgspec.Struct, frozen=True, kw_only=True):
    """`perfd run --dry-run --json`: the request that would be sent, per achievement; nothing is."""

    plan: str
    achievement: str | None
    state: str
    model: str
    url: str
    messages: list[dict[str, str]]
    prompt_tokens_estimate: int
    budget: int
    bytes_per_token: float  # the estimate's rule: 4 until the server's counts teach another
    cost_estimate: float | None  # the prompt's, at the configured prices; None when unpriced
    files: list[str]
    cut: list[str]
    left_out: list[str]
    request: RequestPreview  # the HTTP request as sent: body whole, secrets named in the headers, never shown
    dry_run: bool = True


def dry_run(call: Call, llm: LLMClient) -> DryRun:
    cfg = llm.config
    priced = cfg.price_prompt_per_1k is not None or cfg.price_completion_per_1k is not None
    ctx = call.context
    return DryRun(plan=call.result.plan, achievement=call.result.achievement, state=call.result.state,
                  model=cfg.model, url=cfg.chat_url, messages=call.messages, prompt_tokens_estimate=ctx.tokens,
                  budget=ctx.budget, bytes_per_token=ctx.bytes_per_token, cost_estimate=cfg.cost(ctx.tokens, 0) if priced else None,
                  files=ctx.files, cut=ctx.cut, left_out=ctx.left_out,
                  request=llm.preview(call.messages, call.chat, stream=True))


def render_dry_run(d: DryRun) -> str:
    """The request as a person reads it: where it would go, what it would cost, then the prompt itself."""
    cost = f" · cost about {d.cost_estimate:.4f} for the prompt" if d.cost_estimate is not None else ""
    lines = [f"perfd: dry run, nothing sent: @{shown(d.plan)} {d.achievement} ({d.state}) -> {shown(d.model)} "
             f"at {shown(d.url)}",
             f"perfd: about {d.prompt_tokens_estimate} prompt tokens ({d.bytes_per_token:g} bytes a token) "
             f"of a budget of {d.budget}{cost}; "
             f"{len(d.files)} file(s) inlined whole" + (f", {len(d.cut)} cut" if d.cut else "")
             + (f", {len(d.left_out)} left out" if d.left_out else "")]
    r = d.request
    lines.append(f"perfd: {r.method} {shown(r.url)}")
    lines += [f"perfd:   {shown(name)}: {shown(value)}" for name, value in r.headers.items()]
    lines.append(f"perfd: body {shown(_elided_body(r.body))}")
    return "\n".join(lines) + "\n"


def _elided_body(body: dict[str, object]) -> str:
    """The body as JSON, each message's text replaced by its size (the text is the prompt on stdout)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        body = {**body, "messages": [
            {**m, "content": f"<{len(str(m.get('content', '')).encode('utf-8', 'surrogatepass'))} bytes: the prompt "
                             "on stdout>"} if isinstance(m, dict) else m for m in messages]}
    system = body.get("system")
    if isinstance(system, str):
        body = {**body, "system": f"<{len(system.encode('utf-8', 'surrogatepass'))} bytes>"}
    return msgspec.json.encode(body).decode()


def summarize(answers: Sequence[RunAnswer], plan: str, seconds: float) -> RunSummary:
    """Totals: tokens and cost paid (answers sent), and what the response cache saved."""
    costs = [a.cost for a in answers if a.cost is not None]
    saved = [a.cost_saved for a in answers if a.cost_saved is not None]
    return RunSummary(plan=plan, achievements=len(answers), failed=sum(not a.ok for a in answers),
                      cached=sum(a.cached for a in answers), tokens=sum(a.tokens for a in answers if not a.cached),
                      cost=sum(costs) if costs else None, seconds=seconds,
                      tokens_saved=sum(a.tokens for a in answers if a.cached),
                      cost_saved=sum(saved) if saved else None,
                      written=[a.written for a in answers if a.written], code=exit_code(answers))


def total_line(s: RunSummary) -> str:
    """The one line every run ends with: sent or cached, tokens, cost, seconds."""
    sent = s.achievements - s.cached - s.failed
    parts = [f"{sent} sent", f"{s.cached} from cache"] + ([f"{s.failed} failed"] if s.failed else [])
    money = f" · cost {s.cost:.4f}" if s.cost is not None else ""
    saved = f" · saved {s.tokens_saved} tokens" if s.cached else ""
    if s.cached and s.cost_saved is not None:
        saved += f", cost {s.cost_saved:.4f}"
    return (f"perfd: @{shown(s.plan)}: {', '.join(parts)} · {s.tokens} tokens paid{money}{saved} · {s.seconds:.1f} s")


class SaysWaits(RunListener):
    """A wait before a call goes on, said on stderr ("waiting 1.0 s: rate limited")."""

    def __init__(self, err: TextSink) -> None:
        self.err = err

    def waiting(self, achievement: str, seconds: float, reason: str) -> None:
        self.err.write(f"perfd: {shown(achievement)}: waiting {seconds:.1f} s: {shown(reason)}\n")
        self.err.flush()


class StreamToOut(SaysWaits):
    """One achievement on a person's screen: tokens to stdout as they arrive."""

    def __init__(self, out: TextSink, err: TextSink) -> None:
        super().__init__(err)
        self.out = out
        self.last = ""

    def delta(self, achievement: str, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.last = text


class Progress(SaysWaits):
    """Parallel runs: a live line per achievement on a terminal, a line per finished one elsewhere."""

    def __init__(self, err: TextSink, numbers: Sequence[str], *, tty: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(err)
        self.tty = tty
        self.clock = clock
        self.numbers = list(numbers)
        self.chars = {n: 0 for n in numbers}
        self.state = {n: "waiting" for n in numbers}
        self.began = {n: 0.0 for n in numbers}
        self.done = 0
        self.drawn = False
        self.last_draw = 0.0

    def started_one(self, number: str) -> None:
        self.state[number] = "streaming"
        self.began[number] = self.clock()

    def started(self, result: GenerateResult) -> None:
        self.started_one(result.achievement or "?")
        self.draw()

    def delta(self, achievement: str, text: str) -> None:
        self.chars[achievement] = self.chars.get(achievement, 0) + len(text)
        self.draw()

    def finished(self, answer: RunAnswer) -> None:
        self.done += 1
        n = answer.achievement
        if answer.ok:
            self.state[n] = "done" + (" (from cache)" if answer.cached else "")
        else:
            self.state[n] = f"failed: {shown(answer.error or '')}"
        if self.tty:
            self.draw(force=True)
        else:
            what = (f"done in {answer.seconds:.1f} s" + (" (from cache)" if answer.cached else "") if answer.ok
                    else f"failed: {shown(answer.error or '')}")
            self.err.write(f"perfd: [{self.done}/{len(self.numbers)}] {n} {what}\n")
            self.err.flush()

    def waiting(self, achievement: str, seconds: float, reason: str) -> None:
        if not self.tty:
            super().waiting(achievement, seconds, reason)
            return
        self.state[achievement] = f"waiting {seconds:.1f} s: {reason}"
        self.draw(force=True)

    def line(self, n: str) -> str:
        now = self.clock()
        secs = (now - self.began[n]) if self.began[n] else 0.0
        return f"  {n:8} {self.state[n]:14.60} {self.chars[n]:>7} chars {secs:6.1f} s"

    def draw(self, *, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        if not force and now - self.last_draw < PROGRESS_INTERVAL_S:
            return
        self.last_draw = now
        # Back to the first progress line, then rewrite each (erase-line first: a line may shrink).
        up = f"\x1b[{len(self.numbers)}F" if self.drawn else ""
        self.err.write(up + "".join("\x1b[2K" + self.line(n) + "\n" for n in self.numbers))
        self.err.flush()
        self.drawn = True


def _error(exc: UserError, err: TextSink) -> int:
    from perfd.app.commands import user_error_output

    out = user_error_output(exc)
    err.write(out.stderr)
    return out.code


def settle(request: RunRequest, engine: Engine, cwd: str, *, out: TextSink, err: TextSink) -> list[GenerateResult] | int:
    """What the run sends, or its exit code when it ends before a model is needed: nothing to do (said
    on stderr; `--json`: a NothingToDo object), a blocked achievement, a file `--write` may not write."""
    try:
        chosen = select(engine, request, cwd)
        if isinstance(chosen, NothingToDo):
            if request.json:
                out.write(msgspec.json.encode(chosen).decode() + "\n")
            err.write(f"perfd: @{shown(chosen.plan)}: {shown(chosen.reason)}; nothing to do, nothing sent\n")
            return exitcodes.OK
        if request.options.write and not request.parallel:
            check_writable(engine, chosen[0], force=request.options.force)  # before paying for an answer
        return chosen
    except UserError as exc:
        return _error(exc, err)
    except OSError as exc:  # the plan's files changed while they were read (a folder swapped for a link)
        return _error(UserError(f"cannot read the plan's files: {exc}", code="unreadable",
                                hint="run again once they stay still"), err)


async def execute(request: RunRequest, engine: Engine, llm: LLMClient, cwd: str, *, out: TextSink, err: TextSink,
                  tty: bool = False, results: Sequence[GenerateResult] | None = None) -> RunResult:
    """The run itself, rendered (shared by the in-process path and the daemon's `run` method). The
    caller opened `llm` with open_client (and, to send, require_key); `results`: what settle chose,
    when the caller settled the run before opening the model client."""
    started = time.monotonic()
    if llm.notice:  # settings left out (waiting for `perfd trust`): which model is used, and why
        err.write(f"perfd: {shown(llm.notice)} (using {shown(llm.config.model)})\n")
    if results is None:
        settled = settle(request, engine, cwd, out=out, err=err)
        if isinstance(settled, int):
            return RunResult(code=settled)
        results = settled
    first = results[0]
    try:
        calls = [prepare_call(engine, llm, r, request.options) for r in results]
    except UserError as exc:
        return RunResult(code=_error(exc, err))
    except OSError as exc:  # as in settle
        return RunResult(code=_error(UserError(f"cannot read the plan's files: {exc}", code="unreadable",
                                               hint="run again once they stay still"), err))
    if request.dry_run:
        for call in calls:
            d = dry_run(call, llm)
            if request.json:
                out.write(msgspec.json.encode(d).decode() + "\n")
            else:
                err.write(render_dry_run(d))
                out.write(call.messages[0]["content"])
        out.flush()
        err.flush()
        return RunResult(code=exitcodes.OK)
    numbers = [r.achievement or "?" for r in results]
    if request.parallel:
        hits = sum([await served_from_cache(llm, c) for c in calls])
        cached = f" ({hits} from the response cache, not sent)" if hits else ""
        err.write(f"perfd: @{shown(first.plan)}: running {len(results)} achievements ({', '.join(numbers)}){cached}, "
                  f"at most {concurrency(llm, request.options)} at once, on {shown(llm.config.model)}\n")
        err.flush()
        answers = await run_parallel(engine, llm, results, request.options,
                                     SaysWaits(err) if request.json else Progress(err, numbers, tty=tty), calls)
    else:
        if await served_from_cache(llm, calls[0]):
            err.write(f"perfd: @{shown(first.plan)}: achievement {first.achievement} ({first.state}): "
                      f"answer from the response cache ({shown(llm.config.model)}; nothing sent, nothing paid)\n")
        else:
            left = calls[0].context.cut + calls[0].context.left_out
            err.write(f"perfd: @{shown(first.plan)}: sending achievement {first.achievement} ({first.state}) "
                      f"to {shown(llm.config.model)}" + (f" (left out for the token budget: {shown(', '.join(left))})"
                                                  if left else "") + "\n")
        err.flush()
        listener = SaysWaits(err) if request.json else StreamToOut(out, err)
        answers = [await run_one(engine, llm, first, request.options, listener, calls[0])]
        if not request.json and answers[0].ok and not answers[0].text.endswith("\n"):
            out.write("\n")
    summary = summarize(answers, first.plan, time.monotonic() - started)
    if request.json:
        for a in answers:
            out.write(msgspec.json.encode(a).decode() + "\n")
        out.write(msgspec.json.encode({"summary": summary}).decode() + "\n")
    elif request.parallel:
        out.write(render_answers(answers))
    out.flush()
    lines = [summary_line(a, engine.root) for a in answers] + [total_line(summary)]
    for a in answers:
        if not a.ok and not request.parallel:
            lines.insert(0, f"perfd: the model call failed: {shown(a.error or '')}")
        if a.ok and a.model and a.model != llm.config.model:
            lines.insert(0, f"perfd: {a.achievement}: answered by {shown(a.model)} ([llm] fallback: "
                            f"{shown(llm.config.model)} failed before any answer)")
    lines += [write_failed_line(a) for a in answers if a.write_error_kind == "os"]
    err.write("\n".join(lines) + "\n")
    err.flush()
    return RunResult(code=summary.code, answers=answers, summary=summary)


def main(argv: list[str], cwd: str, *, out: TextSink, err: TextSink, tty: bool = False,
         env: dict[str, str] | None = None, engine: Engine | None = None) -> int:
    """`perfd run ...` in this process."""
    from perfd.app.run import prepare

    from perfd.app.commands import Output

    prepared = prepare(argv, cwd, engine_for=(lambda _root: engine) if engine else None)
    if isinstance(prepared, Output):
        out.write(prepared.stdout)
        err.write(prepared.stderr)
        return prepared.code
    request, eng = prepared
    settled = settle(request, eng, cwd, out=out, err=err)  # nothing to do needs no model
    if isinstance(settled, int):
        return settled
    import anyio

    from perfd.llm import client_from_workspace

    try:
        llm = open_client(lambda: client_from_workspace(eng.root, env=env, model=request.model))
    except UserError as exc:
        return _error(exc, err)

    async def go() -> int:
        async with llm:
            if not request.dry_run:  # a dry run sends nothing: it needs no key
                try:
                    require_key(llm)
                except UserError as exc:
                    return _error(exc, err)
            return (await execute(request, eng, llm, cwd, out=out, err=err, tty=tty, results=settled)).code

    return anyio.run(go)
