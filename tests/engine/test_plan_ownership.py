"""Which plan owns a path, and the default plan for a folder.

Today three callers each answer "which plan owns this path" by a rule of their
own: Engine.plan_for_path (the language server), watcher.affected_plans (the
daemon's watcher) and commands._default_plan (the CLI, when no plan is named).
These tests pin what each answers on synthetic workspaces, before the rule
moves into the engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError

from engine_helpers import WS, plan_text, work_text


def mixed(ws: WS) -> WS:
    """Feature folders, a grouping folder, and two flat plans sharing the plans folder."""
    ws.plan("FEAT", ["1.1"])
    ws.subplan("FEAT", "1.1")
    ws.execution("FEAT", "1.1")
    ws.approved("FEAT", "1.1")
    ws.parallel("FEAT", {"1.1": []})
    ws.write(ws.folder("FEAT") / "documentation" / "PLAN_NOTES.md", plan_text(["9.1"]))
    ws.write(ws.folder("FEAT") / "feat-archive" / "subplans" / "SUBPLAN_FEAT_01.md", work_text("subplan", "1.1", "Done"))
    ws.plan("FEAT-RESTRUCTURING", ["1.1"])
    ws.plan("PAUSED", ["1.1"], group="a_paused")
    ws.subplan("PAUSED", "1.1", group="a_paused")
    ws.write(ws.plans / "a_paused" / "README.md", "# paused plans\n")
    ws.write(ws.plans / "PLAN_FA.md", plan_text(["1.1"]))
    ws.write(ws.plans / "PLAN_FB.md", plan_text(["1.1"]))
    ws.write(ws.plans / "SUBPLAN_FA_11.md", work_text("subplan", "1.1", "In Progress"))
    ws.write(ws.plans / "EXECUTION_TASK_FA_11_01.md", work_text("execution", "1.1", "In Progress"))
    ws.write(ws.plans / "SUBPLAN_FB_11.md", work_text("subplan", "1.1", "In Progress"))
    ws.write(ws.plans / "APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    ws.write(ws.plans / "notes.md", "# notes\n")
    ws.write(ws.root / "README.md", "# the project\n")
    return ws


def rel(ws: WS, path: str | None) -> str | None:
    return None if path is None else os.path.relpath(path, ws.plans)


def full(ws: WS, rel_path: str) -> str:
    return os.path.realpath(os.path.join(ws.plans, rel_path))


# Paths (relative to the plans folder) and the plan each caller credits today.
# Columns: Engine.plan_for_path, watcher.affected_plans (the plans a change there recomputes).
TODAY = [
    ("FEAT/PLAN_FEAT.md", "FEAT", ["FEAT"]),
    ("FEAT/subplans/SUBPLAN_FEAT_11.md", "FEAT", ["FEAT"]),
    ("FEAT/execution/EXECUTION_TASK_FEAT_11_01.md", "FEAT", ["FEAT"]),
    ("FEAT/execution/feedbacks/APPROVED_11.md", "FEAT", ["FEAT"]),
    ("FEAT/parallel.json", "FEAT", ["FEAT"]),
    ("FEAT/documentation/PLAN_NOTES.md", "FEAT", ["FEAT"]),
    ("FEAT/feat-archive/subplans/SUBPLAN_FEAT_01.md", "FEAT", ["FEAT"]),
    # The folder itself: plan_for_path does not count it; for the watcher it is also a
    # non-PLAN entry of the plans folder, which it credits to every flat plan there.
    ("FEAT", None, ["FA", "FB", "FEAT"]),
    ("FEAT/subplans", "FEAT", ["FEAT"]),
    ("FEAT-RESTRUCTURING/PLAN_FEAT-RESTRUCTURING.md", "FEAT-RESTRUCTURING", ["FEAT-RESTRUCTURING"]),
    ("a_paused/PAUSED/PLAN_PAUSED.md", "PAUSED", ["PAUSED"]),
    ("a_paused/PAUSED/subplans/SUBPLAN_PAUSED_11.md", "PAUSED", ["PAUSED"]),
    ("a_paused/README.md", None, []),
    # A grouping folder's listing: the plans inside it are not counted, the flat plans are.
    ("a_paused", None, ["FA", "FB"]),
    ("PLAN_FA.md", "FA", ["FA"]),
    ("PLAN_FB.md", "FB", ["FB"]),
    # Flat files: plan_for_path credits none; the watcher credits every flat plan, whatever the name.
    ("SUBPLAN_FA_11.md", None, ["FA", "FB"]),
    ("EXECUTION_TASK_FA_11_01.md", None, ["FA", "FB"]),
    ("SUBPLAN_FB_11.md", None, ["FA", "FB"]),
    ("APPROVED_11.md", None, ["FA", "FB"]),
    ("notes.md", None, ["FA", "FB"]),
    (".", None, []),  # the plans folder itself
    ("../../README.md", None, []),
]


@pytest.mark.parametrize(("path", "owner", "_affected"), TODAY, ids=[t[0] for t in TODAY])
def test_today_plan_for_path(ws: WS, path: str, owner: str | None, _affected: list[str]) -> None:
    eng = mixed(ws).engine()
    got = eng.plan_for_path(full(ws, path))
    assert (got.name if got else None) == owner


def affected_today(eng: Engine, paths: set[str]) -> dict[str, list[str]]:
    from perfd.daemon.watcher import affected_plans

    got = affected_plans(SimpleNamespace(engine=eng), paths)  # type: ignore[arg-type]
    return {ref.name: sorted(changed) for ref, changed in got.values()}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("path", "_owner", "affected"), TODAY, ids=[t[0] for t in TODAY])
def test_today_watcher_affected_plans(ws: WS, path: str, _owner: str | None, affected: list[str]) -> None:
    eng = mixed(ws).engine()
    p = full(ws, path)
    assert affected_today(eng, {p}) == {name: [p] for name in affected}


def test_today_watcher_groups_changes_by_plan(ws: WS) -> None:
    eng = mixed(ws).engine()
    a, b, c = (full(ws, p) for p in ("FEAT/PLAN_FEAT.md", "FEAT/subplans/SUBPLAN_FEAT_11.md", "PLAN_FA.md"))
    assert affected_today(eng, {a, b, c}) == {"FEAT": sorted([a, b]), "FA": [c]}


def test_today_watcher_counts_a_deleted_file(ws: WS) -> None:
    mixed(ws)
    gone = ws.folder("FEAT") / "subplans" / "SUBPLAN_FEAT_11.md"
    gone.unlink()
    assert affected_today(ws.engine(), {str(gone)}) == {"FEAT": [str(gone)]}


# --- the default plan (no plan named on the command line) -----------------------------------------


def default_today(eng: Engine, cwd: str) -> str:
    from perfd.app.commands import _default_plan

    return _default_plan(eng, cwd)


@pytest.mark.parametrize(("cwd", "expected"), [
    ("FEAT", "FEAT/PLAN_FEAT.md"),
    ("FEAT/execution/feedbacks", "FEAT/PLAN_FEAT.md"),
    ("FEAT/documentation", "FEAT/PLAN_FEAT.md"),
    ("a_paused/PAUSED/subplans", "a_paused/PAUSED/PLAN_PAUSED.md"),
])
def test_today_default_plan_is_the_plan_whose_folder_holds_cwd(ws: WS, cwd: str, expected: str) -> None:
    eng = mixed(ws).engine()
    assert rel(ws, default_today(eng, full(ws, cwd))) == expected


@pytest.mark.parametrize("cwd", [".", "a_paused", "../.."])
def test_today_default_plan_with_several_plans_and_no_plan_folder_is_an_error(ws: WS, cwd: str) -> None:
    eng = mixed(ws).engine()
    with pytest.raises(UserError) as ei:
        default_today(eng, full(ws, cwd))
    assert ei.value.message == "which plan? name one with @NAME"
    assert ei.value.hint == "available plans: @FA, @FB, @FEAT, @FEAT-RESTRUCTURING, @PAUSED"
    assert ei.value.code == "user-error" and ei.value.candidates == []


def test_today_default_plan_is_the_only_plan(ws: WS) -> None:
    ws.plan("ONLY", ["1.1"])
    eng = ws.engine()
    assert rel(ws, default_today(eng, str(ws.root))) == "ONLY/PLAN_ONLY.md"
    assert rel(ws, default_today(eng, str(ws.plans))) == "ONLY/PLAN_ONLY.md"


def test_today_default_plan_is_the_only_flat_plan_even_from_the_plans_folder(ws: WS) -> None:
    ws.write(ws.plans / "PLAN_FLAT.md", plan_text(["1.1"]))
    assert rel(ws, default_today(ws.engine(), str(ws.plans))) == "PLAN_FLAT.md"


def test_today_default_plan_with_two_plans_at_the_root_is_an_error(ws: WS) -> None:
    ws.plan("ONE", ["1.1"])
    ws.plan("TWO", ["1.1"])
    with pytest.raises(UserError) as ei:
        default_today(ws.engine(), str(ws.root))
    assert (ei.value.message, ei.value.hint) == ("which plan? name one with @NAME", "available plans: @ONE, @TWO")


def test_today_default_plan_without_plans(tmp_path: Path) -> None:
    (tmp_path / "work-space" / "plans").mkdir(parents=True)
    with pytest.raises(UserError) as ei:
        default_today(Engine(str(tmp_path)), str(tmp_path))
    assert (ei.value.message, ei.value.hint) == ("which plan? name one with @NAME",
                                                 "no plans found under work-space/plans/")


# --- a grouping folder that also holds a loose PLAN file -----------------------------------------


def grouping_with_loose_plan(ws: WS) -> WS:
    """PLAN-FORMAT.md: the loose PLAN is a plan of its own; the plan folders beside it stay plans."""
    ws.write(ws.plans / "a_real" / "PLAN_LOOSE.md", plan_text(["1.1"]))
    ws.write(ws.plans / "a_real" / "SUBPLAN_LOOSE_11.md", work_text("subplan", "1.1", "In Progress"))
    ws.plan("INNER", ["1.1"], group="a_real")
    ws.plan("LOOSE-RESTRUCTURING", ["1.1"], group="a_real")
    return ws


def test_a_grouping_folder_with_a_loose_plan_is_not_that_plans_folder(ws: WS) -> None:
    # Before, the grouping folder was taken for LOOSE's feature folder: INNER and
    # LOOSE-RESTRUCTURING were not found, and everything under a_real/ was LOOSE's.
    eng = grouping_with_loose_plan(ws).engine()
    assert [(p.name, rel(ws, p.folder), p.loose) for p in eng.workspace.plans()] == [
        ("INNER", "a_real/INNER", False), ("LOOSE", "a_real", True),
        ("LOOSE-RESTRUCTURING", "a_real/LOOSE-RESTRUCTURING", False)]
    got = eng.plan_for_path(full(ws, "a_real/INNER/PLAN_INNER.md"))
    assert got is not None and got.name == "INNER"
