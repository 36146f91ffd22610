"""The run service: send prompts to the model and keep every answer.

`run_one` and `run_parallel` take the engine's GenerateResults, the model
client and typed RunOptions, and return one typed RunAnswer per achievement:
text, cache or not, tokens, cost, seconds, the file written or why not. A
model failure becomes an RunAnswer with `error` set; the others go on. What a
person sees is rendered from those results by perfd.app.run_render, the same
in-process and through the daemon; the LSP command renders them its own way.

    perfd run @PLAN [--next | N.N] [--write [--force]] [--no-cache] [--blocked-ok] [--dry-run] [--json]
    perfd run @PLAN --parallel [--concurrency N] [--write [--force]] [--json]

The rules of a run live here once, and every transport (the CLI in-process,
the daemon's `run` method, the LSP's `perfd.run`) adapts only output and
errors: which achievements (select: nothing is sent for a complete one, a
blocked one is refused unless asked for; settled before any model client is
opened); open the model client or say why not (open_client, require_key);
the request built once per achievement, with the files it refers to inlined
(prepare_call, perfd.app.context); run; write (outside no folder, whatever is
swapped meanwhile: perfd.fsutil); record (an answer that could not be written
is kept in the history).

Exit codes (perfd.exitcodes): OK done (or nothing to do), ERROR (unknown plan, no provider
configured, a blocked achievement, a file that exists without --force), USAGE, MODEL (a model
call failed), WRITE (an answer that could not be written: printed, and kept in the history).
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
from perfd.app.context import Inlined, self_contained
from perfd.engine.engine import Engine
from perfd.engine.errors import UsageError, UserError
from perfd.engine.types import GenerateResult
from perfd.engine.workspace import display_path
from perfd.llm.types import ChatOptions
from perfd.wire.protocol import RunAnswer

if TYPE_CHECKING:
    from perfd.app.commands import Output
    from perfd.llm import LLMClient

DEFAULT_CONCURRENCY = 4


class RunOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to run: cache, writing, concurrency (None: the model config's, else DEFAULT_CONCURRENCY),
    and whether an achievement still waiting on its dependencies may be sent."""

    use_cache: bool = True
    write: bool = False
    force: bool = False
    concurrency: int | None = None
    blocked_ok: bool = False


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed `perfd run` command line."""

    root: str
    plan: str
    achievement: str | None
    parallel: bool
    options: RunOptions
    json: bool = False
    trust_plan: bool = False
    dry_run: bool = False
    model: str | None = None  # a [models.NAME] (-m NAME); None: [llm]


class NothingToDo(msgspec.Struct, frozen=True, kw_only=True):
    """A run that sends nothing, because there is nothing to do: its JSON line (`perfd run --json`)."""

    plan: str
    achievement: str | None
    state: str  # the plan's or achievement's state: complete, plan_complete, or what the plan waits on
    reason: str
    nothing_to_do: bool = True


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """One achievement's model call, built once: what is sent (the prompt with its files inlined), how
    it is labelled in the history, and what the inlining kept or left out."""

    result: GenerateResult
    messages: list[dict[str, str]]
    chat: ChatOptions
    context: Inlined


class NoModel(UserError):
    """No model configured, or its key unset: a transport may run elsewhere (the daemon's client runs
    in-process when its own environment has what the daemon lacks)."""

    def __init__(self, message: str, *, api_key_env: str | None, hint: str = "", details: str = "") -> None:
        super().__init__(message, hint=hint, details=details, code="no-key" if api_key_env else "no-provider")
        self.api_key_env = api_key_env


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


def open_client(source: Callable[[], LLMClient | None]) -> LLMClient:
    """The model client `source` gives, or one UserError saying why there is none (bad [llm]
    settings, an unusable state folder, no model configured: NoModel)."""
    from perfd.llm import LLMError

    try:
        llm = source()
    except LLMError as exc:
        raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
    except OSError as exc:  # the state folder (cache, history) cannot be used: perfd.paths.UnsafeFolder
        raise UserError(f"cannot open the model client: {exc}", code="state-folder",
                        hint="check XDG_STATE_HOME / PERFD_STATE_DIR") from None
    if llm is None:
        raise no_provider_error()
    return llm


def require_key(llm: LLMClient) -> None:
    """NoModel when the key variable the settings name is unset or empty (before anything is sent)."""
    from perfd.llm import LLMError

    try:
        llm.check_key()
    except LLMError as exc:
        raise NoModel(f"[llm] configuration: {exc}", api_key_env=llm.config.api_key_env) from None


def no_provider_error() -> NoModel:
    from perfd.llm import HOW_TO_CONFIGURE

    first, _, rest = HOW_TO_CONFIGURE.strip().partition("\n")
    return NoModel("no model is configured, so there is nothing to run", hint=first, details=rest, api_key_env=None)


class WriteFailed(UserError):
    """The answer could not be written for another reason than "exists": one line naming the file and
    the OS error."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="write-failed")


def check_writable(engine: Engine, result: GenerateResult, *, force: bool) -> str:
    """The file `--write` would write for `result`, inside the workspace; a UserError when it cannot."""
    if result.write_path is None:
        raise UserError(f"achievement {result.achievement} is in state {result.state}, which asks for no new file",
                        hint="run without --write and act on the answer yourself", code="nothing-to-write")
    try:
        path = engine.check_inside(result.write_path)
        exists = not force and os.path.lexists(path)
    except OSError as exc:  # a folder of the path swapped meanwhile: realpath met a link that went
        raise WriteFailed(f"cannot write {display_path(engine.root, result.write_path)}: "
                          f"{exc.strerror or exc}") from None
    if exists:
        raise UserError(f"{os.path.relpath(path, engine.root)} exists; not overwritten",
                        hint="pass --force to replace it", code="file-exists")
    return path


def write_answer(engine: Engine, result: GenerateResult, text: str, *, force: bool) -> str:
    """Write `text` where `result`'s state asks, atomically, never over a file without `force`, and
    never outside the workspace: every folder from the root down is opened without following links
    (perfd.fsutil.write_under), so a folder swapped for a link meanwhile fails the write instead.

    UserError when it may not (the file exists, no file to write); WriteFailed when the OS refuses."""
    from perfd.fsutil import FileExists, write_under

    path = check_writable(engine, result, force=force)
    shown_path = os.path.relpath(path, engine.root)
    try:
        write_under(engine.root, os.path.relpath(path, engine.root),
                    text if text.endswith("\n") else text + "\n", force=force)
    except FileExists:  # it appeared since the check: still never overwritten
        raise UserError(f"{shown_path} exists; not overwritten",
                        hint="pass --force to replace it", code="file-exists") from None
    except OSError as exc:
        where = f" ({exc.filename})" if isinstance(exc.filename, str) and not exc.filename.startswith(".perfd-") \
            and exc.filename != shown_path else ""
        raise WriteFailed(f"cannot write {shown_path}: {exc.strerror or exc}{where}") from None
    return path


def context_budget(llm: LLMClient | None) -> int:
    """The prompt budget in estimated tokens: the model's `[llm] context_tokens`."""
    from perfd.settings.schema import DEFAULT_CONTEXT_TOKENS

    return llm.config.context_tokens if llm is not None else DEFAULT_CONTEXT_TOKENS


def prepare_call(engine: Engine, llm: LLMClient, result: GenerateResult, options: RunOptions) -> Call:
    """The model call for one achievement: its prompt made self-contained (perfd.app.context), and how
    it is labelled in the history. The response cache's key covers the inlined text, so a changed
    referenced file means a new call."""
    from perfd.app.calibration import DEFAULT, calibration

    cal = calibration()
    context = self_contained(engine, result, context_budget(llm),
                             cal.bytes_per_token(llm.config.model) if cal is not None else DEFAULT)
    return Call(result=result, messages=[{"role": "user", "content": context.prompt}], chat=ChatOptions(
        use_cache=options.use_cache, plan=result.plan, achievement=result.achievement, state=result.state,
        workspace=engine.root), context=context)


async def served_from_cache(llm: LLMClient, call: Call) -> bool:
    """Whether this call's answer is in the response cache now (a run says so before it starts)."""
    if not call.chat.use_cache:
        return False
    return await llm.cached(call.messages, call.chat)


async def keep_answer(llm: LLMClient, result: GenerateResult, text: str, path: str | None,
                      error: str) -> int | None:
    """Keep an answer that could not be written in the history (`perfd stats --history --answer ID`
    prints it again): a paid answer is never lost. None when the history is off or fails too."""
    history = llm.history
    if history is None:
        return None
    from perfd.llm.history import KeptAnswer

    kept = KeptAnswer(ts=time.time(), model=llm.config.model, plan=result.plan, achievement=result.achievement,
                      path=path, error=error, text=text)
    try:
        return await anyio.to_thread.run_sync(history.keep, kept)
    except Exception:  # the history is as broken as the folder: the answer is still printed
        return None


async def run_one(engine: Engine, llm: LLMClient, result: GenerateResult, options: RunOptions,
                  listener: RunListener | None = None, call: Call | None = None, *,
                  batch: bool = False) -> RunAnswer:
    """Stream one achievement's answer (told to `listener` as it arrives); write it when asked.

    `call`: the request prepare_call built, when the caller has it already. A failed model call is a
    RunAnswer with `error` set, not an exception; so is a write that fails (the answer is kept in
    the history); a cancelled run raises as usual (the response is closed).
    """
    from perfd.llm import LLMError

    hear = listener or RunListener()
    number = result.achievement or "?"
    hear.started(result)
    started = time.monotonic()
    try:
        if call is None:
            call = prepare_call(engine, llm, result, options)
    except OSError as exc:  # the plan's files changed while they were read: nothing sent
        answer = RunAnswer(plan=result.plan, achievement=number, state=result.state, ok=False,
                           error=f"cannot read the plan's files: {exc}", error_kind="unreadable",
                           seconds=time.monotonic() - started)
        hear.finished(answer)
        return answer
    try:
        # A batch's calls (--parallel) let an interactive one go first under the rate limit; a wait for
        # the limit is told to the listener.
        chat = msgspec.structs.replace(call.chat, priority="batch" if batch else "interactive",
                                       on_wait=lambda seconds, reason: hear.waiting(number, seconds, reason))
        async with llm.stream(call.messages, chat) as stream:
            async for piece in stream:
                hear.delta(number, piece)
            done = stream.completion
            text = stream.text
            model = stream.answered_by
    except LLMError as exc:
        answer = RunAnswer(plan=result.plan, achievement=number, state=result.state, ok=False, error=str(exc),
                           error_kind=exc.kind, seconds=time.monotonic() - started)
        hear.finished(answer)
        return answer
    usage = done.usage if done is not None else None
    if usage is not None and done is not None and not done.cached:  # what the server counted teaches the estimate
        from perfd.app.calibration import calibration

        cal = calibration()
        if cal is not None:
            cal.observe(llm.config.model, len(call.messages[0]["content"].encode("utf-8", "surrogatepass")),
                        usage.prompt_tokens)
    written = write_error = write_kind = None
    kept = None
    if options.write:
        try:
            written = write_answer(engine, result, text, force=options.force)
        except WriteFailed as exc:
            write_error, write_kind = exc.message, "os"
            kept = await keep_answer(llm, result, text, result.write_path, exc.message)
        except UserError as exc:
            write_error, write_kind = exc.message, "exists" if exc.code == "file-exists" else "refused"
    cached = bool(done and done.cached)
    answer = RunAnswer(
        plan=result.plan, achievement=number, state=result.state, ok=True, text=text, cached=cached,
        model=model,
        cost_saved=(llm.config.cost(usage.prompt_tokens, usage.completion_tokens) if cached and usage else 0.0)
        if _priced(llm) else None,
        prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
        tokens=usage.total_tokens if usage else 0,
        cost=(done.cost if done is not None else 0.0) if _priced(llm) else None,
        seconds=time.monotonic() - started, written=written, write_error=write_error, write_error_kind=write_kind,
        kept=kept)
    hear.finished(answer)
    return answer


async def run_parallel(engine: Engine, llm: LLMClient, results: Sequence[GenerateResult], options: RunOptions,
                       listener: RunListener | None = None, calls: Sequence[Call] | None = None) -> list[RunAnswer]:
    """Run every result at once (at most `concurrency` in flight); answers[i] belongs to results[i].
    `calls`: the requests prepare_call built for them, when the caller has them already."""
    limit = anyio.CapacityLimiter(max(1, concurrency(llm, options)))
    answers: list[RunAnswer | None] = [None] * len(results)

    async def one(i: int) -> None:
        async with limit:
            answers[i] = await run_one(engine, llm, results[i], options, listener, calls[i] if calls else None,
                                       batch=len(results) > 1)

    async with anyio.create_task_group() as tg:
        for i in range(len(results)):
            tg.start_soon(one, i)
    return [a for a in answers if a is not None]


def concurrency(llm: LLMClient, options: RunOptions) -> int:
    return options.concurrency or llm.config.max_concurrency or DEFAULT_CONCURRENCY


def exit_code(answers: Sequence[RunAnswer]) -> int:
    """MODEL when a model call failed; else WRITE when the OS refused to write an answer (it is printed
    and kept); else ERROR when the configuration or the budget stopped a call (refused before sending:
    the user's limit rather than a failure), the plan's files could not be read, or an answer may not be
    written; else OK."""
    if any(not a.ok and a.error_kind not in ("config", "budget", "unreadable") for a in answers):
        return exitcodes.MODEL
    if any(a.write_error_kind == "os" for a in answers):
        return exitcodes.WRITE
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
    if args.dry_run and args.write:
        raise UsageError("--dry-run sends nothing, so there is nothing to --write", hint="perfd run @PLAN --dry-run")
    plan_ref, achievement = plan_and_achievement(engine, args.target, args.next, cwd)
    plan = plan_ref if isinstance(plan_ref, str) else plan_ref.path  # (a request crosses the socket)
    return RunRequest(root=engine.root, plan=plan, achievement=achievement, parallel=args.parallel,
                      json=args.json, trust_plan=args.trust_plan, dry_run=args.dry_run, model=args.model,
                      options=RunOptions(use_cache=not args.no_cache, write=args.write, force=args.force,
                                         concurrency=args.concurrency, blocked_ok=args.blocked_ok))


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


def nothing_to_do(result: GenerateResult) -> NothingToDo | None:
    """Why `result` needs no model call (a complete achievement or plan, or a plan whose every open
    achievement waits on a review or a dependency), or None when it does."""
    if result.achievement is not None and result.state != "complete":
        return None
    what = (f"achievement {result.achievement} is complete" if result.achievement is not None
            else "the plan is complete" if result.state == "plan_complete"
            else result.prompt.strip().rstrip("."))
    return NothingToDo(plan=result.plan, achievement=result.achievement, state=result.state, reason=what)


def check_not_blocked(engine: Engine, result: GenerateResult, options: RunOptions) -> None:
    """A UserError naming what `result`'s achievement waits on, when it waits on dependencies that are
    not complete, unless `options.blocked_ok` (its own flag: `--force` means "overwrite")."""
    if options.blocked_ok or result.achievement is None:
        return
    st = engine.plan_status(result.plan_path)
    a = next((x for x in st.achievements if x.number == result.achievement), None)
    if a is None or a.ready:
        return
    states = {x.number: x.state for x in st.achievements}
    waits = [d for d in a.dependencies if states.get(d) != "complete"] or list(a.dependencies)
    raise UserError(f"achievement {a.number} of @{result.plan} waits on {', '.join(waits)}, not complete yet; "
                    "nothing sent", hint="pass --blocked-ok to send it anyway", code="blocked",
                    candidates=waits)


def select(engine: Engine, request: RunRequest, cwd: str) -> list[GenerateResult] | NothingToDo:
    """Which achievements a run sends (targets), or NothingToDo; a UserError for a blocked one."""
    results = targets(engine, request, cwd)
    idle = nothing_to_do(results[0])
    if idle is not None:
        return idle
    for r in results:
        check_not_blocked(engine, r, request.options)
    return results


def achievement_key(number: str) -> tuple[int, ...]:
    """Achievement order: 1.2 < 1.10 < 2.1."""
    return tuple(int(p) if p.isdigit() else 0 for p in number.split("."))
