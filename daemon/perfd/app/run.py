"""`perfd run`: generate the prompt, send it to the configured model, stream the answer.

An adapter over the engine (prompts) and perfd.llm (the call path): no
business logic of its own beyond choosing what to run and where to write.

    perfd run @PLAN [--next | N.N] [--write [--force]] [--no-cache]
    perfd run @PLAN --parallel [--concurrency N] [--write [--force]]

Tokens go to stdout as they arrive; progress and the summary go to stderr.
Exit codes: 0 done, 1 user error (unknown plan, no provider configured, a
file that exists without --force), 2 usage error, 3 a model call failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Protocol, TextIO

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import GenerateResult

EXIT_MODEL = 3


class TextSink(Protocol):
    """Where output goes: a text file, or the daemon's queue of `runChunk` notifications."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def add_parser(sub: Any) -> None:
    r = sub.add_parser("run", help="send the prompt for the next step (or for one achievement) to the model")
    r.add_argument("target", nargs="*", metavar="@PLAN|PATH [ACHIEVEMENT]")
    r.add_argument("--next", action="store_true", help="the next step (the default without an achievement)")
    r.add_argument("--parallel", action="store_true",
                   help="run every achievement ready at the current dependency level, concurrently")
    r.add_argument("--concurrency", type=int, default=None, help="at most this many calls at once (--parallel)")
    r.add_argument("--write", action="store_true", help="save the answer to the file the state asks for")
    r.add_argument("--force", action="store_true", help="with --write: overwrite an existing file")
    r.add_argument("--no-cache", action="store_true", help="bypass the response cache")
    r.add_argument("--trust-plan", action="store_true", help="follow the plan's handoff when it disagrees")


def _messages(result: GenerateResult) -> list[dict[str, Any]]:
    return [{"role": "user", "content": result.prompt}]


def _write(engine: Engine, result: GenerateResult, text: str, *, force: bool) -> str:
    from perfd.fsutil import FileExists, write_atomic

    if result.write_path is None:
        raise UserError(f"achievement {result.achievement} is in state {result.state}, which asks for no new file",
                        hint="run without --write and act on the answer yourself", code="nothing-to-write")
    path = engine.workspace.check_inside(result.write_path)
    try:
        write_atomic(path, text if text.endswith("\n") else text + "\n", force=force)
    except FileExists:
        raise UserError(f"{os.path.relpath(path, engine.root)} exists; not overwritten",
                        hint="pass --force to replace it", code="file-exists") from None
    return path


async def run_one(engine: Engine, llm: Any, result: GenerateResult, *, out: TextSink, use_cache: bool,
                  summary: dict[str, Any] | None = None) -> str:
    """Stream one answer to `out`; the whole text is returned."""
    from perfd.llm import ChatOptions

    async with llm.stream(_messages(result), ChatOptions(use_cache=use_cache, plan=result.plan,
                          achievement=result.achievement, state=result.state)) as stream:
        async for delta in stream:
            out.write(delta)
            out.flush()
        text: str = stream.text
        done = stream.completion
    if summary is not None and done is not None:
        summary.update(tokens=done.usage.total_tokens, cached=done.cached)
    if not text.endswith("\n"):
        out.write("\n")
    return text


async def run_parallel(engine: Engine, llm: Any, results: list[GenerateResult], *, concurrency: int,
                       use_cache: bool, write: bool, force: bool, err: TextSink) -> int:
    from perfd.llm import ChatOptions, PromptJob, run_jobs

    jobs = [PromptJob(id=r.achievement or "?", messages=_messages(r), options=ChatOptions(
                plan=r.plan, achievement=r.achievement, state=r.state, use_cache=use_cache)) for r in results]
    by_id = {r.achievement: r for r in results}
    started = time.monotonic()
    done = [0]

    def progress(outcome: Any) -> None:
        done[0] += 1
        what = (f"done in {outcome.elapsed_s:.1f} s" if outcome.ok else f"FAILED: {outcome.error}")
        err.write(f"perfd: [{done[0]}/{len(jobs)}] {outcome.id} {what}\n")
        err.flush()

    err.write(f"perfd: running {len(jobs)} achievements ({', '.join(j.id for j in jobs)}), "
              f"at most {concurrency} at once\n")
    outcomes = await run_jobs(llm, jobs, concurrency=concurrency, on_outcome=progress)
    failed = 0
    err.write(f"perfd: summary after {time.monotonic() - started:.1f} s:\n")
    for o in outcomes:
        r = by_id[o.id]
        done_call = o.completion
        if done_call is None:
            failed += 1
            err.write(f"  {o.id}  {r.state:22}  failed ({o.error_kind}): {o.error}\n")
            continue
        where = ""
        if write:
            try:
                where = " -> " + os.path.relpath(_write(engine, r, done_call.text, force=force), engine.root)
            except UserError as exc:
                failed += 1
                where = f" (not written: {exc.message})"
        tokens = done_call.usage.total_tokens if done_call.usage else 0
        cached = ", cached" if done_call.cached else ""
        err.write(f"  {o.id}  {r.state:22}  ok ({tokens} tokens{cached}){where}\n")
    return EXIT_MODEL if failed else 0


def prepare(argv: list[str], cwd: str, *, out: TextSink, err: TextSink,
            engine_for: Any = None) -> tuple[argparse.Namespace, Engine, str, str | None] | int:
    """Parse `run ...` and resolve its plan and achievement: (args, engine, plan, achievement), or an exit code."""
    from perfd.app.commands import UsageError, _Help, _parser, _root, looks_like_number, plan_and_achievement

    parser = _parser()  # built once per process: the daemon parses many command lines
    try:
        args = parser.parse_args(argv)
    except _Help as h:
        out.write(h.text)
        return 0
    except UsageError as exc:
        err.write(f"{exc}\nhint: perfd run --help\n")
        return 2
    try:
        if args.parallel and (args.next or any(looks_like_number(t) for t in args.target)):
            raise UserError("--parallel runs every ready achievement; give no --next or number with it",
                            code="usage")
        root = _root(args.root, cwd)
        engine = engine_for(root) if engine_for is not None else Engine(root)
        plan_ref, achievement = plan_and_achievement(engine, args.target, args.next, cwd)
    except UserError as exc:
        return _user_error(exc, err)
    return args, engine, plan_ref, achievement


def _user_error(exc: UserError, err: TextSink) -> int:
    err.write(f"perfd: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
    return 2 if exc.code == "usage" else 1


def no_provider_error() -> UserError:
    from perfd.llm import HOW_TO_CONFIGURE

    return UserError("no model is configured, so there is nothing to run",
                     hint=HOW_TO_CONFIGURE.strip().replace("\n", "\n      "), code="no-provider")


async def execute(args: argparse.Namespace, engine: Engine, llm: Any, plan_ref: str, achievement: str | None,
                  cwd: str, *, out: TextSink, err: TextSink, summary: dict[str, Any] | None = None) -> int:
    """The run itself (shared by the in-process path and the daemon's `run` method); returns the exit code.

    `summary`, when given, receives achievement, state, written, tokens, cached and error.
    """
    from perfd.llm import LLMError

    info: dict[str, Any] = summary if summary is not None else {}
    try:
        if args.parallel:
            first = engine.generate(plan_ref, cwd=cwd, trust_plan=args.trust_plan)
            ready = [first.achievement, *first.parallel_options] if first.achievement else []
            info.update(achievement=first.achievement, state=first.state)
            if not ready:
                err.write(f"perfd: @{first.plan}: nothing ready to run ({first.state})\n")
                return 0
            results = [engine.generate(plan_ref, achievement=n, cwd=cwd) for n in ready if n]
            conc = args.concurrency or llm.config.max_concurrency or 4
            code = await run_parallel(engine, llm, results, concurrency=max(1, conc),
                                      use_cache=not args.no_cache, write=args.write, force=args.force, err=err)
            if code:
                info["error"] = "a parallel call failed"
            return code
        result = engine.generate(plan_ref, achievement=achievement, cwd=cwd, trust_plan=args.trust_plan)
        info.update(achievement=result.achievement, state=result.state)
        if result.achievement is None:
            err.write(f"perfd: @{result.plan}: {result.state}; nothing to send\n")
            out.write(result.prompt)
            return 0
        err.write(f"perfd: @{result.plan}: sending achievement {result.achievement} "
                  f"({result.state}) to {llm.config.model}\n")
        text = await run_one(engine, llm, result, out=out, use_cache=not args.no_cache, summary=info)
        if args.write:
            path = _write(engine, result, text, force=args.force)
            info["written"] = path
            err.write(f"perfd: wrote {os.path.relpath(path, engine.root)}\n")
        return 0
    except LLMError as exc:
        info["error"] = str(exc)
        err.write(f"perfd: the model call failed: {exc}\n")
        return EXIT_MODEL
    except UserError as exc:
        info["error"] = exc.message
        return _user_error(exc, err)


def main(argv: list[str], cwd: str, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
         env: dict[str, str] | None = None, engine: Engine | None = None) -> int:
    """Run `perfd run ...` in this process (argv without the leading "run" handled by the parser)."""
    prepared = prepare(argv, cwd, out=out, err=err, engine_for=(lambda _root: engine) if engine else None)
    if isinstance(prepared, int):
        return prepared
    args, eng, plan_ref, achievement = prepared
    import anyio

    from perfd.llm import LLMError, client_from_workspace

    try:
        try:
            llm = client_from_workspace(eng.root, env=env)
        except LLMError as exc:
            raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
        if llm is None:
            raise no_provider_error()
    except UserError as exc:
        return _user_error(exc, err)

    async def go() -> int:
        async with llm:
            return await execute(args, eng, llm, plan_ref, achievement, cwd, out=out, err=err)

    return anyio.run(go)


def cli(argv: list[str], cwd: str, root: str | None, no_daemon: bool) -> int:
    """`perfd run` from the command line: through the workspace's daemon when one is running, else in-process.

    Through the daemon the model is called with the DAEMON's environment (its
    shared client, pool, rate limit and cache); the caller's PERFD_LLM_*
    variables and API key are never sent. When the daemon has no model or no
    key, the run falls back to this process (with a notice when this
    environment has what the daemon lacks).
    """
    if not no_daemon and root is not None:
        got = _via_daemon(argv, cwd, root)
        if isinstance(got, int):
            return got
        if got:
            sys.stderr.write(f"perfd: {got}; running in-process\n")
    return main(argv, cwd)


def _via_daemon(argv: list[str], cwd: str, root: str) -> int | str | None:
    """The exit code of a run through the daemon; else why not (str: say so; None: fall back quietly)."""
    from perfd import __version__
    from perfd.wire import protocol as P
    from perfd.cli.client import state_paths
    from perfd.wire.ipc import Connection

    try:
        conn = Connection(state_paths(root)["sock"], 2.0)
    except OSError:
        return None  # no daemon: in-process as before
    out, err = sys.stdout, sys.stderr
    started = False
    with conn:
        try:
            conn.sock.settimeout(None)  # a model call may take minutes
            conn.sock.sendall(_frame_request(argv, cwd, __version__))
            while True:
                msg = conn.recv()
                if not isinstance(msg, dict):
                    continue
                if msg.get("method") == "runChunk":
                    params = msg.get("params") or {}
                    target = err if params.get("stream") == "err" else out
                    started = True
                    target.write(params.get("text", ""))
                    target.flush()
                    continue
                if msg.get("id") != 1:
                    continue
                if "result" in msg:
                    return int(msg["result"]["code"])
                error = msg.get("error") or {}
                if error.get("code") == P.NO_MODEL:
                    key = (error.get("data") or {}).get("api_key_env")
                    mine = (key and os.environ.get(key, "").strip()) or any(
                        k.startswith("PERFD_LLM_") for k in os.environ)
                    return f"{error.get('message')} (it reads its own environment)" if mine else None
                if error.get("code") == P.VERSION_MISMATCH:
                    return "the daemon runs another perfd version"
                return f"daemon error: {error.get('message')}"
        except (OSError, ConnectionError) as exc:
            if started:  # output went out already: running again here would repeat it
                err.write(f"perfd: lost the daemon during the run ({exc})\n")
                return EXIT_MODEL
            return f"lost the daemon ({exc})"


def _frame_request(argv: list[str], cwd: str, version: str) -> bytes:
    from perfd.wire.ipc import encode

    return encode({"jsonrpc": "2.0", "id": 1, "method": "run",
                   "params": {"argv": list(argv), "cwd": cwd, "version": version}})

