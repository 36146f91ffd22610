"""The perfd command line, as a function from argv to (stdout, stderr, exit code).

The same function runs in-process (`--no-daemon`, or when no daemon can
start) and inside the daemon for the thin client, which forwards its raw argv
and cwd and prints back the bytes (as mypy's dmypy does). So argument parsing,
rendering and error messages live here, once, and the output is identical
either way. `run`, `daemon` and `lsp` are parsed here too (one parser, one
help text) but served by their own entry points (perfd.cli, perfd.app.run).

Exit codes are perfd.exitcodes' (0 success, 1 error, 2 usage). Errors are
one line plus a hint.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from perfd import __version__, exitcodes
from perfd import command_registry as registry
from perfd.engine.engine import Engine
from perfd.engine.errors import UsageError, UserError
from perfd.engine.workspace import PlanRef, display_path, find_root
from perfd.paths import is_workspace_root
from perfd.engine.types import GenerateResult, PlanStatus, Problem, WorkspaceStatus
from perfd.safetext import encode_json, shown, shown_lines
from perfd.suggest import closest

if TYPE_CHECKING:
    from perfd.wire.protocol import StatsSnapshot

# No perfd command line needs more. argparse's time grows with the square of the
# count: 256 repeated options take about 15 ms, 1,024 about 250, 50,000 half a minute.
MAX_ARGS = 256



class Output(msgspec.Struct):
    stdout: str = ""
    stderr: str = ""
    code: int = exitcodes.OK
    command: str = ""  # the subcommand that answered ("" when the line did not parse): the daemon counts by it


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise UsageError(message or "")

    def print_help(self, file: Any = None) -> None:
        raise _Help(self.format_help())


class _Help(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class _Adds(Protocol):
    """An argparse parser or argument group: what an option is added to."""

    def add_argument(self, *name_or_flags: str, **kwargs: Any) -> argparse.Action: ...


def _add(parser: _Adds, opt: registry.Option, **extra: Any) -> None:
    """One registry option as an argparse argument."""
    kw: dict[str, Any] = {"help": opt.help or None}
    if opt.kind == registry.FLAG:
        kw["action"] = "store_true"
    elif opt.kind == registry.INT:
        kw["type"] = int
    if opt.choices:
        kw["choices"] = opt.choices
    if opt.default is not None:
        kw["default"] = opt.default
    if opt.metavar is not None:
        kw["metavar"] = opt.metavar
    if opt.nargs is not None:
        kw["nargs"] = opt.nargs
    kw.update(extra)
    parser.add_argument(*opt.flags, **kw)


def build_parser() -> argparse.ArgumentParser:
    """The parser, built from perfd.command_registry (the one list of commands and options)."""
    p = _Parser(prog="perfd", description="What is next in a PLAN workspace, and what to tell the model.")
    for opt in (*registry.top_options(), *registry.global_options()):
        _add(p, opt)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in registry.commands():
        sp = sub.add_parser(cmd.name, help=cmd.help)
        groups: dict[str, _Adds] = {}
        exclusive: dict[str, _Adds] = {}
        for opt in cmd.options:
            target: _Adds
            if opt.exclusive is not None:
                if opt.exclusive not in exclusive:
                    exclusive[opt.exclusive] = sp.add_mutually_exclusive_group()
                target = exclusive[opt.exclusive]
            elif opt.group is not None:
                if opt.group not in groups:
                    groups[opt.group] = sp.add_argument_group(opt.group)
                target = groups[opt.group]
            else:
                target = sp
            _add(target, opt)
        # `perfd stats --json --root DIR` is the same call as `perfd --root DIR stats --json`.
        for opt in registry.global_options():
            _add(sp, opt, default=argparse.SUPPRESS)
    return p


_PARSER: argparse.ArgumentParser | None = None


def _parser() -> argparse.ArgumentParser:
    """build_parser(), built once per process: the daemon answers many command lines (1.8 ms each saved)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = build_parser()
    return _PARSER


def parse(argv: Sequence[str]) -> argparse.Namespace | Output:
    """The command line as parsed arguments, or the Output that answers it already (help, usage error)."""
    if len(argv) > MAX_ARGS:  # argparse's time grows with the square of the count
        return user_error_output(UsageError(f"too many arguments ({len(argv)}; perfd takes at most {MAX_ARGS})"))
    parser = _parser()
    try:
        return parser.parse_args(list(argv))
    except _Help as h:
        return Output(stdout=h.text)
    except UsageError as exc:
        return user_error_output(_with_guess(exc))


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _with_guess(exc: UsageError) -> UsageError:
    """argparse's "invalid choice" (a command, an action, a shell) with a did-you-mean."""
    m = _INVALID_CHOICE.search(exc.message)
    if m is None:
        return exc
    choices = re.findall(r"'([^']*)'", m.group(2))
    close = closest(m.group(1), choices)
    return exc if close is None else UsageError(exc.message, hint=f"did you mean {close!r}?")


def engine_in_process(root: str) -> Engine:
    """A cold engine for `root` with the settings in force; a UserError (one line, exit 1, as the daemon
    answers it) when they cannot be used."""
    from perfd.settings.resolve import load
    from perfd.settings.sources import SettingsError

    try:
        settings = load(root)
    except SettingsError as exc:
        raise UserError(str(exc), code="settings") from None
    return Engine(root, settings=settings)


def command_help(name: str) -> str:
    """The help text of one command, as `perfd NAME --help` prints it."""
    out = parse([name, "--help"])
    return out.stdout if isinstance(out, Output) else ""


def user_error_output(exc: UserError) -> Output:
    """A user error as perfd prints it: one line, a hint, exit 2 for usage and 1 otherwise."""
    msg = shown(exc.message.strip())  # names in it may hold anything (see perfd.safetext)
    said = msg.startswith(("perfd:", "perfd "))  # argparse's own "perfd daemon: ..." is already one
    text = (f"perfd: {msg}\n" if msg and not said else (msg + "\n" if msg else ""))
    if exc.hint:
        text += f"hint: {shown(exc.hint)}\n"
    if exc.details:
        text += "      " + shown_lines(exc.details, indent="      ") + "\n"
    return Output(stderr=text, code=exitcodes.USAGE if isinstance(exc, UsageError) else exitcodes.ERROR)


def run(argv: Sequence[str], cwd: str, *, engine_for: Callable[[str], Engine] | None = None,
        stats_for: Callable[[str], StatsSnapshot | None] | None = None, in_daemon: bool = False,
        tty: bool = False, parsed: argparse.Namespace | Output | None = None, root: str | None = None) -> Output:
    """Run one command line. `engine_for(root)` supplies the (warm) engine.

    `stats_for(root)` returns the daemon's StatsSnapshot (inside the daemon its
    own; in-process, fetched from the running daemon), or None when none runs.
    `daemon`, `run` and `lsp` have their own entry points (perfd.cli); `schema`
    and `init` write files and `stats --history` reads one, so only the
    in-process path serves them. `tty`: stdout is a terminal (charts draw with
    block characters). `parsed`: parse(argv), when the caller already has it (the
    daemon parses a long command line off its loop). `root`: the workspace root
    when the caller found it already (the thin client sends the one it found).
    """
    if parsed is None:
        parsed = parse(argv)
    if isinstance(parsed, Output):
        return parsed
    out = _run(parsed, cwd, engine_for=engine_for, stats_for=stats_for, in_daemon=in_daemon, tty=tty, known_root=root)
    out.command = parsed.command or ""
    return out


def _run(args: argparse.Namespace, cwd: str, *, engine_for: Callable[[str], Engine] | None,
         stats_for: Callable[[str], StatsSnapshot | None] | None, in_daemon: bool, tty: bool,
         known_root: str | None = None) -> Output:
    if args.version:
        return Output(stdout=f"perfd {__version__}\n")
    if args.command is None:
        return Output(stdout=_parser().format_help())
    served = registry.DAEMON_COMMANDS if in_daemon else registry.DAEMON_COMMANDS | registry.LOCAL_COMMANDS
    if args.command not in served:
        return Output(stderr=f"perfd: '{args.command}' is not available here\n", code=exitcodes.USAGE)
    try:
        if args.command == "schema":
            return _schema(args)
        if args.command == "init":
            from perfd.app import init

            if args.stdout:
                return Output(stdout=init.template())
            return Output(stdout=f"wrote {init.init(resolve_init_root(args.root, cwd), force=args.force)}\n")
        if args.command == "new":
            from perfd.app.new_plan import new_plan

            root = known_root or resolve_init_root(args.root, cwd)
            path = new_plan(root, engine_in_process(root).plans_dir, args.name, title=args.title)
            return Output(stdout=f"wrote {shown(display_path(root, path))}\n"
                                 f"next: perfd generate @{shown(os.path.basename(os.path.dirname(path)))}\n")
        if args.command == "completion":
            from perfd.app.completion import script

            return Output(stdout=script(args.shell))
        if args.command == "stats":
            return _stats(args, cwd, stats_for, tty=tty, known_root=known_root)
        if args.command in ("config", "trust"):
            return _settings(args, cwd)
        if args.command == "doctor":
            from perfd.app.doctor import render, run_checks

            report = run_checks(args.root, cwd, find_root=resolve_root, engine_for=engine_in_process)
            text = encode_json(report).decode() + "\n" if args.json else render(report)
            return Output(stdout=text, code=exitcodes.OK if report.ok else exitcodes.ERROR)
        root = known_root or resolve_root(args.root, cwd)
        engine = engine_for(root) if engine_for else engine_in_process(root)
        if args.command == "generate":
            return _generate(engine, args, cwd)
        return _status(engine, args, cwd)
    except UserError as exc:
        return user_error_output(exc)
    except OSError as exc:  # the machine's folders (a state folder that is a file, no permission): one line
        return Output(stderr=f"perfd: {shown(str(exc))}\n", code=exitcodes.ERROR)


def _settings(args: argparse.Namespace, cwd: str) -> Output:
    """`perfd config` and `perfd trust` (perfd.app.settings_commands); a bad setting is one line, exit 1."""
    from perfd.app import settings_commands as sc
    from perfd.settings.resolve import load
    from perfd.settings.sources import SettingsError

    try:
        if args.command == "trust":
            return Output(stdout=sc.run_trust(resolve_root(args.root, cwd), show=args.show, revoke=args.revoke))
        root = find_root(cwd) if not args.root else resolve_root(args.root, cwd)
        return Output(stdout=sc.render_config(load(root), with_defaults=args.all, as_json=args.json))
    except SettingsError as exc:
        return Output(stderr=f"perfd: {shown(str(exc))}\n", code=exitcodes.ERROR)


def _schema(args: argparse.Namespace) -> Output:
    from perfd.wire import schema

    if args.check:
        bad = schema.stale(args.out)
        return Output(stdout="".join(f"out of date: {b}\n" for b in bad), code=exitcodes.ERROR if bad else exitcodes.OK)
    changed = schema.write(args.out)
    return Output(stdout=f"wrote {len(changed)} schema file(s) into {args.out or schema.repo_schemas_dir()}\n")


def _stats(args: argparse.Namespace, cwd: str, stats_for: Callable[[str], StatsSnapshot | None] | None, *,
           tty: bool = False, known_root: str | None = None) -> Output:
    """stats (imported lazily: the engine path does not need them)."""
    from perfd.app import stats_view

    history_only = {"--all": args.all, "--plan": args.plan, "--model": args.model, "--since": args.since,
                    "--format": args.format, "--days": args.days != 30, "--answer": args.answer is not None}
    if args.history:
        return _history(args, cwd, tty=tty)
    given = [flag for flag, value in history_only.items() if value]
    if given:
        raise UsageError(f"{given[0]} goes with --history", hint=f"perfd stats --history {given[0]} ...")
    root = known_root or resolve_root(args.root, cwd)
    snap = stats_for(root) if stats_for is not None else None
    if snap is None:
        raise UserError(f"no daemon running for {root}", hint="perfd daemon start")
    if args.json:
        return Output(stdout=stats_view.render_json(snap))
    if args.prometheus:
        return Output(stdout=stats_view.render_prometheus(snap))
    return Output(stdout=stats_view.render_text(snap))


def _history(args: argparse.Namespace, cwd: str, *, tty: bool) -> Output:
    """`stats --history`: this workspace's calls (--all: every workspace's), filtered, in the format asked."""
    from perfd.app import history_view
    from perfd.config import ConfigError
    from perfd.llm import LLMError, history_path

    if args.prometheus:
        raise UsageError("--history prints text, csv, markdown or json, not --prometheus",
                         hint="perfd stats --history [--format csv|markdown|json]")
    if args.json and args.format not in (None, "json"):
        raise UsageError(f"--json and --format {args.format} disagree", hint="give one of them")
    fmt = "json" if args.json else (args.format or "text")
    if args.answer is not None:
        return _kept_answer(args, cwd)
    since = history_view.parse_since(args.since) if args.since is not None else None
    days = history_view.parse_days(args.days)
    try:
        root = resolve_root(args.root, cwd) if args.root else find_root(cwd)
        path = history_path(root)  # the workspace's [llm] history_path, if it sets one
    except (ConfigError, LLMError) as exc:
        raise UserError(str(getattr(exc, "message", exc))) from None
    workspace = None if args.all or root is None else os.path.realpath(root)
    q = history_view.HistoryQuery(path=path, workspace=workspace, plan=args.plan, model=args.model, since=since,
                                  days=days, format=fmt)
    return Output(stdout=history_view.render(q, tty=tty))


def _kept_answer(args: argparse.Namespace, cwd: str) -> Output:
    """`stats --history --answer ID`: the answer `run --write` could not write, as it came (raw text)."""
    from perfd.config import ConfigError
    from perfd.llm import LLMError, history_path, open_history

    try:
        root = resolve_root(args.root, cwd) if args.root else find_root(cwd)
        path = history_path(root)
    except (ConfigError, LLMError) as exc:
        raise UserError(str(getattr(exc, "message", exc))) from None
    if not os.path.exists(path):
        raise UserError(f"no answer kept under {args.answer}: there is no model-call history yet")
    history = open_history(path)
    try:
        kept = history.kept(args.answer)
    except Exception as exc:  # sqlite3.Error, OSError: an unreadable file is one line
        raise UserError(f"cannot read the model-call history {shown(path)}: {exc}") from None
    finally:
        history.close()
    if kept is None:
        raise UserError(f"no answer kept under {args.answer}", hint="its id is in the last line of the run that kept it")
    if args.json:
        return Output(stdout=encode_json(kept).decode() + "\n")
    return Output(stdout=kept.text, stderr=f"perfd: answer {kept.id} of @{shown(kept.plan or '?')} "
                  f"{shown(kept.achievement or '?')} from {shown(kept.model)}, meant for "
                  f"{shown(kept.path or '?')} ({shown(kept.error or '')})\n")


def resolve_init_root(option: str | None, cwd: str) -> str:
    """Where `perfd init` writes: --root (any folder: it makes one a workspace), else the workspace around cwd,
    else cwd itself."""
    if option:
        return _root_folder(option, cwd)
    return find_root(cwd) or cwd


def _root_folder(option: str, cwd: str) -> str:
    root = os.path.abspath(os.path.join(cwd, option))
    if not os.path.isdir(root):
        raise UserError(f"--root {option}: no such folder", hint="give the folder that holds work-space/plans/")
    return root


def resolve_root(option: str | None, cwd: str) -> str:
    """The workspace root: --root (relative to cwd; it must be one), else the walk up from cwd."""
    if option:
        root = _root_folder(option, cwd)
        if not is_workspace_root(root):
            above = find_root(os.path.dirname(root))
            if above is not None:
                rel = os.path.relpath(above, cwd)
                raise UserError(f"--root {option}: not a workspace root, but inside the workspace {above}",
                                hint=f"perfd --root {rel} ...  (the root is the folder that holds work-space/plans/)")
            raise UserError(f"--root {option}: no PLAN workspace there (no work-space/plans/ and no perfd.toml)",
                            hint="give the folder that holds work-space/plans/")
        return root
    found = find_root(cwd)
    if found is None:
        raise UserError(f"no PLAN workspace at or above {cwd}",
                        hint="run perfd inside a workspace (a folder with work-space/plans/) or pass --root DIR")
    return found


def _generate(engine: Engine, args: argparse.Namespace, cwd: str) -> Output:
    plan_ref, achievement = plan_and_achievement(engine, args.target, args.next, cwd)
    result = engine.generate(plan_ref, achievement=achievement, cwd=cwd, trust_plan=args.trust_plan)
    if args.inline:  # what `run` sends: self-contained, for pasting into a chat window
        from perfd.app.context import budget_of, self_contained

        result = msgspec.structs.replace(result, prompt=self_contained(engine, result,
                                                                       budget_of(engine.settings)).prompt)
    if args.json:
        return Output(stdout=encode_json(result).decode() + "\n")
    return Output(stdout=result.prompt, stderr=_generate_banner(result, engine.root))


_GENERATE_USAGE = "perfd generate @PLAN [--next | ACHIEVEMENT]"


def plan_and_achievement(engine: Engine, targets: list[str], want_next: bool,
                         cwd: str) -> tuple[str | PlanRef, str | None]:
    """`@PLAN 2.1`, `2.1 @PLAN`, `--next @PLAN`, or nothing (the plan of cwd) -> (plan ref, achievement).

    The plan of cwd comes back as the plan itself, which the engine takes as it is (not resolved again).
    """
    target: list[str] = list(targets)
    plan_ref: str | None = None
    achievement: str | None = None
    for t in target:
        if t.startswith("@") or os.sep in t or t.endswith(".md"):
            if plan_ref is not None:
                raise UsageError(f"two plans given: {plan_ref} and {t}", hint=_GENERATE_USAGE)
            plan_ref = t
        elif achievement is None and looks_like_number(t):
            achievement = t
        elif plan_ref is None:
            plan_ref = t
        else:
            raise UsageError(f"unexpected argument {t!r}", hint=_GENERATE_USAGE)
    if want_next and achievement is not None:
        raise UsageError("give either --next or an achievement number, not both", hint=_GENERATE_USAGE)
    if plan_ref is None:
        return engine.default_plan_ref(cwd), achievement
    return plan_ref, achievement


def looks_like_number(t: str) -> bool:
    """`2.1` or `3.5.1`: an achievement number, as opposed to a plan name."""
    parts = t.split(".")
    return len(parts) in (2, 3) and all(p.isdigit() for p in parts)


def _problem_lines(problems: list[Problem], root: str, *, limit: int = 8) -> list[str]:
    listed = [p for p in problems if p.severity != "info"]
    out = []
    for p in listed[:limit]:
        where = shown(display_path(root, p.path)) if p.path else ""
        if where and p.line:
            where += f":{p.line}"
        out.append(f"perfd: {p.severity}: {where + ': ' if where else ''}{shown(p.message)}")
    if len(listed) > limit:
        out.append(f"perfd: ... and {len(listed) - limit} more (perfd generate --json lists them all)")
    return out


def _generate_banner(r: GenerateResult, root: str) -> str:
    what = f"achievement {r.achievement}" if r.achievement else "no achievement"
    line = f"perfd: @{shown(r.plan)}: {what}, {r.state} (from {r.source})"
    if r.parallel_options:
        line += "; parallel options: " + ", ".join(r.parallel_options)
    return "\n".join([line] + _problem_lines(r.problems, root)) + "\n"


def _status(engine: Engine, args: argparse.Namespace, cwd: str) -> Output:
    if args.plan:
        st = engine.plan_status(args.plan, cwd=cwd, trust_plan=args.trust_plan)
        if args.json:
            return Output(stdout=encode_json(st).decode() + "\n")
        return Output(stdout=_render_plan(st, engine.root, explain=args.explain),
                      stderr=_stderr_problems(st.problems, engine.root))
    ws = engine.status()
    if args.json:
        return Output(stdout=encode_json(ws).decode() + "\n")
    return Output(stdout=_render_workspace(ws), stderr=_stderr_problems(ws.problems, engine.root))


def _stderr_problems(problems: list[Problem], root: str) -> str:
    lines = _problem_lines(problems, root)
    return "\n".join(lines) + "\n" if lines else ""


_ICON = {
    "complete": "✅", "fix_pending": "🔧", "no_subplan": "·", "subplan_complete": "⏳",
    "subplan_no_execution": "📝", "active_execution": "▶", "create_next_execution": "➕",
    "subplan_all_executed": "🔍", "plan_complete": "✅",
}


def _table(rows: list[list[str]]) -> str:
    from perfd.app.columns import table

    rows = [[shown(c) for c in r] for r in rows]  # one cell, one line: names and titles escaped
    return "".join(line + "\n" for line in table(rows))  # display width: a row's marker may be an emoji


def _render_workspace(ws: WorkspaceStatus) -> str:
    plans = [p for p in ws.plans if not p.not_plan]
    others = [p for p in ws.plans if p.not_plan]
    if not plans and not others:
        return f"no plans under {shown(ws.root)}\n"
    grouped = any(p.group for p in plans)  # the GROUP column only where plans are grouped
    rows = [["PLAN", "DONE", "NEXT", "STATE", "PENDING FIXES", "PARALLEL", "SOURCE"] + (["GROUP"] if grouped else [])]
    for p in plans:
        rows.append([
            "@" + (p.label or p.plan), f"{p.done}/{p.total}", p.next or "-", p.state,
            ", ".join(p.pending_fixes) or "-", ", ".join(p.parallel_options) or "-", p.source,
        ] + ([p.group or "-"] if grouped else []))
    out = _table(rows) if plans else f"no plans under {shown(ws.root)}\n"
    for p in plans:
        if not p.total:
            out += (f"warning: @{shown(p.label or p.plan)}: no achievements read "
                    f"(`perfd generate @{shown(p.label or p.plan)}` says what perfd looks for)\n")
    for p in others:
        out += f"not a plan: {shown(display_path(ws.root, p.path))}: {shown(p.not_plan)}\n"
    return out


def _render_plan(st: PlanStatus, root: str, *, explain: bool = False) -> str:
    head = (f"@{shown(st.plan)}: {shown(st.title)}\n{shown(display_path(root, st.path))}\n"
            f"{st.done}/{st.total} complete · next: {st.next or '-'} ({st.state}) · source: {st.source}\n")
    if st.parallel_options:
        head += "parallel options: " + ", ".join(st.parallel_options) + "\n"
    if st.handoff_next and st.handoff_next != st.next:
        head += f"handoff says next: {st.handoff_next}\n"
    if st.not_plan:
        head += f"not a plan: {shown(st.not_plan)}\n"
    elif not st.achievements:
        head += "warning: no achievements read (`perfd generate` says what perfd looks for)\n"
    rows = [["", "ACH", "STATE", "TITLE", "DECIDED BY" if explain else "FILES"]]
    for a in st.achievements:
        files = a.active_execution or a.fix or a.subplan or ""
        last = a.decided_by if explain else (display_path(root, files) if files else "")
        rows.append([_ICON.get(a.state, " "), a.number, a.state + ("" if a.ready else " (blocked)"),
                     a.title[:48], last])
    return head + "\n" + _table(rows)
