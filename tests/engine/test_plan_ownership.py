"""Which plan owns a path, and the default plan for a folder: one rule, in the engine.

Three callers used to answer "which plan owns this path" each by a rule of its
own: Engine.plan_for_path (the language server), watcher.affected_plans (the
daemon's watcher) and commands._default_plan (the CLI, when no plan is named).
All three now ask the engine. The tables below give the engine's one answer,
and, where a caller answered otherwise before, what it answered (the `before`
columns) and why the rule differs: the record of what the switch changed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.ownership import loose_owner

from engine_helpers import WS, plan_text, work_text

SAME = object()  # `before`: the caller answered as the rule does


def mixed(ws: WS) -> WS:
    """Feature folders, a grouping folder, and two loose plans sharing the plans folder."""
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


def grouping_with_loose_plan(ws: WS) -> WS:
    """PLAN-FORMAT.md: a loose PLAN in a grouping folder is a plan of its own, the plan folders beside it
    stay plans, and `<NAME>-RESTRUCTURING/` is another plan."""
    ws.write(ws.plans / "a_real" / "PLAN_LOOSE.md", plan_text(["1.1"]))
    ws.write(ws.plans / "a_real" / "SUBPLAN_LOOSE_11.md", work_text("subplan", "1.1", "In Progress"))
    ws.write(ws.plans / "a_real" / "APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    ws.write(ws.plans / "a_real" / "notes.md", "# notes\n")
    ws.plan("INNER", ["1.1"], group="a_real")
    ws.plan("LOOSE-RESTRUCTURING", ["1.1"], group="a_real")
    ws.subplan("LOOSE-RESTRUCTURING", "1.1", group="a_real")
    return ws


def rel(ws: WS, path: str | None) -> str | None:
    return None if path is None else os.path.relpath(path, ws.plans)


def full(ws: WS, rel_path: str) -> str:
    return os.path.realpath(os.path.join(ws.plans, rel_path))


# (path relative to the plans folder, owner by the rule, plans a change there touches by the rule,
#  what Engine.plan_for_path answered before, what watcher.affected_plans answered before)
MIXED: list[tuple[str, str | None, list[str], Any, Any]] = [
    ("FEAT/PLAN_FEAT.md", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/subplans/SUBPLAN_FEAT_11.md", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/execution/EXECUTION_TASK_FEAT_11_01.md", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/execution/feedbacks/APPROVED_11.md", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/parallel.json", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/documentation/PLAN_NOTES.md", "FEAT", ["FEAT"], SAME, SAME),  # a document of FEAT, not a plan
    ("FEAT/feat-archive/subplans/SUBPLAN_FEAT_01.md", "FEAT", ["FEAT"], SAME, SAME),
    ("FEAT/subplans", "FEAT", ["FEAT"], SAME, SAME),
    # The feature folder itself is its plan's (the CLI's default plan always said so); before,
    # plan_for_path did not count it, and the watcher also credited it to every flat plan (a
    # non-PLAN entry of the plans folder).
    ("FEAT", "FEAT", ["FEAT"], None, ["FA", "FB", "FEAT"]),
    ("FEAT-RESTRUCTURING/PLAN_FEAT-RESTRUCTURING.md", "FEAT-RESTRUCTURING", ["FEAT-RESTRUCTURING"], SAME, SAME),
    ("a_paused/PAUSED/PLAN_PAUSED.md", "PAUSED", ["PAUSED"], SAME, SAME),
    ("a_paused/PAUSED/subplans/SUBPLAN_PAUSED_11.md", "PAUSED", ["PAUSED"], SAME, SAME),
    ("a_paused/README.md", None, [], SAME, SAME),
    # A grouping folder's listing changed (renamed, deleted): the plans inside it; before, the
    # watcher counted the flat plans of the plans folder instead.
    ("a_paused", None, ["PAUSED"], SAME, ["FA", "FB"]),
    ("PLAN_FA.md", "FA", ["FA"], SAME, SAME),
    ("PLAN_FB.md", "FB", ["FB"], SAME, SAME),
    # Files beside loose plans belong to the plan whose name they carry (PLAN-FORMAT.md). Before,
    # plan_for_path credited none and the watcher every flat plan, whatever the name.
    ("SUBPLAN_FA_11.md", "FA", ["FA"], None, ["FA", "FB"]),
    ("EXECUTION_TASK_FA_11_01.md", "FA", ["FA"], None, ["FA", "FB"]),
    ("SUBPLAN_FB_11.md", "FB", ["FB"], None, ["FA", "FB"]),
    # A review file without a name in a folder two loose plans share: neither reads it, so
    # neither owns it; notes are nobody's.
    ("APPROVED_11.md", None, [], SAME, ["FA", "FB"]),
    ("notes.md", None, [], SAME, ["FA", "FB"]),
    # The plans folder: owned by none; its listing holds every plan.
    (".", None, ["FA", "FB", "FEAT", "FEAT-RESTRUCTURING", "PAUSED"], SAME, []),
    ("../../README.md", None, [], SAME, SAME),
]

GROUPING: list[tuple[str, str | None, list[str], Any, Any]] = [
    # Before, the grouping folder was taken for LOOSE's feature folder: everything in it was
    # LOOSE's, and INNER and LOOSE-RESTRUCTURING were not plans at all.
    ("a_real/PLAN_LOOSE.md", "LOOSE", ["LOOSE"], SAME, SAME),
    ("a_real/SUBPLAN_LOOSE_11.md", "LOOSE", ["LOOSE"], SAME, SAME),
    ("a_real/APPROVED_11.md", "LOOSE", ["LOOSE"], SAME, SAME),  # the folder's only loose plan reads it
    ("a_real/notes.md", None, [], "LOOSE", ["LOOSE"]),
    ("a_real/INNER/PLAN_INNER.md", "INNER", ["INNER"], "LOOSE", ["LOOSE"]),
    ("a_real/LOOSE-RESTRUCTURING/subplans/SUBPLAN_LOOSE-RESTRUCTURING_11.md", "LOOSE-RESTRUCTURING",
     ["LOOSE-RESTRUCTURING"], "LOOSE", ["LOOSE"]),
    ("a_real", None, ["INNER", "LOOSE", "LOOSE-RESTRUCTURING"], "LOOSE", ["LOOSE"]),
]

CASES = [(mixed, *c) for c in MIXED] + [(grouping_with_loose_plan, *c) for c in GROUPING]
IDS = [c[1] for c in CASES]


@pytest.mark.parametrize(("build", "path", "owner", "_touched", "_b1", "_b2"), CASES, ids=IDS)
def test_owner(ws: WS, build: Any, path: str, owner: str | None, _touched: Any, _b1: Any, _b2: Any) -> None:
    eng = build(ws).engine()
    got = eng.plan_for_path(full(ws, path))
    assert (got.name if got else None) == owner
    # The same answer through a path that is not resolved yet, and relative to nothing in particular.
    unresolved = eng.plan_for_path(os.path.join(str(ws.plans), "a_paused", "..", path))
    assert (unresolved.name if unresolved else None) == owner


@pytest.mark.parametrize(("build", "path", "_owner", "touched", "_b1", "_b2"), CASES, ids=IDS)
def test_plans_affected_by(ws: WS, build: Any, path: str, _owner: Any, touched: list[str], _b1: Any,
                           _b2: Any) -> None:
    eng = build(ws).engine()
    p = full(ws, path)
    got = eng.plans_affected_by([p])
    assert sorted(ref.name for ref, _changed in got.values()) == touched
    assert all(changed == [p] for _ref, changed in got.values())
    assert all(key == ref.path for key, (ref, _c) in got.items())


def test_plans_affected_by_groups_changes_by_plan(ws: WS) -> None:
    eng = mixed(ws).engine()
    a, b, c = (full(ws, p) for p in ("FEAT/PLAN_FEAT.md", "FEAT/subplans/SUBPLAN_FEAT_11.md", "SUBPLAN_FA_11.md"))
    got = eng.plans_affected_by([a, b, c, a])
    assert {ref.name: sorted(changed) for ref, changed in got.values()} == {"FEAT": sorted([a, b]), "FA": [c]}


def test_plans_affected_by_a_deleted_file_or_folder(ws: WS) -> None:
    mixed(ws)
    gone = ws.folder("FEAT") / "subplans" / "SUBPLAN_FEAT_11.md"
    gone.unlink()
    eng = ws.engine()
    assert {r.name: c for r, c in eng.plans_affected_by([str(gone)]).values()} == {"FEAT": [str(gone)]}
    folder = ws.folder("PAUSED", "a_paused") / "subplans"
    (folder / "SUBPLAN_PAUSED_11.md").unlink()
    folder.rmdir()
    assert [r.name for r, _c in eng.plans_affected_by([str(folder)]).values()] == ["PAUSED"]


def test_a_deleted_plan_is_touched_by_nothing(ws: WS) -> None:
    mixed(ws)
    (ws.plans / "PLAN_FB.md").unlink()
    eng = ws.engine()
    assert eng.plans_affected_by([full(ws, "PLAN_FB.md")]) == {}
    assert eng.plan_for_path(full(ws, "SUBPLAN_FB_11.md")) is None


def test_a_symlinked_plan_folder_is_owned_through_either_path(ws: WS) -> None:
    ws.plan("REAL", ["1.1"], group="a_store")
    ws.subplan("REAL", "1.1", group="a_store")
    os.symlink(ws.folder("REAL", "a_store"), ws.plans / "REAL")
    eng = ws.engine()
    via_link = eng.plan_for_path(str(ws.plans / "REAL" / "subplans" / "SUBPLAN_REAL_11.md"))
    direct = eng.plan_for_path(str(ws.folder("REAL", "a_store") / "subplans" / "SUBPLAN_REAL_11.md"))
    assert via_link is not None and direct is not None and via_link.name == direct.name == "REAL"


def test_a_path_leaving_the_workspace_is_owned_by_none(ws: WS, tmp_path: Path) -> None:
    mixed(ws)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "SUBPLAN_FEAT_11.md").write_text("x")
    os.symlink(outside, ws.folder("FEAT") / "linked")
    assert ws.engine().plan_for_path(str(ws.folder("FEAT") / "linked" / "SUBPLAN_FEAT_11.md")) is None


# --- the default plan (no plan named on the command line) -----------------------------------------


@pytest.mark.parametrize(("cwd", "expected"), [
    ("FEAT", "FEAT/PLAN_FEAT.md"),
    ("FEAT/execution/feedbacks", "FEAT/PLAN_FEAT.md"),
    ("FEAT/documentation", "FEAT/PLAN_FEAT.md"),
    ("a_paused/PAUSED/subplans", "a_paused/PAUSED/PLAN_PAUSED.md"),
])
def test_default_plan_is_the_plan_whose_folder_holds_cwd(ws: WS, cwd: str, expected: str) -> None:
    eng = mixed(ws).engine()
    assert rel(ws, eng.default_plan(full(ws, cwd))) == expected


def several_plans_error(eng: Engine, cwd: str) -> UserError:
    with pytest.raises(UserError) as ei:
        eng.default_plan(cwd)
    return ei.value


@pytest.mark.parametrize("cwd", [".", "a_paused", "../.."])
def test_default_plan_with_several_plans_and_cwd_in_none_is_an_error(ws: WS, cwd: str) -> None:
    eng = mixed(ws).engine()
    err = several_plans_error(eng, full(ws, cwd))
    assert err.message == "which plan? name one with @NAME"
    assert err.hint == "available plans: @FA, @FB, @FEAT, @FEAT-RESTRUCTURING, @PAUSED"
    assert err.code == "user-error" and err.candidates == []


def test_default_plan_from_a_grouping_folder_with_a_loose_plan_is_not_that_plan(ws: WS) -> None:
    # Before, the grouping folder was taken for LOOSE's folder, and cwd there chose LOOSE.
    eng = grouping_with_loose_plan(ws).engine()
    err = several_plans_error(eng, full(ws, "a_real"))
    assert err.hint == "available plans: @INNER, @LOOSE, @LOOSE-RESTRUCTURING"
    assert rel(ws, eng.default_plan(full(ws, "a_real/INNER"))) == "a_real/INNER/PLAN_INNER.md"


def test_default_plan_is_the_only_plan(ws: WS) -> None:
    ws.plan("ONLY", ["1.1"])
    eng = ws.engine()
    assert rel(ws, eng.default_plan(str(ws.root))) == "ONLY/PLAN_ONLY.md"
    assert rel(ws, eng.default_plan(str(ws.plans))) == "ONLY/PLAN_ONLY.md"
    assert rel(ws, eng.default_plan("/")) == "ONLY/PLAN_ONLY.md"


def test_default_plan_is_the_only_loose_plan_even_from_the_plans_folder(ws: WS) -> None:
    ws.write(ws.plans / "PLAN_FLAT.md", plan_text(["1.1"]))
    assert rel(ws, ws.engine().default_plan(str(ws.plans))) == "PLAN_FLAT.md"


def test_default_plan_with_two_plans_at_the_root_is_an_error(ws: WS) -> None:
    ws.plan("ONE", ["1.1"])
    ws.plan("TWO", ["1.1"])
    err = several_plans_error(ws.engine(), str(ws.root))
    assert (err.message, err.hint) == ("which plan? name one with @NAME", "available plans: @ONE, @TWO")


def test_default_plan_without_plans(tmp_path: Path) -> None:
    (tmp_path / "work-space" / "plans").mkdir(parents=True)
    err = several_plans_error(Engine(str(tmp_path)), str(tmp_path))
    assert (err.message, err.hint) == ("which plan? name one with @NAME", "no plans found under work-space/plans/")


# --- paths as plan references ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "plan"), [
    ("FEAT/subplans/SUBPLAN_FEAT_11.md", "FEAT"),
    ("FEAT/execution/feedbacks/APPROVED_11.md", "FEAT"),
    ("FEAT/subplans", "FEAT"),
    ("SUBPLAN_FA_11.md", "FA"),
    ("PLAN_FB.md", "FB"),
])
def test_a_path_to_any_file_of_a_plan_resolves_to_that_plan(ws: WS, path: str, plan: str) -> None:
    eng = mixed(ws).engine()
    assert eng.resolve(full(ws, path)).name == plan
    assert eng.resolve(os.path.join("work-space", "plans", path), cwd=str(ws.root)).name == plan
    assert eng.generate(full(ws, path)).plan == plan


@pytest.mark.parametrize("path", ["notes.md", "APPROVED_11.md", ".", "a_paused", "../../README.md"])
def test_a_path_owned_by_no_plan_is_not_a_plan(ws: WS, path: str) -> None:
    eng = mixed(ws).engine()
    with pytest.raises(UserError) as ei:
        eng.resolve(full(ws, path))
    assert ei.value.code == "unknown-plan" and "is not a plan of this workspace" in ei.value.message


# --- the name rule of shared folders --------------------------------------------------------------


@pytest.mark.parametrize(("name", "loose", "owner"), [
    ("PLAN_A.md", ["A", "B"], "A"),
    ("PLAN_C.md", ["A", "B"], None),
    ("SUBPLAN_A_01.md", ["A", "B"], "A"),
    ("SUBPLAN_A_B_01.md", ["A", "A_B"], "A_B"),
    ("SUBPLAN_A-RESTRUCTURING_01.md", ["A"], None),
    ("EXECUTION_TASK_B_01_02.md", ["A", "B"], "B"),
    ("SUBPLAN_01.md", ["A"], None),  # carries no name
    ("APPROVED_A_01.md", ["A", "B"], "A"),
    ("FIX_B_01_RESOLUTION.md", ["A", "B"], "B"),
    ("APPROVED_01.md", ["A"], "A"),
    ("APPROVED_01.md", ["A", "B"], None),
    ("FIX_01_RESOLUTION.md", ["A"], "A"),
    ("parallel.json", ["A"], "A"),
    ("parallel.json", ["A", "B"], None),
    ("notes.md", ["A"], None),
    ("A", ["A"], None),
])
def test_loose_owner(name: str, loose: list[str], owner: str | None) -> None:
    assert loose_owner(name, loose) == owner


# --- properties -------------------------------------------------------------------------------------

NAMES = st.sampled_from(["A", "B", "A_B", "AB", "A-RESTRUCTURING", "x1", "Feat-2"])
FEATURE_FILES = [
    "PLAN_{n}.md", "subplans/SUBPLAN_{n}_11.md", "execution/EXECUTION_TASK_{n}_11_01.md",
    "execution/feedbacks/APPROVED_11.md", "execution/feedbacks/FIX_12.md", "parallel.json", "notes.md",
    "documentation/PLAN_NOTES.md", "{n}-archive/subplans/SUBPLAN_{n}_01.md", "SUBPLAN_{n}_13.md",
]
LOOSE_FILES = ["SUBPLAN_{n}_11.md", "EXECUTION_TASK_{n}_11_01.md", "APPROVED_{n}_11.md", "FIX_{n}_12.md"]
UNNAMED_FILES = ["APPROVED_13.md", "FIX_14.md", "parallel.json", "notes.md", "SUBPLAN_15.md"]


@st.composite
def workspaces(draw: st.DrawFn) -> dict[str, Any]:
    """Feature plans (at the top or in grouping folders) and loose plans, each with some of its files."""
    groups = draw(st.lists(st.sampled_from(["", "a_paused", "a_real"]), min_size=1, max_size=3, unique=True))
    features: list[tuple[str, str, list[str]]] = []  # (group, name, files)
    loose: list[tuple[str, str, list[str]]] = []
    for g in groups:
        names = draw(st.lists(NAMES, min_size=0 if not g else 1, max_size=3, unique=True))
        for n in names:
            files = draw(st.lists(st.sampled_from(FEATURE_FILES[1:]), max_size=4, unique=True))
            features.append((g, n, files))
        for n in draw(st.lists(NAMES.filter(lambda n: n not in names), max_size=3, unique=True)):
            loose.append((g, n, draw(st.lists(st.sampled_from(LOOSE_FILES), max_size=3, unique=True))))
    unnamed = {g: draw(st.lists(st.sampled_from(UNNAMED_FILES), max_size=3, unique=True)) for g in groups}
    return {"features": features, "loose": loose, "unnamed": unnamed}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workspaces())
def test_every_file_of_a_plan_is_owned_by_that_plan_and_no_other(layout: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = WS(Path(tmp) / "root")
        expected: dict[str, str] = {}  # real path -> owning plan's PLAN path
        for g, n, files in layout["features"]:
            folder = ws.folder(n, g or None)
            plan = str(ws.write(folder / f"PLAN_{n}.md", plan_text(["1.1"])))
            expected[os.path.realpath(plan)] = plan
            expected[os.path.realpath(folder)] = plan
            for f in files:
                p = ws.write(folder / f.format(n=n), "x\n")
                expected[os.path.realpath(p)] = plan
        for g, n, files in layout["loose"]:
            shared = ws.plans / g if g else ws.plans
            plan = str(ws.write(shared / f"PLAN_{n}.md", plan_text(["1.1"])))
            expected[os.path.realpath(plan)] = plan
            for f in files:
                expected[os.path.realpath(ws.write(shared / f.format(n=n), "x\n"))] = plan
        owned_by_none: list[str] = []
        for g, files in layout["unnamed"].items():
            shared = ws.plans / g if g else ws.plans
            sharing = [str(shared / f"PLAN_{n}.md") for lg, n, _f in layout["loose"] if lg == g]
            for f in files:
                p = os.path.realpath(ws.write(shared / f, "{}\n"))
                # Unnamed review files and parallel.json: the folder's only loose plan's, else nobody's.
                if len(sharing) == 1 and f not in ("notes.md", "SUBPLAN_15.md"):
                    expected[p] = sharing[0]
                else:
                    owned_by_none.append(p)
        eng = ws.engine()
        for path in owned_by_none:
            assert eng.plan_for_path(path) is None, path
            assert eng.plans_affected_by([path]) == {}, path
        plans = {p.path for p in eng.workspace.plans()}
        assert plans == set(expected.values())
        for path, plan in expected.items():
            owner = eng.plan_for_path(path)
            assert owner is not None and owner.path == plan, path
            if os.path.isfile(path):
                assert list(eng.plans_affected_by([path])) == [plan], path
        # What the engine reads as a plan's files is owned by that plan: one rule for both.
        for ref in eng.workspace.plans():
            files = eng.workspace.files(ref)
            read = [f.path for f in files.subplans + files.executions + files.approved + files.fixes]
            for path in read + ([files.parallel] if files.parallel else []):
                owner = eng.plan_for_path(path)
                assert owner is not None and owner.path == ref.path, path
