"""`perfd new NAME`: start a plan from a template (its PLAN file, its folders, a first achievement).

The plan is built in a hidden folder beside where it goes and then takes its name in one rename, so a
watcher or a status sees no plan or the whole plan, never half of one. Nothing is overwritten: the
name is claimed with mkdir, which fails when anything (a folder, a file, a link) has it already, and no
link is followed on the way (the plans folder must stay inside the workspace once links are resolved).
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile

from perfd.engine.errors import UserError
from perfd.engine.workspace import display_path
from perfd.fsutil import write_atomic

# A plan's name is a folder name and part of every file name of the plan: letters, digits, - _ .
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def template(name: str, title: str, today: datetime.date) -> str:
    """The PLAN file of a new plan: every section perfd reads, one achievement to start with."""
    return f"""# PLAN: {title}

**Status**: Planning
**Created**: {today.isoformat()}
**Goal**: (one sentence: what is true when this plan is done)

## 🎯 Goal

(What this plan delivers, and why.)

## 📋 Achievement Index

**Priority 1: FOUNDATION (HIGH)**

- Achievement 1.1: First achievement

(Add one line per achievement: `- Achievement 1.2: Title`. Numbers are `<priority>.<n>`.)

## 📋 Achievements

**Achievement 1.1**: First achievement (1-2h)

**Goal**: (what this achievement delivers)

**Done when**: (how a reviewer knows it is done)

## 📝 Current Status & Handoff

**⏳ Next: Achievement 1.1**

(perfd reads the state from the files: subplans/SUBPLAN_{name}_11.md, then
execution/EXECUTION_TASK_{name}_11_01.md, then execution/feedbacks/APPROVED_11.md.)
"""


def new_plan(root: str, plans_dir: str, name: str, *, title: str | None = None,
             today: datetime.date | None = None) -> str:
    """Create plan `name` under `plans_dir` (inside the workspace `root`); the PLAN file's path.

    A UserError, and nothing written, when the name is no plan name, when anything has that name
    already, or when the plans folder leads outside the workspace.
    """
    if name.startswith("@"):
        name = name[1:]
    if name.startswith("PLAN_"):
        name = name[5:]
    if not _NAME_RE.match(name) or ".." in name:
        raise UserError(f"not a plan name: {name!r}",
                        hint="use letters, digits, '-', '_' and '.', e.g. perfd new PARSER-REWRITE", code="bad-name")
    root_real = os.path.realpath(root)
    os.makedirs(plans_dir, exist_ok=True)
    real = os.path.realpath(plans_dir)
    if real != root_real and not real.startswith(root_real + os.sep):
        raise UserError(f"{plans_dir} leads outside the workspace {root}", code="outside-workspace")
    target = os.path.join(real, name)
    shown = display_path(root_real, target)
    if os.path.lexists(target):
        raise UserError(f"{shown} exists already: nothing written", hint="choose another name", code="exists")
    text = template(name, title or name.replace("-", " ").replace("_", " ").strip(), today or datetime.date.today())
    tmp = tempfile.mkdtemp(prefix=".perfd-new-", dir=real)  # hidden: discovery skips it
    try:
        for sub in ("subplans", "execution", os.path.join("execution", "feedbacks")):
            os.mkdir(os.path.join(tmp, sub))
        write_atomic(os.path.join(tmp, f"PLAN_{name}.md"), text)
        os.chmod(tmp, 0o755 & ~_umask())
        try:
            os.mkdir(target)  # claims the name: fails on any existing entry, a dangling link included
        except FileExistsError:
            raise UserError(f"{shown} exists already: nothing written", hint="choose another name",
                            code="exists") from None
        os.rename(tmp, target)  # replaces the empty folder just claimed: the whole plan appears at once
        tmp = ""
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return os.path.join(target, f"PLAN_{name}.md")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
