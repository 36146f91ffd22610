"""The perfd.* commands of a language-server session that read and write the plans (generate, status,
stats, clearCache, createSubplan, openFile, writeAnswer) and name the models perfd.run can take (models),
as plain functions of (session, arguments); perfd.run is perfd.lsp.run's.

Each command is a thin call into perfd.app or the engine; a failure is answered in one line
(perfd.lsp.binding.CommandFailed), never with a Python traceback.
"""

from __future__ import annotations

import logging
import os

import msgspec
from lsprotocol import types as lsp

from perfd.app.run import write_answer as save_answer
from perfd.app.scaffold import create_subplan as scaffold_subplan
from perfd.engine.errors import UserError
from perfd.lsp import features as F
from perfd.lsp.binding import Args, JSONObject, async_command, command, plan_arg, str_arg, to_json
from perfd.lsp.state import Session

log = logging.getLogger("perfd.lsp")


def register(s: Session) -> None:
    command(s, "perfd.generateNext", generate_next, clear_errors=True)
    command(s, "perfd.generate", generate, clear_errors=True)
    command(s, "perfd.status", status, clear_errors=True)
    command(s, "perfd.stats", stats, clear_errors=True)
    command(s, "perfd.clearCache", clear_cache, clear_errors=True)
    command(s, "perfd.models", models, clear_errors=True)
    # A refusal (a path outside the workspace) is one line too: a traceback logged or sent for an
    # editor's bad argument is noise at best, and names the server's files.
    async_command(s, "perfd.createSubplan", create_subplan, clear_errors=True)
    async_command(s, "perfd.openFile", open_file, clear_errors=True)
    command(s, "perfd.writeAnswer", write_answer, clear_errors=True)


def generate_next(s: Session, args: Args) -> JSONObject:
    return to_json(s.engine.generate(plan_arg(args)))


def generate(s: Session, args: Args) -> JSONObject:
    return to_json(s.engine.generate(plan_arg(args), achievement=str_arg(args, 1)))


def status(s: Session, args: Args) -> JSONObject:
    if args:
        return to_json(s.engine.plan_status(plan_arg(args)))
    return to_json(s.engine.status())


def stats(s: Session, args: Args) -> JSONObject:
    return to_json(s.stats())


def clear_cache(s: Session, args: Args) -> JSONObject:
    n = s.engine.invalidate()
    s.refresh()
    return {"cleared": n}


class ModelNames(msgspec.Struct, frozen=True):
    """perfd.models: the `[models.NAME]` names perfd.run takes ({"model": NAME}; none: [llm]), and those the
    workspace's settings name that wait for `perfd trust` (not usable until then)."""

    models: list[str]
    waiting: list[str]


def models(s: Session, args: Args) -> JSONObject:
    """The named models of the settings in force (read again each time: an editor asks before a pick)."""
    from perfd.settings.resolve import load
    from perfd.settings.schema import MODELS
    from perfd.settings.sources import SettingsError

    try:
        settings = load(s.engine.root, os.environ)
    except SettingsError as exc:
        raise UserError(str(exc), code="bad-settings") from None
    prefix = f"[{MODELS}] "
    waiting = sorted({w[len(prefix):] for w in settings.waiting_in(MODELS)})
    named = sorted(n for n, table in settings.table(MODELS).items() if isinstance(table, dict))
    return to_json(ModelNames(models=named, waiting=[n for n in waiting if n not in named]))


async def show(s: Session, path: str) -> bool:
    """Ask the client to open `path` (window/showDocument), when it can; whether it did."""
    caps = s.server.client_capabilities
    window = caps.window if caps else None
    if not (window and window.show_document and window.show_document.support):
        return False
    try:
        got = await s.server.window_show_document_async(
            lsp.ShowDocumentParams(uri=F.path_to_uri(path), take_focus=True))
    except Exception:  # the client refused or went away: the file is there all the same
        log.debug("showDocument failed", exc_info=True)
        return False
    return bool(got and got.success)


async def create_subplan(s: Session, args: Args) -> JSONObject:
    """Write the SUBPLAN scaffold of (plan, N.N) and open it; never over an existing file."""
    number = str_arg(args, 1)
    if number is None:
        raise UserError("expected a plan and an achievement number", code="bad-params")
    path = scaffold_subplan(s.engine, plan_arg(args), number)
    s.refresh([path])
    return {"path": path, "shown": await show(s, path)}


async def open_file(s: Session, args: Args) -> JSONObject:
    """Open a file of the workspace in the client (the code actions' "Open FIX for N.N")."""
    if not args or not isinstance(args[0], str):
        raise UserError("expected a file path", code="bad-params")
    path = s.engine.check_inside(plan_arg(args))
    if not os.path.isfile(path):
        raise UserError(f"no such file: {os.path.relpath(path, s.engine.root)}", code="no-such-file")
    return {"path": path, "shown": await show(s, path)}


def write_answer(s: Session, args: Args) -> JSONObject:
    """Save a run's answer (plan, N.N, text) where the achievement's state asks, as `run --write` does:
    atomically, inside the workspace, never over an existing file."""
    number, text = str_arg(args, 1), str_arg(args, 2)
    if number is None or text is None:
        raise UserError("expected a plan, an achievement number and the text", code="bad-params")
    result = s.engine.generate(plan_arg(args), achievement=number)
    path = save_answer(s.engine, result, text, force=False)
    s.engine.changed([path])
    s.refresh([path])
    return {"path": path}
