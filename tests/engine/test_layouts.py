"""Layouts perfd reads, each as a synthetic workspace: the same plan gives the same answer in every one,
and every write path perfd names is a promise (writing that file moves the state on)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.types import PlanStatus

from engine_helpers import plan_text, work_text

NAME = "LAY"
NUMS = ["1.1", "1.2", "2.1"]
LAYOUTS = ["folder", "grouped", "loose", "loose-in-group", "root", "archive", "root-archived-subplans"]


class Layout:
    """Where one layout keeps a plan's files (`root` is the workspace root)."""

    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        plans = root / "work-space" / "plans"
        plans.mkdir(parents=True, exist_ok=True)
        self.flat = kind in ("loose", "loose-in-group", "root", "root-archived-subplans")
        if kind == "folder":
            self.folder = plans / NAME
        elif kind == "grouped":
            self.folder = plans / "a_paused" / NAME
        elif kind == "loose":
            self.folder = plans
        elif kind == "loose-in-group":
            self.folder = plans / "a_group"
            write(self.folder / "OTHER" / "PLAN_OTHER.md", plan_text(["1.1"]))  # makes a_group a grouping folder
        elif kind in ("root", "root-archived-subplans"):
            self.folder = root
        else:
            self.folder = root / "work-space" / "archive" / NAME
        self.plan_file = self.folder / "planning" / f"PLAN_{NAME}.md" if kind == "archive" \
            else self.folder / f"PLAN_{NAME}.md"

    def subplan(self, nn: str) -> Path:
        if self.kind == "root-archived-subplans":  # archived away from the plan, which is still in use
            return self.root / "work-space" / "archive" / NAME / "subplans" / f"SUBPLAN_{NAME}_{nn}.md"
        return (self.folder if self.flat else self.folder / "subplans") / f"SUBPLAN_{NAME}_{nn}.md"

    def execution(self, nn: str, mm: str) -> Path:
        return (self.folder if self.flat else self.folder / "execution") / f"EXECUTION_TASK_{NAME}_{nn}_{mm}.md"

    def review(self, kind: str, nn: str) -> Path:
        if self.flat:
            return self.folder / f"{kind}_{NAME}_{nn}.md"
        return self.folder / "execution" / "feedbacks" / f"{kind}_{nn}.md"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def answer(st: PlanStatus) -> tuple[object, ...]:
    return (st.next, st.state, st.done, st.total, st.source,
            tuple((a.number, a.state, a.planned_executions, len(a.executions)) for a in st.achievements))


# Per achievement: 0 nothing, 1 SUBPLAN, 2 an execution in progress, 3 its execution complete,
# 4 approved, 5 a FIX pending.
STAGES = st.lists(st.integers(0, 5), min_size=len(NUMS), max_size=len(NUMS))


def build(root: Path, kind: str, stages: list[int], review_mode: bool) -> Layout:
    lay = Layout(root, kind)
    write(lay.plan_file, plan_text(NUMS))
    if review_mode and not lay.flat:
        (lay.folder / "execution" / "feedbacks").mkdir(parents=True, exist_ok=True)
    for num, stage in zip(NUMS, stages):
        nn = num.replace(".", "")
        if stage >= 1:
            write(lay.subplan(nn), work_text("subplan", num, "In Progress", planned=[f"{nn}_01"]))
        if stage in (2, 3):
            write(lay.execution(nn, "01"), work_text("execution", num, "✅ Complete" if stage == 3 else "In Progress"))
        if stage == 4:
            write(lay.review("APPROVED", nn), f"# APPROVED: Achievement {num}\n")
        if stage == 5:
            write(lay.review("FIX", nn), f"# FIX: Achievement {num}\n\n## Critical Issues\n\n1. Broken\n")
    return lay


@settings(max_examples=25, deadline=None)
@given(stages=STAGES)
def test_moving_a_plan_between_layouts_never_changes_its_answer(stages: list[int]) -> None:
    answers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in LAYOUTS:
            root = Path(tmp) / kind
            build(root, kind, stages, review_mode=False)
            eng = Engine(str(root))
            assert [p.name for p in eng.workspace.plans() if p.name == NAME] == [NAME], kind
            answers[kind] = answer(eng.plan_status("@" + NAME))
    assert len(set(answers.values())) == 1, answers


def _steps(eng: Engine, seen: list[tuple[str, str | None]]) -> None:
    """Follow the write paths of the next achievement until it names none; each write moves it on."""
    for _ in range(8):
        g = eng.generate("@" + NAME)
        seen.append((g.state, g.write_path and os.path.basename(g.write_path)))
        if g.write_path is None:
            return
        assert not os.path.exists(g.write_path), g.write_path
        num = g.achievement
        assert num is not None
        if g.state == "no_subplan":
            nn = num.replace(".", "")
            text = work_text("subplan", num, "In Progress", planned=[f"{nn}_01", f"{nn}_02"])
        elif g.state in ("subplan_no_execution", "create_next_execution"):
            text = work_text("execution", num, "✅ Complete")
        else:
            text = "# FIX resolution\n\nFixed.\n"
        before = g.state
        write(Path(g.write_path), text)
        after = eng.plan_status("@" + NAME)
        now = next(a for a in after.achievements if a.number == num)
        assert now.state != before, (before, g.write_path)
        assert after == Engine(eng.root).plan_status("@" + NAME)  # what a fresh engine reads too


@pytest.mark.parametrize("kind", LAYOUTS)
def test_every_write_path_moves_the_state_on(tmp_path: Path, kind: str) -> None:
    lay = build(tmp_path, kind, [0, 0, 0], review_mode=True)
    eng = Engine(str(tmp_path))
    seen: list[tuple[str, str | None]] = []
    _steps(eng, seen)
    assert [s for s, _w in seen] == ["no_subplan", "subplan_no_execution", "create_next_execution",
                                     "subplan_all_executed"]
    # A review asks for fixes: its resolution, where perfd names it, answers it.
    write(lay.review("FIX", "11"), "# FIX: Achievement 1.1\n\n## Critical Issues\n\n1. Broken\n")
    seen = []
    _steps(eng, seen)
    assert seen[0][0] == "fix_pending" and seen[0][1] is not None and seen[0][1].endswith("_RESOLUTION.md")
    assert seen[-1][0] == "subplan_all_executed"
    write(lay.review("APPROVED", "11"), "# APPROVED: Achievement 1.1\n")
    assert eng.generate("@" + NAME).achievement == "1.2"


def test_the_loose_plans_write_path_is_beside_it(tmp_path: Path) -> None:
    lay = build(tmp_path, "loose", [0, 0, 0], review_mode=False)
    g = Engine(str(tmp_path)).generate("@" + NAME)
    assert g.write_path == str(lay.folder / f"SUBPLAN_{NAME}_11.md")


# --- layouts found -----------------------------------------------------------------------------


def test_root_plans_archive_plans_and_watched_folders(tmp_path: Path) -> None:
    build(tmp_path, "root", [1, 0, 0], review_mode=False)
    write(tmp_path / "work-space" / "archive" / "OLD" / "planning" / "PLAN_OLD.md", plan_text(["1.1"], done_index=["1.1"]))
    write(tmp_path / "work-space" / "plans" / "NEW" / "PLAN_NEW.md", plan_text(["1.1"]))
    write(tmp_path / "README.md", "# readme\n")
    eng = Engine(str(tmp_path))
    got = {(p.name, p.group) for p in eng.workspace.plans()}
    assert got == {(NAME, "(root)"), ("OLD", "(archive)"), ("NEW", "")}
    folders = {(f.path, f.recursive) for f in eng.workspace.watched_folders()}
    assert folders == {(eng.workspace.plans_dir, True), (eng.root, False),
                       (os.path.join(eng.root, "work-space", "archive"), True)}
    assert eng.plan_status("@OLD").state == "plan_complete"
    assert eng.plan_for_path(str(tmp_path / f"SUBPLAN_{NAME}_11.md")).name == NAME  # type: ignore[union-attr]


def test_an_archive_location_elsewhere_in_the_workspace_is_read_and_watched(tmp_path: Path) -> None:
    lay = Layout(tmp_path, "folder")
    write(lay.plan_file, plan_text(NUMS, extra="## 📝 Archive Location\n\n`../../old/LAY/`"))
    write(tmp_path / "work-space" / "old" / "LAY" / f"SUBPLAN_{NAME}_11.md", work_text("subplan", "1.1", "✅ Complete"))
    write(tmp_path / "work-space" / "old" / "LAY" / "SUBPLAN_OTHER_12.md", work_text("subplan", "1.2", "✅ Complete"))
    eng = Engine(str(tmp_path))
    st = eng.plan_status("@" + NAME)
    assert {a.number: a.state for a in st.achievements}["1.1"] == "complete"
    assert {a.number: a.state for a in st.achievements}["1.2"] == "no_subplan"  # another plan's name: not its
    assert (os.path.join(eng.root, "work-space", "old", "LAY"), True) in \
        {(f.path, f.recursive) for f in eng.workspace.watched_folders()}


# --- documents named PLAN_ that are not plans ---------------------------------------------------------


@pytest.mark.parametrize("name,text,why", [
    ("PLAN_LAY_COMPLETION_SUMMARY.md", "# Completion\n\nEverything went well.\n", "name calls it a summary"),
    ("PLAN_X.md", "# Completion Summary: X\n\nAll done, see below.\n", "title calls it a summary"),
    ("PLAN_RETRO.md", "# PLAN: Retrospective of the parser work\n\nLessons.\n", "title calls it a retrospective"),
])
def test_a_summary_named_plan_is_listed_as_not_a_plan(tmp_path: Path, name: str, text: str, why: str) -> None:
    write(tmp_path / "work-space" / "plans" / name, text)
    write(tmp_path / "work-space" / "plans" / "NEW" / "PLAN_NEW.md", plan_text(["1.1"]))
    eng = Engine(str(tmp_path))
    others = [p for p in eng.status().plans if p.not_plan]
    assert len(others) == 1 and why in others[0].not_plan
    from perfd.app.commands import _render_workspace
    out = _render_workspace(eng.status())
    assert "not a plan: work-space/plans/" + name in out and "@" + name[5:-3] + " " not in out


def test_a_new_plan_with_no_achievements_stays_a_plan_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "work-space" / "plans" / "FRESH" / "PLAN_FRESH.md",
          "# PLAN: Fresh idea\n\n**Status**: Planning\n\n## 🎯 Goal\n\nSomething new.\n")
    eng = Engine(str(tmp_path))
    [p] = eng.status().plans
    assert (p.plan, p.total, p.not_plan) == ("FRESH", 0, "")
    from perfd.app.commands import _render_workspace
    assert "warning: @FRESH: no achievements read" in _render_workspace(eng.status())
    g = eng.generate("@FRESH")
    assert "read no achievements" in g.prompt and "- Achievement 1.1: Set up the project" in g.prompt
    assert "waits on a dependency" not in g.prompt


# --- names told apart by path -----------------------------------------------------------------------


def test_a_root_plan_and_its_archived_copy(tmp_path: Path) -> None:
    build(tmp_path, "root", [0, 0, 0], review_mode=False)
    write(tmp_path / "work-space" / "archive" / NAME / "planning" / f"PLAN_{NAME}.md",
          plan_text(NUMS, done_index=NUMS))
    eng = Engine(str(tmp_path))
    with pytest.raises(UserError) as ei:
        eng.resolve("@" + NAME)
    assert ei.value.hint is not None
    assert ei.value.hint.count("@") == 2 and "@./LAY" in ei.value.hint and "@archive/LAY" in ei.value.hint
    assert eng.resolve("@archive/LAY").path.endswith(os.path.join("planning", "PLAN_LAY.md"))
    assert eng.resolve("@./LAY").path == str(tmp_path / "PLAN_LAY.md")
    assert eng.resolve("@work-space/archive/PLAN_LAY").group == "(archive)"
    labels = sorted(p.label for p in eng.status().plans)
    assert labels == ["./LAY", "archive/LAY"]
    from perfd.app.commands import _render_workspace
    out = _render_workspace(eng.status())
    assert "@./LAY" in out and "@archive/LAY" in out
    with pytest.raises(UserError):
        eng.resolve("@nowhere/LAY")


def test_a_resolution_answers_only_the_fix_it_follows(tmp_path: Path) -> None:
    lay = build(tmp_path, "folder", [5, 0, 0], review_mode=True)  # 1.1: a FIX pending
    eng = Engine(str(tmp_path))
    fix = lay.review("FIX", "11")
    resolution = write(fix.parent / "FIX_11_RESOLUTION.md", "# Resolution\n")
    t = fix.stat().st_mtime
    os.utime(resolution, (t - 3600, t - 3600))  # a previous round's: the FIX came after it
    assert Engine(str(tmp_path)).plan_status("@" + NAME).achievements[0].state == "fix_pending"
    os.utime(resolution, (t + 1, t + 1))
    assert eng.plan_status("@" + NAME).achievements[0].state == "subplan_no_execution"
