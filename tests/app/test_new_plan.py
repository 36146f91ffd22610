"""`perfd new NAME`: a plan from a template, written whole or not at all, never over anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perfd.app.commands import run
from perfd.engine.engine import Engine


def test_new_writes_a_plan_that_reads_as_intended(tmp_path: Path) -> None:
    out = run(["new", "PARSER-REWRITE"], str(tmp_path))
    assert out.code == 0, out.stderr
    folder = tmp_path / "work-space" / "plans" / "PARSER-REWRITE"
    assert "wrote work-space/plans/PARSER-REWRITE/PLAN_PARSER-REWRITE.md" in out.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["PLAN_PARSER-REWRITE.md", "execution", "subplans"]
    assert (folder / "execution" / "feedbacks").is_dir()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no build folder left
    eng = Engine(str(tmp_path))
    st = eng.plan_status("@PARSER-REWRITE")
    assert [(a.number, a.title, a.state) for a in st.achievements] == [("1.1", "First achievement", "no_subplan")]
    assert st.title == "PARSER REWRITE" and st.next == "1.1"
    assert not [p for p in st.problems if p.severity != "info"], st.problems
    g = eng.generate("@PARSER-REWRITE")
    assert g.write_path == str(folder / "subplans" / "SUBPLAN_PARSER-REWRITE_11.md")


def test_new_with_a_title(tmp_path: Path) -> None:
    assert run(["new", "X", "--title", "A better parser"], str(tmp_path)).code == 0
    assert Engine(str(tmp_path)).plan_status("@X").title == "A better parser"


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 101, "a..b"])
def test_new_refuses_names_that_are_no_plan_names(tmp_path: Path, name: str) -> None:
    out = run(["new", name], str(tmp_path))
    assert out.code != 0 and "not a plan name" in out.stderr
    assert not (tmp_path / "work-space" / "plans").exists() or not any((tmp_path / "work-space" / "plans").iterdir())


def test_new_never_overwrites_anything(tmp_path: Path) -> None:
    plans = tmp_path / "work-space" / "plans"
    (plans / "TAKEN").mkdir(parents=True)
    (plans / "TAKEN" / "notes.md").write_text("mine\n")
    out = run(["new", "TAKEN"], str(tmp_path))
    assert out.code != 0 and "exists already" in out.stderr
    assert os.listdir(plans / "TAKEN") == ["notes.md"]
    # A link with that name (even a dangling one) is not followed or replaced.
    target = tmp_path / "elsewhere"
    os.symlink(target, plans / "LINKED")
    out = run(["new", "LINKED"], str(tmp_path))
    assert out.code != 0 and "exists already" in out.stderr
    assert not target.exists() and os.path.islink(plans / "LINKED")
    assert not [p for p in plans.iterdir() if p.name.startswith(".")]


def test_new_refuses_a_plans_folder_leading_outside_the_workspace(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "work-space").mkdir(parents=True)
    os.symlink(outside, root / "work-space" / "plans")
    out = run(["new", "X", "--root", str(root)], str(tmp_path))
    assert out.code != 0 and "outside the workspace" in out.stderr
    assert list(outside.iterdir()) == []


def test_status_explain_says_what_decided_each_state(tmp_path: Path) -> None:
    assert run(["new", "X"], str(tmp_path)).code == 0
    plan = tmp_path / "work-space" / "plans" / "X" / "PLAN_X.md"
    plan.write_text(plan.read_text().replace("- Achievement 1.1: First achievement",
                                             "- Achievement 1.1: First achievement\n- ✅ Achievement 1.2: Second"))
    (tmp_path / "work-space" / "plans" / "X" / "execution" / "feedbacks" / "APPROVED_11.md").write_text("# ok\n")
    out = run(["status", "@X", "--explain"], str(tmp_path))
    assert out.code == 0, out.stderr
    assert "DECIDED BY" in out.stdout and "APPROVED_11.md" in out.stdout
    assert "✅ on its index line (PLAN_X.md line" in out.stdout
    plain = run(["status", "@X"], str(tmp_path))
    assert "DECIDED BY" not in plain.stdout
