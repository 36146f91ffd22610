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
from typing import Any, TextIO

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.types import GenerateResult

EXIT_MODEL = 3


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


async def run_one(engine: Engine, llm: Any, result: GenerateResult, *, out: TextIO, use_cache: bool) -> str:
    """Stream one answer to `out`; the whole text is returned."""
    async with llm.stream(_messages(result), use_cache=use_cache, plan=result.plan,
                          achievement=result.achievement, state=result.state) as stream:
        async for delta in stream:
            out.write(delta)
            out.flush()
        text: str = stream.text
    if not text.endswith("\n"):
        out.write("\n")
    return text


async def run_parallel(engine: Engine, llm: Any, results: list[GenerateResult], *, concurrency: int,
                       use_cache: bool, write: bool, force: bool, err: TextIO) -> int:
    from perfd.llm import PromptJob, run_jobs

    jobs = [PromptJob(id=r.achievement or "?", messages=_messages(r), plan=r.plan, achievement=r.achievement,
                      state=r.state, use_cache=use_cache) for r in results]
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


def main(argv: list[str], cwd: str, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
         env: dict[str, str] | None = None, engine: Engine | None = None) -> int:
    """Run `perfd run ...` in this process (argv without the leading "run" handled by the parser)."""
    from perfd.commands import UsageError, _Help, _root, build_parser, plan_and_achievement

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _Help as h:
        out.write(h.text)
        return 0
    except UsageError as exc:
        err.write(f"{exc}\nhint: perfd run --help\n")
        return 2
    try:
        if args.parallel and (args.next or any(_is_number(t) for t in args.target)):
            raise UserError("--parallel runs every ready achievement; give no --next or number with it",
                            code="usage")
        root = _root(args.root, cwd)
        engine = engine or Engine(root)
        plan_ref, achievement = plan_and_achievement(engine, args.target, args.next, cwd)
        import anyio

        from perfd.llm import HOW_TO_CONFIGURE, LLMError, client_from_workspace

        try:
            llm = client_from_workspace(engine.root, env=env)
        except LLMError as exc:
            raise UserError(f"[llm] configuration: {exc}", code="llm-config") from None
        if llm is None:
            raise UserError("no model is configured, so there is nothing to run",
                            hint=HOW_TO_CONFIGURE.strip().replace("\n", "\n      "), code="no-provider")

        async def go() -> int:
            async with llm:
                if args.parallel:
                    first = engine.generate(plan_ref, cwd=cwd, trust_plan=args.trust_plan)
                    ready = [first.achievement, *first.parallel_options] if first.achievement else []
                    if not ready:
                        err.write(f"perfd: @{first.plan}: nothing ready to run ({first.state})\n")
                        return 0
                    results = [engine.generate(plan_ref, achievement=n, cwd=cwd) for n in ready if n]
                    conc = args.concurrency or llm.config.max_concurrency or 4
                    return await run_parallel(engine, llm, results, concurrency=max(1, conc),
                                              use_cache=not args.no_cache, write=args.write, force=args.force,
                                              err=err)
                result = engine.generate(plan_ref, achievement=achievement, cwd=cwd, trust_plan=args.trust_plan)
                if result.achievement is None:
                    err.write(f"perfd: @{result.plan}: {result.state}; nothing to send\n")
                    out.write(result.prompt)
                    return 0
                err.write(f"perfd: @{result.plan}: sending achievement {result.achievement} "
                          f"({result.state}) to {llm.config.model}\n")
                text = await run_one(engine, llm, result, out=out, use_cache=not args.no_cache)
                if args.write:
                    path = _write(engine, result, text, force=args.force)
                    err.write(f"perfd: wrote {os.path.relpath(path, engine.root)}\n")
                return 0

        try:
            return anyio.run(go)
        except LLMError as exc:
            err.write(f"perfd: the model call failed: {exc}\n")
            return EXIT_MODEL
    except UserError as exc:
        err.write(f"perfd: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return 2 if exc.code == "usage" else 1


def _is_number(t: str) -> bool:
    parts = t.split(".")
    return len(parts) in (2, 3) and all(p.isdigit() for p in parts)
