"""New review-cycle files written from a template: the SUBPLAN an achievement starts with.

Editors offer it as a code action ("Create SUBPLAN for N.N"). The file goes
where `perfd run --write` would put the model's SUBPLAN (the state's write
path), under the same rules: inside the workspace once symlinks are resolved,
written atomically, never over an existing file. The template is
`scaffold_subplan` (built in, or `.perfd/templates/scaffold_subplan.md`).
"""

from __future__ import annotations

import datetime
import os

import msgspec

from perfd.app.run import check_writable
from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.plan_parser import nn_of
from perfd.engine.prompts import render
from perfd.engine.workspace import display_path

TEMPLATE = "scaffold_subplan"


class Scaffold(msgspec.Struct, frozen=True, kw_only=True):
    """A file to create: where, and its text."""

    path: str
    text: str


def subplan_scaffold(engine: Engine, plan: str, number: str, *, today: datetime.date | None = None) -> Scaffold:
    """The SUBPLAN for achievement `number` of `plan` (@NAME or path), not yet written.

    A UserError when the achievement is unknown, already has a SUBPLAN (or is
    past that step), or when its file would exist or leave the workspace.
    """
    result = engine.generate(plan, achievement=number)
    if result.state != "no_subplan":
        st = engine.plan_status(plan)
        ach = next((a for a in st.achievements if a.number == number), None)
        where = f" ({display_path(engine.root, ach.subplan)})" if ach is not None and ach.subplan else ""
        raise UserError(f"achievement {number} of @{result.plan} has a SUBPLAN already{where}; state {result.state}",
                        code="has-subplan")
    path = check_writable(engine, result, force=False)
    st = engine.plan_status(plan)
    ach = next(a for a in st.achievements if a.number == number)
    body = f"{ach.body_line}-{ach.body_end}" if ach.body_line else f"{ach.index_line} (index entry)"
    deps = ", ".join(ach.dependencies)
    values = {
        "number": ach.number,
        "nn": nn_of(ach.number),
        "title": ach.title,
        "plan": st.plan,
        "plan_title": st.title or st.plan,
        "plan_path": display_path(engine.root, st.path),
        "body_lines": body,
        "dependencies": deps or "(none)",
        "dependencies_line": f"\nDepends on achievements {deps}." if deps else "",
        "date": (today or datetime.date.today()).isoformat(),
    }
    template, _origin, _outside = engine.templates.get(TEMPLATE)  # an override leading out is not read
    text, _unknown = render(template, values)
    return Scaffold(path=path, text=text if text.endswith("\n") else text + "\n")


def create_subplan(engine: Engine, plan: str, number: str) -> str:
    """Write the SUBPLAN scaffold of `number`; its path. Never overwrites (a UserError says so)."""
    from perfd.fsutil import FileExists, write_under

    scaffold = subplan_scaffold(engine, plan, number)
    try:
        # Every folder opened without following links: a folder swapped for one meanwhile fails the write.
        write_under(engine.root, os.path.relpath(engine.check_inside(scaffold.path), engine.root), scaffold.text,
                    force=False)
    except FileExists:  # it appeared since the check: still never overwritten
        raise UserError(f"{display_path(engine.root, scaffold.path)} exists; not overwritten",
                        code="file-exists") from None
    except OSError as exc:
        raise UserError(f"cannot write {display_path(engine.root, scaffold.path)}: {exc.strerror}",
                        code="write-failed") from None
    engine.changed([scaffold.path])  # the editors' next answer sees it before the watcher does
    return scaffold.path
