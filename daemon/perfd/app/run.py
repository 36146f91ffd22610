"""The run service: send prompts to the model and keep every answer.

`run_one` and `run_parallel` take the engine's GenerateResults, the model
client and typed RunOptions, and return one typed RunAnswer per achievement:
text, cache or not, tokens, cost, seconds, the file written or why not. A
model failure becomes an RunAnswer with `error` set; the others go on. What a
person sees is rendered from those results by perfd.app.run_render, the same
in-process and through the daemon; the LSP command renders them its own way.

    perfd run @PLAN [--next | N.N] [--write [--force]] [--no-cache] [--json]
    perfd run @PLAN --parallel [--concurrency N] [--write [--force]] [--json]

Exit codes (perfd.exitcodes): OK done, ERROR (unknown plan, no provider
configured, a file that exists without --force), USAGE, MODEL (a model call failed).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import msgspec

from perfd import exitcodes
from perfd.engine.engine import Engine
from perfd.engine.errors import UsageError, UserError
from perfd.engine.types import GenerateResult
from perfd.wire.protocol import RunAnswer

if TYPE_CHECKING:
    from perfd.app.commands import Output
    from perfd.llm import ChatOptions, LLMClient
    from perfd.llm.types import Message

DEFAULT_CONCURRENCY = 4


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to run: cache, writing, concurrency (None: the model config's, else DEFAULT_CONCURRENCY)."""

    use_cache: bool = True
    write: bool = False
    force: bool = False
    concurrency: int | None = None


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed `perfd run` command line."""

    root: str
    plan: str
    achievement: str | None
    parallel: bool
    options: RunOptions
    json: bool = False
    trust_plan: bool = False
    model: str | None = None  # a [models.NAME] (-m NAME); None: [llm]


class RunListener:
    """What a transport hears while a run goes on; every method may be left as it is (no-op)."""

    def started(self, result: GenerateResult) -> None:
        pass

    def delta(self, achievement: str, text: str) -> None:
        pass

    def finished(self, answer: RunAnswer) -> None:
        pass

    def waiting(self, achievement: str, seconds: float, reason: str) -> None:
        """The call waits before it goes on: a rate limit, a Retry-After, a retry's back-off."""


def _priced(llm: LLMClient) -> bool:
    cfg = llm.config
    return cfg.price_prompt_per_1k is not None or cfg.price_completion_per_1k is not None


def check_writable(engine: Engine, result: GenerateResult, *, force: bool) -> str:
    """The file `--write` would write for `result`, inside the workspace; a UserError when it cannot."""
    if result.write_path is None:
        raise UserError(f"achievement {result.achievement} is in state {result.state}, which asks for no new file",
                        hint="run without --write and act on the answer yourself", code="nothing-to-write")
    path = engine.workspace.check_inside(result.write_path)
    if not force and os.path.lexists(path):
        raise UserError(f"{os.path.relpath(path, engine.root)} exists; not overwritten",
                        hint="pass --force to replace it", code="file-exists")
    return path


def write_answer(engine: Engine, result: GenerateResult, text: str, *, force: bool) -> str:
    """Write `text` where `result`'s state asks, atomically, never over a file without `force`."""
    from perfd.fsutil import FileExists, write_atomic

    path = check_writable(engine, result, force=force)
    try:
        write_atomic(path, text if text.endswith("\n") else text + "\n", force=force)
    except FileExists:  # it appeared since the check: still never overwritten
        raise UserError(f"{os.path.relpath(path, engine.root)} exists; not overwritten",
                        hint="pass --force to replace it", code="file-exists") from None
    return path


def chat_request(engine: Engine, result: GenerateResult, options: RunOptions, *,
                 on_wait: Callable[[float, str], None] | None = None,
                 batch: bool = False) -> tuple[list[Message], ChatOptions]:
    """The model call for one achievement: what is sent, and how it is labelled in the history.
    A batch's calls (--parallel) let an interactive one go first under the rate limit."""
    from perfd.llm import ChatOptions

    return [{"role": "user", "content": result.prompt}], ChatOptions(
        use_cache=options.use_cache, plan=result.plan, achievement=result.achievement, state=result.state,
        workspace=engine.root, on_wait=on_wait, priority="batch" if batch else "interactive")


async def served_from_cache(engine: Engine, llm: LLMClient, result: GenerateResult, options: RunOptions) -> bool:
    """Whether this achievement's answer is in the response cache now (a run says so before it starts)."""
    if not options.use_cache:
        return False
    messages, chat = chat_request(engine, result, options)
    return await llm.cached(messages, chat)


async def run_one(engine: Engine, llm: LLMClient, result: GenerateResult, options: RunOptions,
                  listener: RunListener | None = None, *, batch: bool = False) -> RunAnswer:
    """Stream one achievement's answer (told to `listener` as it arrives); write it when asked.

    A failed model call is an RunAnswer with `error` set, not an exception; a
    cancelled run raises as usual (the response is closed).
    """
    from perfd.llm import LLMError

    hear = listener or RunListener()
    number = result.achievement or "?"
    hear.started(result)
    started = time.monotonic()
    try:
        messages, chat = chat_request(engine, result, options, batch=batch,
                                      on_wait=lambda seconds, reason: hear.waiting(number, seconds, reason))
        async with llm.stream(messages, chat) as stream:
            async for piece in stream:
                hear.delta(number, piece)
            done = stream.completion
            text = stream.text
            model = stream.answered_by
    except LLMError as exc:
        answer = RunAnswer(plan=result.plan, achievement=number, state=result.state, ok=False, error=str(exc), error_kind=exc.kind, seconds=time.monotonic() - started)
        hear.finished(answer)
        return answer
    usage = done.usage if done is not None else None
    written = write_error = None
    if options.write:
        try:
            written = write_answer(engine, result, text, force=options.force)
        except UserError as exc:
            write_error = exc.message
    cached = bool(done and done.cached)
    answer = RunAnswer(
        plan=result.plan, achievement=number, state=result.state, ok=True, text=text, cached=cached,
        model=model,
        cost_saved=(llm.config.cost(usage.prompt_tokens, usage.completion_tokens) if cached and usage else 0.0)
        if _priced(llm) else None,
        prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
        tokens=usage.total_tokens if usage else 0,
        cost=(done.cost if done is not None else 0.0) if _priced(llm) else None,
        seconds=time.monotonic() - started, written=written, write_error=write_error)
    hear.finished(answer)
    return answer


async def run_parallel(engine: Engine, llm: LLMClient, results: Sequence[GenerateResult], options: RunOptions,
                       listener: RunListener | None = None) -> list[RunAnswer]:
    """Run every result at once (at most `concurrency` in flight); answers[i] belongs to results[i]."""
    limit = anyio.CapacityLimiter(max(1, concurrency(llm, options)))
    answers: list[RunAnswer | None] = [None] * len(results)

    async def one(i: int) -> None:
        async with limit:
            answers[i] = await run_one(engine, llm, results[i], options, listener, batch=len(results) > 1)

    async with anyio.create_task_group() as tg:
        for i in range(len(results)):
            tg.start_soon(one, i)
    return [a for a in answers if a is not None]


def concurrency(llm: LLMClient, options: RunOptions) -> int:
    return options.concurrency or llm.config.max_concurrency or DEFAULT_CONCURRENCY


def exit_code(answers: Sequence[RunAnswer]) -> int:
    """3 when a model call failed; else 1 when the configuration or the budget stopped a call (refused
    before sending: the user's limit rather than a failure) or an answer could not be written; else 0."""
    if any(not a.ok and a.error_kind not in ("config", "budget") for a in answers):
        return exitcodes.MODEL
    if any(not a.ok or a.write_error for a in answers):
        return exitcodes.ERROR
    return exitcodes.OK


# --- from a command line -------------------------------------------------------------


def parse_request(args: argparse.Namespace, engine: Engine, cwd: str) -> RunRequest:
    """A parsed `run` command line as a RunRequest (UsageError / UserError when it cannot be one)."""
    from perfd.app.commands import looks_like_number, plan_and_achievement

    if args.parallel and (args.next or any(looks_like_number(t) for t in args.target)):
        raise UsageError("--parallel runs every ready achievement; give no --next or number with it",
                         hint="perfd run @PLAN --parallel")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency takes a whole number from 1 up", hint="perfd run @PLAN --parallel")
    if args.force and not args.write:
        raise UsageError("--force goes with --write", hint="perfd run @PLAN --write --force")
    plan_ref, achievement = plan_and_achievement(engine, args.target, args.next, cwd)
    plan = plan_ref if isinstance(plan_ref, str) else plan_ref.path  # (a request crosses the socket)
    return RunRequest(root=engine.root, plan=plan, achievement=achievement, parallel=args.parallel,
                      json=args.json, trust_plan=args.trust_plan, model=args.model,
                      options=RunOptions(use_cache=not args.no_cache, write=args.write, force=args.force,
                                         concurrency=args.concurrency))


def prepare(argv: Sequence[str], cwd: str, *, engine_for: Callable[[str], Engine] | None = None,
            parsed: argparse.Namespace | Output | None = None,
            root: str | None = None) -> tuple[RunRequest, Engine] | Output:
    """Parse `run ...` and resolve its plan: (request, engine), or the Output that answers it already.

    `parsed`: parse(argv), when the caller already has it (the daemon parses a long command line off its loop).
    `root`: the workspace root the client found (the daemon uses it as is, rather than finding it again).
    """
    from perfd.app.commands import Output, engine_in_process, parse, resolve_root, user_error_output

    if parsed is None:
        parsed = parse(argv)
    if isinstance(parsed, Output):
        return parsed
    try:
        if parsed.command != "run":
            raise UsageError(f"expected a `run` command line, got {parsed.command!r}")
        root = root or resolve_root(parsed.root, cwd)
        engine = engine_for(root) if engine_for is not None else engine_in_process(root)
        return parse_request(parsed, engine, cwd), engine
    except UserError as exc:
        return user_error_output(exc)


def no_provider_error() -> UserError:
    from perfd.llm import HOW_TO_CONFIGURE

    first, _, rest = HOW_TO_CONFIGURE.strip().partition("\n")
    return UserError("no model is configured, so there is nothing to run", hint=first, details=rest,
                     code="no-provider")


def targets(engine: Engine, request: RunRequest, cwd: str) -> list[GenerateResult]:
    """The GenerateResults to send: the one asked for, or every achievement ready at the current level."""
    first = engine.generate(request.plan, achievement=None if request.parallel else request.achievement,
                            cwd=cwd, trust_plan=request.trust_plan)
    if not request.parallel:
        return [first]
    if first.achievement is None:
        return [first]
    ready = [first.achievement, *first.parallel_options]
    rest = [engine.generate(request.plan, achievement=n, cwd=cwd) for n in ready[1:] if n]
    return sorted([first, *rest], key=lambda r: achievement_key(r.achievement or ""))


def achievement_key(number: str) -> tuple[int, ...]:
    """Achievement order: 1.2 < 1.10 < 2.1."""
    return tuple(int(p) if p.isdigit() else 0 for p in number.split("."))
