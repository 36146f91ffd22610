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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec

from perfd import exitcodes
from perfd.app.run import (
    RunListener,
    RunRequest,
    concurrency,
    exit_code,
    no_provider_error,
    run_one,
    run_parallel,
    targets,
)
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import GenerateResult
from perfd.engine.workspace import display_path
from perfd.safetext import shown
from perfd.wire.protocol import RunAnswer, RunResult, RunSummary

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


class StreamToOut(RunListener):
    """One achievement on a person's screen: tokens to stdout as they arrive."""

    def __init__(self, out: TextSink) -> None:
        self.out = out
        self.last = ""

    def delta(self, achievement: str, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.last = text


class Progress(RunListener):
    """Parallel runs: a live line per achievement on a terminal, a line per finished one elsewhere."""

    def __init__(self, err: TextSink, numbers: Sequence[str], *, tty: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.err = err
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


async def execute(request: RunRequest, engine: Engine, llm: LLMClient, cwd: str, *, out: TextSink, err: TextSink,
                  tty: bool = False) -> RunResult:
    """The run itself, rendered (shared by the in-process path and the daemon's `run` method)."""
    started = time.monotonic()
    try:
        from perfd.llm import LLMError

        try:
            llm.check_key()
        except LLMError as exc:
            raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
        except OSError as exc:  # the state folder (cache, history) cannot be used: perfd.paths.UnsafeFolder
            raise UserError(f"cannot open the model client: {exc}", code="state-folder",
                            hint="check XDG_STATE_HOME / PERFD_STATE_DIR") from None
        if llm.notice:  # settings left out (waiting for `perfd trust`): which model is used, and why
            err.write(f"perfd: {shown(llm.notice)} (using {shown(llm.config.model)})\n")
        results = targets(engine, request, cwd)
        first = results[0]
        if first.achievement is None:
            err.write(f"perfd: @{shown(first.plan)}: {first.state}; nothing to send\n")
            if not request.json:
                out.write(first.prompt)
            return RunResult(code=exitcodes.OK)
        if request.options.write and not request.parallel:
            from perfd.app.run import check_writable

            check_writable(engine, first, force=request.options.force)  # before paying for an answer
    except UserError as exc:
        return RunResult(code=_error(exc, err))
    numbers = [r.achievement or "?" for r in results]
    if request.parallel:
        from perfd.app.run import served_from_cache

        hits = sum([await served_from_cache(engine, llm, r, request.options) for r in results])
        cached = f" ({hits} from the response cache, not sent)" if hits else ""
        err.write(f"perfd: @{shown(first.plan)}: running {len(results)} achievements ({', '.join(numbers)}){cached}, "
                  f"at most {concurrency(llm, request.options)} at once, on {shown(llm.config.model)}\n")
        err.flush()
        answers = await run_parallel(engine, llm, results, request.options,
                                     RunListener() if request.json else Progress(err, numbers, tty=tty))
    else:
        from perfd.app.run import served_from_cache

        if await served_from_cache(engine, llm, first, request.options):
            err.write(f"perfd: @{shown(first.plan)}: achievement {first.achievement} ({first.state}): "
                      f"answer from the response cache ({shown(llm.config.model)}; nothing sent, nothing paid)\n")
        else:
            err.write(f"perfd: @{shown(first.plan)}: sending achievement {first.achievement} ({first.state}) "
                      f"to {shown(llm.config.model)}\n")
        err.flush()
        listener = RunListener() if request.json else StreamToOut(out)
        answers = [await run_one(engine, llm, first, request.options, listener)]
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
    import anyio

    from perfd.llm import LLMError, client_from_workspace

    try:
        try:
            llm = client_from_workspace(eng.root, env=env)
        except LLMError as exc:
            raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
        except OSError as exc:  # the state folder (cache, history) cannot be used: perfd.paths.UnsafeFolder
            raise UserError(f"cannot open the model client: {exc}", code="state-folder",
                            hint="check XDG_STATE_HOME / PERFD_STATE_DIR") from None
        if llm is None:
            raise no_provider_error()
    except UserError as exc:
        return _error(exc, err)

    async def go() -> int:
        async with llm:
            return (await execute(request, eng, llm, cwd, out=out, err=err, tty=tty)).code

    return anyio.run(go)
