"""Find the workspace, its plans, and the files that belong to each plan.

Every directory listing goes through the StatCache, so a warm lookup costs
one stat per folder: creating APPROVED_31.md changes the feedbacks folder's
mtime, and the next call sees it even before any watcher fires.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import NamedTuple

import msgspec

from perfd.suggest import closest
from perfd.engine.cache.cache import Inputs, StatCache, stat_key
from perfd.engine.errors import UserError
from perfd.engine.types import Problem
from perfd.engine.ownership import (EXECUTION_RE, FEEDBACK_RE, NAMED_FEEDBACK_RE, SUBPLAN_RE, PlanIndex,
                                    loose_owner)
from perfd.engine.ownership import PlanRef as PlanRef  # where callers have always found it
from perfd.paths import PLANS_DIR, find_workspace_root

DEFAULT_PLANS_DIR = PLANS_DIR
MAX_REF = 4096  # PATH_MAX: the longest plan reference (a name or a path) worth matching
# How deep grouping folders may nest under the plans folder (plans/a/b/c/d/<FEATURE>/):
# deep enough for real workspaces, and a bound on how far a stray tree is walked.
MAX_GROUP_DEPTH = 4
NAMES = "names"  # the cache's kind for a plan folder's listing (names inside the workspace, links leading out)
# Archived plans and plan files beside the plans folder (`work-space/archive/` for `work-space/plans/`):
# `archive/<FEATURE>/planning/PLAN_<FEATURE>.md` with sibling `subplans/`, `execution/`, `summary/`,
# or only the SUBPLANs and EXECUTION_TASKs of a plan still in use.
ARCHIVE_DIR = "archive"
ROOT_GROUP = "(root)"  # the group of a plan kept at the workspace root
ARCHIVE_GROUP = "(archive)"  # the group of a plan found in the archive folder
PLANNING_DIR = "planning"  # an archived plan's own folder: `<FEATURE>/planning/PLAN_<FEATURE>.md`


class WatchedFolder(NamedTuple):
    """A folder plan discovery reads: what a watcher must watch for perfd to see every change."""

    path: str
    recursive: bool  # the whole tree (the plans folder, the archive) or only its own entries (the root)

class FileRef(msgspec.Struct, frozen=True):
    path: str
    nn: str
    mm: str = ""
    feature: str | None = None
    archived: bool = False


class PlanFiles(msgspec.Struct, frozen=True):
    subplans: list[FileRef]
    executions: list[FileRef]
    approved: list[FileRef]
    fixes: list[FileRef]
    parallel: str | None
    has_feedback_folder: bool
    # Plan files (SUBPLAN, EXECUTION_TASK, APPROVED, FIX, parallel.json) that are
    # symlinks leading out of the workspace: never read, reported as problems.
    outside: list[str] = []
    # FIX_<NN>_RESOLUTION.md files (paths): a FIX answered by one waits on the next review, not on a fix.
    resolutions: list[str] = []


def find_root(start: str, plans_dir: str = DEFAULT_PLANS_DIR) -> str | None:
    """Walk up from `start` to the folder that holds `work-space/plans/` or perfd.toml."""
    return find_workspace_root(start, plans_dir)


def _inside(root: str, path: str) -> bool:
    """Whether `path` stays under `root` once symlinks are resolved."""
    if not os.path.islink(path):
        return True  # its parent was already checked
    try:
        real = os.path.realpath(path)
    except OSError:  # the link changed while it was read (EINVAL, ENOENT): not followed
        return False
    return real == root or real.startswith(root + os.sep)


_PLAN_FILE_PREFIXES = ("SUBPLAN_", "EXECUTION_TASK_", "APPROVED_", "FIX_", "parallel.json")


def _names_inside(root: str, note_links: Callable[[list[str]], None]) -> Callable[[str, list[str]],
                                                                               tuple[list[str], list[str]]]:
    """A folder scan: (names that stay inside `root`, plan files that are symlinks leading out of it).
    The symlinks kept (to a file or folder elsewhere in the workspace) go to `note_links`: a change behind one
    raises no event in this folder, so what is read through it is checked by stat.

    Cached with the folder's listing: a symlink cannot be retargeted in place, so
    replacing one changes the folder, and the scan runs again.
    """
    def scan(path: str, names: list[str]) -> tuple[list[str], list[str]]:
        keep: list[str] = []
        outside: list[str] = []
        links: list[str] = []
        for n in names:
            full = os.path.join(path, n)
            if not os.path.islink(full):
                keep.append(n)
            elif _inside(root, full):
                keep.append(n)
                links.append(full)
            elif n.startswith(_PLAN_FILE_PREFIXES):
                outside.append(n)
        if links:
            note_links(links)
        return keep, outside
    return scan


class Listing(msgspec.Struct, frozen=True):
    """What discovery needs of a shared folder (the plans folder, a grouping folder)."""

    plans: list[tuple[str, str]]  # loose PLAN files directly in it: (name, path)
    folders: list[str]  # its sub-folders (paths), inside the workspace
    links: frozenset[str] = frozenset()  # those of `plans` and `folders` that are symlinks


def _scan_plans_dir(root: str, path: str, names: list[str]) -> Listing:
    """The PLAN files and sub-folders directly in `path`.

    Entries that are symlinks leading out of the workspace are left out: a
    plan is served only from inside the workspace, whichever way it is named.
    """
    plans: list[tuple[str, str]] = []
    folders: list[str] = []
    links: set[str] = set()
    for name in names:
        if name.startswith("."):
            continue
        full = os.path.join(path, name)
        linked = os.path.islink(full)
        if linked and not _inside(root, full):
            continue
        if name.startswith("PLAN_") and name.endswith(".md"):
            plans.append((name[5:-3], full))
        elif os.path.isdir(full):
            folders.append(full)
        else:
            continue
        if linked:
            links.add(full)
    return Listing(plans, folders, frozenset(links))


def _scan_plan_folder(root: str, path: str, names: list[str]) -> tuple[str | None, list[str]]:
    """(the folder's own PLAN file, other PLAN_*.md files directly in it), inside the workspace only."""
    own = f"PLAN_{os.path.basename(path)}.md"
    plan_files = [n for n in names if n.startswith("PLAN_") and n.endswith(".md")
                  and _inside(root, os.path.join(path, n))]
    others = [n for n in plan_files if n != own]
    return (os.path.join(path, own) if own in plan_files else None), others


class Workspace:
    """The plans under one workspace root."""

    def __init__(self, root: str, cache: StatCache, *, plans_dir: str = DEFAULT_PLANS_DIR) -> None:
        self.root = os.path.realpath(root)
        self.plans_dir = os.path.join(self.root, plans_dir)
        self.cache = cache
        self._last_index: PlanIndex | None = None
        self._scan_names = _names_inside(self.root, cache.note_links)
        # Folders that discovery could not read, from the last plans() (status reports them).
        self.problems: list[Problem] = []
        self.archive_dir = os.path.join(os.path.dirname(self.plans_dir), ARCHIVE_DIR)
        # Archive folders outside every watched folder that a plan's "Archive Location" named.
        self._named_archives: set[str] = set()

    def watched_folders(self) -> tuple[WatchedFolder, ...]:
        """Every folder perfd reads plans and plan files from: the plans folder and the archive
        beside it (whole trees), the workspace root (its own entries: plans kept there, with
        their files flat beside them), and archive folders named by plans elsewhere."""
        out = [WatchedFolder(self.plans_dir, True), WatchedFolder(self.root, False)]
        if self._archive_listing() is not None:
            out.append(WatchedFolder(self.archive_dir, True))
        out.extend(WatchedFolder(p, True) for p in sorted(self._named_archives))
        return tuple(out)

    # -- discovery ----------------------------------------------------------------

    def _scan_plans_dir(self, path: str, names: list[str]) -> Listing:
        return _scan_plans_dir(self.root, path, names)

    def _scan_plan_folder(self, path: str, names: list[str]) -> tuple[str | None, list[str]]:
        own, others = _scan_plan_folder(self.root, path, names)
        if own is not None:
            self._inside(own)  # notes a symlinked PLAN file
        return own, others

    def _inside(self, path: str) -> bool:
        """`_inside`, noting symlinks for the cache: what lies behind one a watcher of the plans folder may not see."""
        if os.path.islink(path):
            self.cache.note_links((path,))
        return _inside(self.root, path)

    def plans(self) -> list[PlanRef]:
        """Every plan: feature folders, grouping folders (up to MAX_GROUP_DEPTH deep), loose PLAN files.

        A folder under the plans folder is a plan's feature folder when it holds
        its own PLAN_<folder>.md (or one PLAN file of another name and no plan
        folders below it); otherwise it is a grouping folder, looked into down
        to MAX_GROUP_DEPTH levels. A loose PLAN file sits in the plans folder or
        in a grouping folder (beside plan folders); either way it is a plan of
        its own, and the plan folders next to it stay plans. Unreadable folders
        are skipped.
        """
        found: list[PlanRef] = []
        self.problems = []
        real = os.path.realpath(self.plans_dir)
        seen = {real}
        self._discover(self.plans_dir, real, "", 0, found, seen=seen)
        # Plans kept at the workspace root (their files flat beside them), and the archive.
        try:
            at_root = self._listing(self.root).plans
        except OSError:
            at_root = []
        found.extend(PlanRef(name, self.root, p, loose=True, group=ROOT_GROUP) for name, p in at_root)
        arch_real = os.path.realpath(self.archive_dir)
        if arch_real not in seen and self._archive_listing() is not None and \
                (arch_real == self.root or arch_real.startswith(self.root + os.sep)):
            seen.add(arch_real)
            self._discover(self.archive_dir, arch_real, ARCHIVE_GROUP, 0, found, seen=seen)
        found.sort(key=lambda r: (r.name.lower(), r.group, r.path))
        return found

    def _discover(self, folder: str, real: str, group: str, depth: int, found: list[PlanRef], *,
                  seen: set[str]) -> None:
        """Plans in `folder` (real path `real`), a shared folder `depth` grouping levels below the plans folder.

        `seen`: real paths of the shared folders already walked, so that a
        symlinked grouping folder (a loop, or a second name for one) is walked once.
        """
        try:
            listing = self._listing(folder)
            if listing.links:
                self.cache.note_links(listing.links)
        except OSError as exc:
            if depth > 0 or os.path.exists(folder):  # no plans folder at all is not a problem
                self.problems.append(Problem("unreadable", f"cannot read folder: {exc.strerror}", "warning", folder))
            return
        found.extend(PlanRef(name, folder, p, loose=True, group=group) for name, p in listing.plans)
        may_group = depth < MAX_GROUP_DEPTH
        for sub in listing.folders:
            ref = self._plan_in(sub, may_group=may_group, depth=depth + 1)
            if ref is not None:
                found.append(msgspec.structs.replace(ref, group=group) if group else ref)
                continue
            if not may_group:
                continue
            name = os.path.basename(sub)
            sub_real = os.path.realpath(sub) if sub in listing.links else os.path.join(real, name)
            if sub_real in seen:
                continue
            seen.add(sub_real)
            self._discover(sub, sub_real, f"{group}/{name}" if group else name, depth + 1, found, seen=seen)

    def _listing(self, folder: str) -> Listing:
        """The PLAN files and sub-folders directly in `folder`; OSError if unreadable."""
        listing: Listing = self.cache.folder("plans-dir", folder, self._scan_plans_dir)
        return listing

    def _own_plan(self, folder: str) -> tuple[str | None, list[str]]:
        found: tuple[str | None, list[str]] = self.cache.folder("plan-folder", folder, self._scan_plan_folder)
        return found

    def _plan_in(self, folder: str, *, may_group: bool, depth: int = 1) -> PlanRef | None:
        """The plan whose feature folder is `folder` (`depth` levels below the plans folder), if any.

        `may_group`: `folder` may be a grouping folder, which holds plan folders
        (folders with their own PLAN_<folder>.md, at most MAX_GROUP_DEPTH levels
        below the plans folder) and perhaps a loose PLAN file.
        """
        try:
            own, others = self._own_plan(folder)
        except OSError:
            return None
        if own is not None:
            return PlanRef(os.path.basename(folder), folder, own)
        if len(others) == 1 and not (may_group and self._holds_plan_folders(folder, MAX_GROUP_DEPTH - depth)):
            # A folder whose single PLAN file is named differently still is that plan.
            return PlanRef(others[0][5:-3], folder, os.path.join(folder, others[0]))
        if not others:
            return self._planning_plan(folder)
        return None

    def _planning_plan(self, folder: str) -> PlanRef | None:
        """An archived plan kept as `<FEATURE>/planning/PLAN_<FEATURE>.md`: `<FEATURE>/` is its folder
        (its `subplans/`, `execution/` sit beside `planning/`)."""
        planning = os.path.join(folder, PLANNING_DIR)
        try:
            if planning not in self._listing(folder).folders:  # (cached: no stat while a watcher vouches)
                return None
        except OSError:
            return None
        try:
            _own, files = self._own_plan(planning)  # (its own would be PLAN_planning.md)
        except OSError:
            return None
        name = os.path.basename(folder)
        pick = f"PLAN_{name}.md" if f"PLAN_{name}.md" in files else (files[0] if len(files) == 1 else None)
        if pick is None:
            return None
        return PlanRef(pick[5:-3], folder, os.path.join(planning, pick))

    def _holds_plan_folders(self, folder: str, levels: int) -> bool:
        """Whether a plan folder (one with its own PLAN_<folder>.md) sits in `folder`, or in grouping
        folders below it down to `levels` more levels: then `folder` groups plans."""
        try:
            subs = self._listing(folder).folders
        except OSError:
            return False
        for sub in subs:
            try:
                if self._own_plan(sub)[0] is not None:
                    return True
            except OSError:
                continue
        if levels > 0:
            return any(self._holds_plan_folders(sub, levels - 1) for sub in subs)
        return False

    def _loose_names(self, folder: str) -> list[str]:
        """Names of the loose plans in a shared folder."""
        try:
            return [name for name, _p in self._listing(folder).plans]
        except OSError:
            return []

    # -- ownership: the one rule --------------------------------------------------

    def _index(self, listed: list[PlanRef] | None = None) -> PlanIndex:
        """The ownership index of the plans (`listed`: the plans as just listed, not listed again)."""
        plans = tuple(self.plans() if listed is None else listed)
        idx = self._last_index
        if idx is None or idx.plans != plans:
            idx = self._last_index = PlanIndex(plans)
        return idx

    def plan_for_path(self, path: str) -> PlanRef | None:
        """The plan that owns `path` (a file or a folder, existing or not), or None.

        - a PLAN file that is a plan: that plan;
        - in a feature folder (at any depth, the folder itself included): that
          plan; the deepest feature folder wins;
        - directly in a shared folder (the plans folder, a grouping folder) beside
          loose PLAN files: the loose plan whose exact name the file carries
          (`SUBPLAN_<NAME>_01.md`); an unnamed review file or parallel.json goes to
          the folder's only loose plan, else to none (see `loose_owner`);
        - anything else (a shared folder itself, notes beside loose plans, a path
          outside every plan or outside the workspace): None.

        Symlinks are resolved on both sides. Every caller that asks "whose is
        this path" (the language server, the watcher, the CLI's default plan,
        path arguments) asks this.
        """
        return self._index().owner(os.path.realpath(path))

    def plans_affected_by(self, paths: Iterable[str]) -> dict[str, tuple[PlanRef, list[str]]]:
        """Changed paths grouped by the plans whose answers they may change.

        plan path -> (the plan, the changed paths that touch it, as given). A path
        touches the plan that owns it (`plan_for_path`), and, as a folder whose
        listing changed (created, deleted, renamed), every plan whose PLAN file is
        inside it. Plans are those listed now: a deleted plan is not among them.
        """
        idx = self._index()
        out: dict[str, tuple[PlanRef, list[str]]] = {}
        for p in dict.fromkeys(paths):
            real = os.path.realpath(p)
            touched: dict[str, PlanRef] = {}
            owner = idx.owner(real)
            if owner is not None:
                touched[owner.path] = owner
            inside = real.rstrip(os.sep) + os.sep
            for plan_real, plan in idx.plan_files:
                if plan_real.startswith(inside):
                    touched.setdefault(plan.path, plan)
            for plan in touched.values():
                out.setdefault(plan.path, (plan, []))[1].append(p)
        return out

    def default_plan(self, cwd: str) -> PlanRef:
        """The plan to use when none is named: the plan that owns `cwd`, else the only plan.

        A UserError (listing the plans) when neither decides: `cwd` in no plan's
        folder (the workspace root, the plans folder, a grouping folder) and not
        exactly one plan. The plans are listed once.
        """
        plans = self.plans()
        owner = self._index(plans).owner(os.path.realpath(cwd))
        if owner is not None:
            return owner
        if len(plans) == 1:
            return plans[0]
        raise UserError("which plan? name one with @NAME",
                        hint=_list_hint(plans, self.refs(plans, plans)) if plans else
                        "no plans found under work-space/plans/")

    # -- naming -------------------------------------------------------------------

    def resolve(self, ref: str, *, cwd: str | None = None) -> PlanRef:
        """`@NAME`, a bare name, or a path -> the plan.

        A path (to a PLAN file, a plan's folder, or any file the plan owns, such
        as a SUBPLAN) names the plan that owns it (`plan_for_path`).

        Names resolve by exact folder name, then a unique case-insensitive
        prefix, then a unique substring. Ambiguity and unknown names are
        UserErrors that list the candidates.
        """
        if len(ref) > MAX_REF:  # no name or path is this long; matching one would only cost time
            raise UserError(f"plan name or path too long ({len(ref)} characters; at most {MAX_REF})",
                            code="unknown-plan")
        plans = self.plans()
        if not ref.startswith("@") and (os.sep in ref or ref.endswith(".md")):
            return self._resolve_path(ref, plans, cwd or os.getcwd())
        name = ref[1:] if ref.startswith("@") else ref
        if "/" in name:
            return self._resolve_suffix(name, plans)
        if name.startswith("PLAN_"):
            name = name[5:]
        if name.endswith(".md"):
            name = name[:-3]
        if not name:
            raise UserError("empty plan name", hint=_list_hint(plans, self.refs(plans, plans)), code="unknown-plan",
                            candidates=[p.name for p in plans])
        for match in (
            [p for p in plans if p.name == name],
            [p for p in plans if p.name.lower() == name.lower()],
            [p for p in plans if p.name.lower().startswith(name.lower())],
            [p for p in plans if name.lower() in p.name.lower()],
        ):
            if len(match) == 1:
                return match[0]
            if len(match) > 1:
                names = list(dict.fromkeys(self.refs(match, plans)))
                raise UserError(f"plan name @{name} is ambiguous: it matches {len(match)} plans",
                                hint="did you mean: " + ", ".join("@" + n for n in names),
                                code="ambiguous-plan", candidates=names)
        close = closest(name, [p.name for p in plans])
        raise UserError(f"unknown plan @{name}" + (f" (did you mean @{close}?)" if close else ""),
                        hint=_list_hint(plans, self.refs(plans, plans)), code="unknown-plan",
                        candidates=[p.name for p in plans])

    def _resolve_suffix(self, ref: str, plans: list[PlanRef]) -> PlanRef:
        """`@archive/NAME`, `@./NAME`, `@a_paused/NAME`: a plan named NAME whose place the folders
        before it name (`.` the workspace root; otherwise folders its path holds, in that order)."""
        parts = [p for p in ref.split("/") if p] or [""]
        where, name = parts[:-1], parts[-1]
        name = name[5:] if name.startswith("PLAN_") else name
        name = name[:-3] if name.endswith(".md") else name
        named = [p for p in plans if p.name == name] or [p for p in plans if p.name.lower() == name.lower()]
        match = [p for p in named if _placed(self.root, p, where)]
        if len(match) == 1:
            return match[0]
        shown_ref = "@" + ref
        if not match:
            raise UserError(f"unknown plan {shown_ref}", hint=_list_hint(plans, self.refs(plans, plans)),
                            code="unknown-plan", candidates=self.refs(plans, plans))
        names = self.refs(match, plans)
        raise UserError(f"plan name {shown_ref} is ambiguous: it matches {len(match)} plans",
                        hint="did you mean: " + ", ".join("@" + n for n in names),
                        code="ambiguous-plan", candidates=names)

    def refs(self, some: list[PlanRef], plans: list[PlanRef]) -> list[str]:
        """How to name each of `some` among `plans`: its name, or where another plan has the same name,
        the name after the first folder of its path that tells it apart (`archive/NAME`, `./NAME` at the
        workspace root)."""
        count: dict[str, int] = {}
        for p in plans:
            count[p.name] = count.get(p.name, 0) + 1
        return [self.label(p, plans) or p.name if count.get(p.name, 0) > 1 else p.name for p in some]

    def label(self, plan: PlanRef, plans: list[PlanRef]) -> str:
        """`plan`'s name with the folder that tells it apart, when another plan has its name; else ""."""
        twins = [p for p in plans if p.name == plan.name and p.path != plan.path]
        if not twins:
            return ""
        parts = _place(self.root, plan)
        if not parts:
            return f"./{plan.name}"
        # The first folder that tells it apart, past the folders every plan shares (`work-space`) and
        # the plan's own (its name, `planning`): `archive/NAME`, `a_paused/NAME`.
        shared = set(os.path.relpath(os.path.dirname(self.plans_dir), self.root).split(os.sep))
        for part in sorted(parts, key=lambda p: p in shared or p in (plan.name, PLANNING_DIR)):
            if not any(_placed(self.root, t, [part]) for t in twins):
                return f"{part}/{plan.name}"
        return "/".join(parts) + "/" + plan.name

    def _resolve_path(self, ref: str, plans: list[PlanRef], cwd: str) -> PlanRef:
        """A path names the plan that owns it: its PLAN file, its folder, or any file of it."""
        full = os.path.realpath(os.path.join(cwd, ref))
        self.check_inside(full, shown=ref)
        if not os.path.exists(full):
            raise UserError(f"no such file: {ref}", hint=_list_hint(plans, self.refs(plans, plans)), code="unknown-plan")
        owner = self._index(plans).owner(full)  # (`full` is a real path already)
        if owner is not None:
            return owner
        raise UserError(f"{ref} is not a plan of this workspace", hint=_list_hint(plans, self.refs(plans, plans)), code="unknown-plan",
                        candidates=[p.name for p in plans])

    def check_inside(self, path: str, *, shown: str | None = None) -> str:
        """The real path of `path`, or a UserError when it leaves the workspace (symlinks included)."""
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root + os.sep):
            raise UserError(f"{shown or path} is outside the workspace {self.root}",
                            hint="name plans with @NAME or a path under the workspace root", code="outside-workspace")
        return real

    # -- a plan's files -----------------------------------------------------------

    def files(self, plan: PlanRef, archive_location: str | None = None) -> PlanFiles:
        """SUBPLAN, EXECUTION_TASK, APPROVED and FIX files of a plan, wherever its layout puts them."""
        folder = plan.folder
        subplans: list[FileRef] = []
        executions: list[FileRef] = []
        approved: list[FileRef] = []
        fixes: list[FileRef] = []
        resolutions: list[str] = []
        parallel: str | None = None
        has_feedback = False
        outside: list[str] = []

        def take(path: str, names: list[str], archived: bool, only: str | None = None) -> None:
            # `only`: a folder other plans may share (an archive outside the feature folder): only
            # the files that carry this plan's name.
            for name in names:
                if only is not None and not _carries(name, only):
                    continue
                if name.startswith("SUBPLAN_"):
                    m = SUBPLAN_RE.match(name)
                    if m:
                        subplans.append(FileRef(os.path.join(path, name), m.group("nn"), "", m.group("feat"), archived))
                elif name.startswith("EXECUTION_TASK_"):
                    m = EXECUTION_RE.match(name)
                    if m:
                        executions.append(FileRef(os.path.join(path, name), m.group("nn"), m.group("mm"),
                                                  m.group("feat"), archived))
                elif name.startswith("APPROVED_") or name.startswith("FIX_"):
                    m = FEEDBACK_RE.match(name)  # FIX_31_RESOLUTION.md is not a new FIX
                    if m is None and plan.loose:  # beside a loose plan, with its name (kept by loose_owner)
                        m = NAMED_FEEDBACK_RE.match(name)
                    if m is None and name.endswith("_RESOLUTION.md") and name.startswith("FIX_") and \
                            _answers(path, name, names, self.cache.note):
                        resolutions.append(os.path.join(path, name))
                    if m:
                        ref = FileRef(os.path.join(path, name), m.group("nn"))
                        (approved if m.group("kind") == "APPROVED" else fixes).append(ref)

        names = self._names(folder, outside)
        if plan.loose:
            # A shared folder: only the files the ownership rule gives this plan.
            sharing = self._loose_names(folder)
            names = [n for n in names if loose_owner(n, sharing) == plan.name]
        take(folder, names, False)
        if "parallel.json" in names:
            parallel = os.path.join(folder, "parallel.json")
        if not plan.loose:
            for sub in ("subplans", "execution"):
                if sub in names and self._inside(os.path.join(folder, sub)):
                    take(os.path.join(folder, sub), self._names(os.path.join(folder, sub), outside), False)
            fb = os.path.join(folder, "execution", "feedbacks")
            fb_ok = "execution" in names and self._inside(os.path.join(folder, "execution")) \
                and self._inside(fb)
            fb_names = self._listed(fb, outside) if fb_ok else None
            if fb_names is not None:
                # A folder set up for reviews (empty, or review files only) says the plan keeps them;
                # one holding only other documents (an `EXECUTION_ANALYSIS_...-REVIEW.md`) does not.
                has_feedback = all(n.startswith(("APPROVED_", "FIX_")) or n.startswith(".") for n in fb_names)
                take(fb, fb_names, False)
            archives = [os.path.join(folder, n) for n in names
                        if n.lower().endswith("-archive") and self._inside(os.path.join(folder, n))]
            if archive_location:
                loc = os.path.normpath(os.path.join(folder, archive_location))
                if loc.startswith(folder + os.sep) and loc not in archives and os.path.isdir(loc) \
                        and self._inside(loc):
                    archives.append(loc)
            for arch in archives:
                self._walk_archive(arch, take, depth=3)
        # Archived away from the plan: `archive/<NAME>/` (when it is no plan of its own), or an
        # "Archive Location" elsewhere in the workspace; only files carrying the plan's name.
        for arch in self._away_archives(plan, archive_location):
            self._walk_archive(arch, lambda p, n, a: take(p, n, a, plan.name), depth=3)
        if plan.loose and outside:
            sharing = self._loose_names(folder)
            outside = [p for p in outside if loose_owner(os.path.basename(p), sharing) == plan.name]
        return PlanFiles(subplans, executions, approved, fixes, parallel, has_feedback or bool(approved or fixes),
                         outside, resolutions)

    def _archive_listing(self) -> Listing | None:
        """The archive folder's listing (through the cache), None when there is none."""
        try:
            return self._listing(self.archive_dir)
        except OSError:
            return None

    def _away_archives(self, plan: PlanRef, archive_location: str | None) -> list[str]:
        """Archive folders of `plan` outside its own folder (see files)."""
        out: list[str] = []
        mine = os.path.join(self.archive_dir, plan.name)
        arch = self._archive_listing()
        if arch is not None and mine in arch.folders and not plan.path.startswith(mine + os.sep) \
                and self._inside(self.archive_dir) and self._plan_in(mine, may_group=False) is None:
            out.append(mine)
        if archive_location:
            loc = os.path.normpath(os.path.join(os.path.dirname(plan.path), archive_location))
            real = os.path.realpath(loc)
            shared = {os.path.realpath(p) for p in (self.root, self.plans_dir, plan.folder)}
            if real.startswith(self.root + os.sep) and real not in shared and loc not in out and \
                    not (not plan.loose and loc.startswith(plan.folder + os.sep)) and os.path.isdir(loc) and \
                    self._index().owner(real) in (None, plan):  # another plan's folder holds its own files
                out.append(loc)
                if not real.startswith(os.path.realpath(self.plans_dir) + os.sep) and \
                        not real.startswith(os.path.realpath(self.archive_dir) + os.sep):
                    self._named_archives.add(real)
        return out

    def _names(self, folder: str, outside: list[str] | None = None) -> list[str]:
        """The names in `folder` that stay inside the workspace; plan files that leave it go to `outside`."""
        return self._listed(folder, outside) or []

    def _listed(self, folder: str, outside: list[str] | None = None) -> list[str] | None:
        """The names in `folder` that stay inside the workspace, through the cache; None when it is no
        readable folder. Plan files there that are symlinks leading out go to `outside`."""
        try:
            got: tuple[list[str], list[str]] = self.cache.folder(NAMES, folder, self._scan_names)
        except OSError:
            return None
        names, out = got
        if out and outside is not None:
            outside.extend(os.path.join(folder, n) for n in out)
        return names

    def _walk_archive(self, folder: str, take: Callable[[str, list[str], bool], None], depth: int) -> None:
        names = self._names(folder)  # archived files leaving the workspace are skipped quietly
        take(folder, names, True)
        if depth <= 0:
            return
        for n in names:
            full = os.path.join(folder, n)
            if not n.startswith(".") and "." not in n and os.path.isdir(full) and self._inside(full):
                self._walk_archive(full, take, depth - 1)


def _answers(folder: str, resolution: str, names: list[str], note: Callable[[Inputs], None]) -> bool:
    """Whether a FIX resolution answers the FIX beside it: written after it (a FIX written again after
    its resolution is a new review round, pending again). Resolutions are few: two stats each, noted as
    inputs of the answer being worked out (a FIX rewritten in place changes no folder listing)."""
    fix = resolution[: -len("_RESOLUTION.md")] + ".md"
    if fix not in names:
        return True
    stats = []
    for path in (os.path.join(folder, resolution), os.path.join(folder, fix)):
        try:
            st: os.stat_result | None = os.stat(path)
        except OSError:
            st = None
        stats.append(st)
        note([(path, stat_key(st) if st is not None else None)])
    res_st, fix_st = stats
    return res_st is not None and fix_st is not None and res_st.st_mtime_ns >= fix_st.st_mtime_ns


def _carries(name: str, feature: str) -> bool:
    """Whether a plan file's name carries `feature` (`SUBPLAN_<feature>_01.md`, ...)."""
    for rx in (SUBPLAN_RE, EXECUTION_RE, NAMED_FEEDBACK_RE):
        m = rx.match(name)
        if m is not None:
            return m.group("feat") == feature
    return False


def display_path(root: str, path: str) -> str:
    """`path` as people should read it: relative to the workspace root, absolute when outside it."""
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _place(root: str, plan: PlanRef) -> list[str]:
    """The folders from the workspace root to the plan's PLAN file."""
    rel = os.path.relpath(os.path.dirname(plan.path), root)
    return [] if rel == "." else rel.split(os.sep)


def _placed(root: str, plan: PlanRef, where: list[str]) -> bool:
    """Whether the folders `where` name the plan's place: `.` the workspace root, otherwise folders its
    path holds one after the other."""
    parts = _place(root, plan)
    if where == ["."]:
        return not parts
    k = len(where)
    return any(parts[i : i + k] == where for i in range(len(parts) - k + 1)) if k else True


def _list_hint(plans: list[PlanRef], refs: list[str] | None = None) -> str:
    if not plans:
        return "no plans found under work-space/plans/ (use --root to choose the workspace)"
    names = refs if refs is not None else [p.name for p in plans]
    return "available plans: " + ", ".join("@" + n for n in dict.fromkeys(names))
