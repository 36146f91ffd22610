"""Which plan owns a path: the PLAN format's rule, in one place.

Pure functions of names and real paths (no folder is read here): the
Workspace lists the plans, and asks this module whose a file is, both when
it collects a plan's files and when a caller (the language server, the
watcher, the command line) asks which plan a path belongs to.

Layouts (see PLAN-FORMAT.md): a feature folder owns everything under it; a
loose PLAN file shares its folder (the plans folder, or a grouping folder
beside plan folders) and owns the files there that carry its exact name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection

import msgspec

# A plan's files by name; `feat` is the feature name the file carries, if any.
SUBPLAN_RE = re.compile(r"^SUBPLAN_(?:(?P<feat>.+?)_)?(?P<nn>\d{2,4})\.md$")
EXECUTION_RE = re.compile(r"^EXECUTION_TASK_(?:(?P<feat>.+?)_)?(?P<nn>\d{2,4})_(?P<mm>\d{2,3})\.md$")
FEEDBACK_RE = re.compile(r"^(?P<kind>APPROVED|FIX)_(?P<nn>\d{2,4})\.md$")
# A review file flat beside a loose plan, carrying its name: APPROVED_<NAME>_<NN>.md.
NAMED_FEEDBACK_RE = re.compile(r"^(?P<kind>APPROVED|FIX)_(?P<feat>.+)_(?P<nn>\d{2,4})\.md$")
# Review files as they may sit flat beside a loose plan: with or without its name.
_FLAT_REVIEW_RE = re.compile(r"^(?:APPROVED|FIX)_(?:(?P<feat>.+?)_)?\d{2,4}(?:_RESOLUTION)?\.md$")


class PlanRef(msgspec.Struct, frozen=True):
    name: str  # the feature name: folder name, or PLAN_<name>.md for loose plans
    folder: str  # its feature folder; for a loose plan, the folder it shares
    path: str  # the PLAN file
    # A loose PLAN file: it sits in a folder it does not own (the plans folder, or a
    # grouping folder beside plan folders), and its files sit flat beside it carrying its name.
    loose: bool = False
    # The grouping folders between the plans folder and the plan, "/"-joined ("a_paused",
    # "a_real/2025"); "" for a plan directly in the plans folder.
    group: str = ""


def loose_owner(name: str, loose: Collection[str]) -> str | None:
    """The loose plan a file directly in a shared folder belongs to (its name), if any.

    `name` is the file's name; `loose` the names of the loose plans in that
    folder. A file belongs to the plan whose exact name it carries:
    `PLAN_<NAME>.md`, `SUBPLAN_<NAME>_<NN>.md`, `EXECUTION_TASK_<NAME>_<NN>_<MM>.md`,
    `APPROVED_<NAME>_<NN>.md`, `FIX_<NAME>_<NN>.md` (so `SUBPLAN_<NAME>-RESTRUCTURING_01.md`
    is not `<NAME>`'s). Review files and parallel.json that carry no name belong
    to the folder's only loose plan, and to none when several share the folder.
    Anything else (notes, folders, a SUBPLAN without a name) belongs to none.
    """
    if name.startswith("PLAN_") and name.endswith(".md"):
        return name[5:-3] if name[5:-3] in loose else None
    if name.startswith("SUBPLAN_"):
        m = SUBPLAN_RE.match(name)
    elif name.startswith("EXECUTION_TASK_"):
        m = EXECUTION_RE.match(name)
    elif name.startswith(("APPROVED_", "FIX_")):
        m = _FLAT_REVIEW_RE.match(name)
        if m is not None and m.group("feat") is None:
            return _only(loose)
    elif name == "parallel.json":
        return _only(loose)
    else:
        return None
    feat = m.group("feat") if m is not None else None
    return feat if feat is not None and feat in loose else None


def _only(names: Collection[str]) -> str | None:
    return next(iter(names)) if len(names) == 1 else None


class PlanIndex:
    """One list of plans, by real path: "which plan owns this path" in a few dictionary lookups."""

    def __init__(self, plans: tuple[PlanRef, ...]) -> None:
        self.plans = plans
        self.plan_files: list[tuple[str, PlanRef]] = []
        self.by_plan_file: dict[str, PlanRef] = {}
        self.by_folder: dict[str, PlanRef] = {}
        self.loose: dict[str, dict[str, PlanRef]] = {}  # real shared folder -> its loose plans by name
        for p in plans:
            real = os.path.realpath(p.path)
            self.plan_files.append((real, p))
            self.by_plan_file.setdefault(real, p)
            folder = os.path.realpath(p.folder)
            if p.loose:
                self.loose.setdefault(folder, {}).setdefault(p.name, p)
            else:
                self.by_folder.setdefault(folder, p)

    def owner(self, real: str) -> PlanRef | None:
        """The plan owning `real` (a path with symlinks resolved); see Workspace.plan_for_path."""
        hit = self.by_plan_file.get(real)
        if hit is not None:
            return hit
        parent = os.path.dirname(real)
        loose = self.loose.get(parent)
        if loose:
            name = loose_owner(os.path.basename(real), loose)
            if name is not None:
                return loose[name]
        # The nearest feature folder holding the path (or the path itself): the deepest wins.
        d = real
        while True:
            plan = self.by_folder.get(d)
            if plan is not None:
                return plan
            up = os.path.dirname(d)
            if up == d:
                return None
            d = up
