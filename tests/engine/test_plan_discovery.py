"""How plans are found: feature folders, grouping folders up to MAX_GROUP_DEPTH deep, loose PLAN files.

Each rule of the README's "How plans are found" has a synthetic test here, and a
property: moving a plan folder into grouping folders (at any allowed depth, with
loose PLAN files beside it) never changes its answer. Bad trees (symlink loops,
unreadable folders, thousands of empty folders) give a problem line or are
skipped, never a hang or a crash.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfd.app.commands import run
from perfd.engine.workspace import MAX_GROUP_DEPTH

from engine_helpers import WS, plan_text, work_text


def found(ws: WS) -> dict[str, tuple[str, str, bool]]:
    """name -> (group, PLAN path relative to the plans folder, loose)."""
    return {p.name: (p.group, os.path.relpath(p.path, ws.plans), p.loose) for p in ws.engine().workspace.plans()}


def groups(depth: int) -> str:
    return "/".join(f"g{i}" for i in range(1, depth + 1))


# --- grouping folders at any depth up to the bound -------------------------------------------------


@pytest.mark.parametrize("depth", range(1, MAX_GROUP_DEPTH + 1))
def test_grouping_folders_at_every_depth_hold_plan_folders_and_loose_plans_side_by_side(ws: WS, depth: int) -> None:
    g = groups(depth)
    ws.plan("INNER", ["1.1"], group=g)
    ws.plan("INNER-RESTRUCTURING", ["1.1"], group=g)
    ws.write(ws.plans / g / "PLAN_LOOSE.md", plan_text(["1.1"]))
    ws.write(ws.plans / g / "notes.md", "# notes\n")
    ws.plan("TOP", ["1.1"])
    assert found(ws) == {
        "INNER": (g, f"{g}/INNER/PLAN_INNER.md", False),
        "INNER-RESTRUCTURING": (g, f"{g}/INNER-RESTRUCTURING/PLAN_INNER-RESTRUCTURING.md", False),
        "LOOSE": (g, f"{g}/PLAN_LOOSE.md", True),
        "TOP": ("", "TOP/PLAN_TOP.md", False),
    }


def test_loose_plans_at_every_level_of_a_deep_grouping_keep_the_plans_below_them(ws: WS) -> None:
    """A grouping folder whose only PLAN file is loose, with plan folders only further down, is still a
    grouping folder: taking it for the loose plan's feature folder would hide every plan below it."""
    for d in range(1, MAX_GROUP_DEPTH + 1):
        ws.write(ws.plans / groups(d) / f"PLAN_LOOSE{d}.md", plan_text(["1.1"]))
    ws.plan("DEEP", ["1.1"], group=groups(MAX_GROUP_DEPTH))
    got = found(ws)
    assert got["DEEP"] == (groups(MAX_GROUP_DEPTH), f"{groups(MAX_GROUP_DEPTH)}/DEEP/PLAN_DEEP.md", False)
    for d in range(1, MAX_GROUP_DEPTH + 1):
        assert got[f"LOOSE{d}"] == (groups(d), f"{groups(d)}/PLAN_LOOSE{d}.md", True)
    assert len(got) == MAX_GROUP_DEPTH + 1


def test_plans_below_the_depth_bound_are_not_looked_for(ws: WS) -> None:
    ws.plan("TOO-DEEP", ["1.1"], group=groups(MAX_GROUP_DEPTH + 1))
    ws.plan("DEEPEST", ["1.1"], group=groups(MAX_GROUP_DEPTH))
    assert set(found(ws)) == {"DEEPEST"}


def test_a_folder_whose_one_plan_file_is_named_differently_is_that_plan(ws: WS) -> None:
    for g in ("", "a_group", groups(3)):
        folder = ws.plans / g / "misnamed-folder" if g else ws.plans / "misnamed-folder"
        name = f"OTHER{g.count('/') + len(g) > 0 and g.replace('/', '') or ''}"
        ws.write(folder / f"PLAN_{name}.md", plan_text(["1.1", "1.2"]))
        ws.write(folder / "subplans" / f"SUBPLAN_{name}_11.md", work_text("subplan", "1.1", "In Progress"))
        ws.write(folder / "execution" / "feedbacks" / "APPROVED_12.md", "# APPROVED: Achievement 1.2\n")
    if True:  # a plan folder beside the grouped one keeps a_group a grouping folder
        ws.plan("SIBLING", ["1.1"], group="a_group")
    eng = ws.engine()
    names = {p.name: p for p in eng.workspace.plans()}
    assert set(names) == {"OTHER", "OTHERa_group", "OTHERg1g2g3", "SIBLING"}
    for name in ("OTHER", "OTHERa_group", "OTHERg1g2g3"):
        ref = names[name]
        assert not ref.loose and os.path.basename(ref.folder) == "misnamed-folder"
        st_ = eng.plan_status("@" + name)
        assert (st_.done, st_.next) == (1, "1.1")
        assert eng.plan_for_path(os.path.join(ref.folder, "subplans", f"SUBPLAN_{name}_11.md")) == ref


# --- a loose plan owns no folder --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, MAX_GROUP_DEPTH])
def test_a_loose_plans_files_are_looked_for_only_flat_beside_it(ws: WS, depth: int) -> None:
    g = groups(depth)
    shared = ws.plans / g if g else ws.plans
    ws.write(shared / "PLAN_LOOSE.md", plan_text(["1.1", "1.2", "1.3"]))
    ws.write(shared / "SUBPLAN_LOOSE_11.md", work_text("subplan", "1.1", "In Progress"))
    ws.write(shared / "APPROVED_LOOSE_12.md", "# APPROVED: Achievement 1.2\n")
    # Its sibling plans' folders hold files that look like LOOSE's: they are theirs.
    ws.plan("LOOSE-RESTRUCTURING", ["1.1", "1.2", "1.3"], group=g or None)
    sib = ws.folder("LOOSE-RESTRUCTURING", g or None)
    ws.write(sib / "subplans" / "SUBPLAN_LOOSE_13.md", work_text("subplan", "1.3", "In Progress"))
    ws.write(sib / "SUBPLAN_LOOSE_13.md", work_text("subplan", "1.3", "In Progress"))
    ws.write(sib / "execution" / "feedbacks" / "APPROVED_13.md", "# APPROVED: Achievement 1.3\n")
    ws.write(sib / "execution" / "feedbacks" / "APPROVED_LOOSE_13.md", "# APPROVED: Achievement 1.3\n")
    ws.write(shared / "subplans" / "SUBPLAN_LOOSE_13.md", work_text("subplan", "1.3", "In Progress"))
    eng = ws.engine()
    loose = eng.resolve("@LOOSE")
    assert loose.loose and loose.group == g
    files = eng.workspace.files(loose)
    assert [os.path.basename(f.path) for f in files.subplans] == ["SUBPLAN_LOOSE_11.md"]
    assert [os.path.basename(f.path) for f in files.approved] == ["APPROVED_LOOSE_12.md"]
    assert files.executions == [] and files.fixes == []
    st_ = eng.plan_status(loose)
    assert [(a.number, a.state) for a in st_.achievements] == [
        ("1.1", "subplan_no_execution"), ("1.2", "complete"), ("1.3", "no_subplan")]
    sibling = eng.plan_status("@LOOSE-RESTRUCTURING")
    assert [a.state for a in sibling.achievements] == ["no_subplan", "no_subplan", "complete"]


# --- grouped plans are still plans ------------------------------------------------------------------


def test_status_shows_each_plan_with_its_group_and_at_name_finds_grouped_plans(ws: WS) -> None:
    ws.plan("TOP", ["1.1"])
    ws.plan("PAUSED", ["1.1"], group="a_paused")
    ws.plan("DEEP-ONE", ["1.1", "1.2"], group="a_real/2025/q4")
    ws.write(ws.plans / "a_real" / "PLAN_LOOSE.md", plan_text(["1.1"]))
    eng = ws.engine()
    summary = {p.plan: p.group for p in eng.status().plans}
    assert summary == {"TOP": "", "PAUSED": "a_paused", "DEEP-ONE": "a_real/2025/q4", "LOOSE": "a_real"}
    assert eng.resolve("@DEEP-ONE").folder == str(ws.plans / "a_real" / "2025" / "q4" / "DEEP-ONE")
    assert eng.resolve("@deep").name == "DEEP-ONE"  # a unique prefix, as for any plan
    assert eng.generate("@DEEP-ONE").achievement == "1.1"
    out = run(["--root", str(ws.root), "status"], str(ws.root))
    rows = [r.split() for r in out.stdout.splitlines()]
    assert rows[0][-1] == "GROUP"
    assert {r[0]: r[-1] for r in rows[1:]} == {"@DEEP-ONE": "a_real/2025/q4", "@LOOSE": "a_real",
                                               "@PAUSED": "a_paused", "@TOP": "-"}
    js = msgspec.json.decode(run(["--root", str(ws.root), "status", "--json"], str(ws.root)).stdout)
    assert {p["plan"]: p.get("group", "") for p in js["plans"]}["DEEP-ONE"] == "a_real/2025/q4"


def test_status_without_grouped_plans_has_no_group_column(ws: WS) -> None:
    ws.plan("TOP", ["1.1"])
    out = run(["--root", str(ws.root), "status"], str(ws.root))
    assert "GROUP" not in out.stdout


# --- property: grouping never changes a plan's answer ------------------------------------------------


def build_plan(ws: WS, folder: Path, name: str) -> None:
    ws.write(folder / f"PLAN_{name}.md", plan_text(["1.1", "1.2", "1.3", "2.1"]))
    ws.write(folder / "subplans" / f"SUBPLAN_{name}_11.md", work_text("subplan", "1.1", "✅ Complete"))
    ws.write(folder / "subplans" / f"SUBPLAN_{name}_12.md", work_text("subplan", "1.2", "In Progress", ["12_01"]))
    ws.write(folder / "execution" / f"EXECUTION_TASK_{name}_12_01.md", work_text("execution", "1.2", "In Progress"))
    ws.write(folder / "execution" / "feedbacks" / "APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    ws.write(folder / "execution" / "feedbacks" / "FIX_13.md", "# FIX: Achievement 1.3\n\n## Critical Issues\n\n1. x\n")


def answer(ws: WS, name: str) -> tuple[Any, Any]:
    """The plan's status and next prompt, with its folder's path taken out."""
    eng = ws.engine()
    ref = eng.resolve("@" + name)
    folder = ref.folder
    norm = msgspec.json.encode((eng.plan_status(ref), eng.generate(ref))).decode()
    # Paths show as absolute or relative to the root (in prompts): the folder goes either way.
    norm = norm.replace(folder, "<FOLDER>").replace(os.path.relpath(folder, ws.root), "<FOLDER>")
    return msgspec.json.decode(norm), ref.name


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(0, MAX_GROUP_DEPTH),
       loose_levels=st.sets(st.integers(0, MAX_GROUP_DEPTH)),
       neighbours=st.booleans(),
       name=st.sampled_from(["MOVED", "A", "LOOSE1-RESTRUCTURING", "x_1"]))
def test_moving_a_plan_folder_into_grouping_folders_never_changes_its_answer(
        depth: int, loose_levels: set[int], neighbours: bool, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = WS(Path(tmp) / "root")
        build_plan(ws, ws.plans / name, name)
        before = answer(ws, name)
        # Loose PLAN files (with their own flat files) on every level of the grouping chosen, and
        # perhaps plan folders beside the moved one.
        for d in sorted(loose_levels):
            if d > depth:
                continue
            shared = ws.plans / groups(d) if d else ws.plans
            ws.write(shared / f"PLAN_LOOSE{d}.md", plan_text(["1.1"]))
            ws.write(shared / f"SUBPLAN_LOOSE{d}_11.md", work_text("subplan", "1.1", "In Progress"))
            ws.write(shared / "APPROVED_12.md", "# APPROVED: Achievement 1.2\n")
            if neighbours:
                build_plan(ws, shared / f"NEIGHBOUR{d}", f"NEIGHBOUR{d}")
        target = ws.plans / groups(depth) / name if depth else ws.plans / name
        if target != ws.plans / name:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(ws.plans / name), str(target))
        after = answer(ws, name)
        assert after == before
        ref = ws.engine().resolve("@" + name)
        assert ref.group == groups(depth) and ref.folder == str(target)


# --- bad trees ----------------------------------------------------------------------------------------


def test_a_symlink_loop_in_the_plans_tree_is_walked_once(ws: WS) -> None:
    ws.plan("INNER", ["1.1"], group="a_group")
    ws.write(ws.plans / "a_group" / "PLAN_LOOSE.md", plan_text(["1.1"]))
    os.symlink(ws.plans / "a_group", ws.plans / "a_group" / "loop")
    os.symlink(ws.plans, ws.plans / "a_group" / "up")
    os.symlink("self", ws.plans / "self")  # a link to itself: not even a folder
    eng = ws.engine()
    assert sorted(p.name for p in eng.workspace.plans()) == ["INNER", "LOOSE"]
    st_ = eng.status()
    assert [p.plan for p in st_.plans] == ["INNER", "LOOSE"]


def test_an_unreadable_folder_gives_a_problem_line_and_the_other_plans(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.plan("GOOD", ["1.1"])
    ws.plan("HIDDEN", ["1.1"], group="a_locked/inner")
    locked = str(ws.plans / "a_locked")
    real_listdir = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        if os.fspath(path) == locked:  # as when the folder is mode 000 and we are not root
            raise PermissionError(13, "Permission denied", locked)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    eng = ws.engine()
    st_ = eng.status()
    assert [p.plan for p in st_.plans] == ["GOOD"]
    assert [(p.code, p.path) for p in st_.problems] == [("unreadable", locked)]
    out = run(["--root", str(ws.root), "status"], str(ws.root))
    assert out.code == 0 and "@GOOD" in out.stdout
    assert "a_locked" in out.stderr and "cannot read folder" in out.stderr and "Traceback" not in out.stderr


def test_ten_thousand_empty_folders_are_skipped(ws: WS) -> None:
    ws.plan("REAL", ["1.1"])
    for i in range(10_000):
        os.mkdir(ws.plans / f"empty{i:05d}")
    eng = ws.engine()
    assert [p.plan for p in eng.status().plans] == ["REAL"]
    assert eng.status().problems == []


def test_a_name_that_is_not_utf8_among_many_plans_is_parsed_here_not_by_a_worker(tmp_path: Path) -> None:
    """Worker processes and the packed cache carry UTF-8 only: such a plan is parsed in-process, and shown."""
    import os as _os

    from perfd.engine.engine import Engine

    base = _os.fsencode(tmp_path / "work-space" / "plans")
    for i in range(45):
        name = b"P%02d" % i + (b"\xff" if i == 3 else b"")
        _os.makedirs(base + b"/" + name)
        with open(base + b"/" + name + b"/PLAN_" + name + b".md", "wb") as f:
            f.write(b"# PLAN: x\n\n## Achievement Index\n\n- Achievement 1.1: A\n\n## Achievements\n\n"
                    b"**Achievement 1.1**: A\n")
    engine = Engine(str(tmp_path))
    engine.parse_workers = 2
    ws = engine.status()
    assert len(ws.plans) == 45 and any(p.plan == "P03\udcff" and p.next == "1.1" for p in ws.plans)
    assert engine.status() == ws  # and again, from the cache (held unpacked)
