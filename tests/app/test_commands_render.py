"""What `perfd status` and `perfd generate` print, through perfd.app.commands.run(argv, cwd).

run() is the one function the thin client's daemon and the in-process path
both call, so its Output (stdout, stderr, exit code) is exactly what a person
sees. The workspaces are written to tmp_path; nothing is started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from perfd.app.commands import Output, run
from perfd.engine.engine import Engine
from perfd.engine.types import GenerateResult, PlanStatus, WorkspaceStatus

THING = """\
# PLAN: Build the Thing

**Status**: In Progress

## 📋 Achievement Index

- Achievement 1.1: Lay the Groundwork
- Achievement 1.2: Wire the Parts Together Across Every Module in the Tree
- Achievement 1.3: Measure
- Achievement 2.1: Ship

## 📋 Achievements

**Achievement 1.1**: Lay the Groundwork

**Achievement 1.2**: Wire the Parts Together Across Every Module in the Tree

**Achievement 1.3**: Measure

**Achievement 2.1**: Ship

## 📝 Current Status & Handoff

**⏳ Next: Achievement 2.1**
"""
HANDOFF_LINE = 24  # the "Next:" line above

DONE = """\
# PLAN: Done

## 📋 Achievement Index

- Achievement 1.1: Only

## 📋 Achievements

**Achievement 1.1**: Only
"""


def work(kind: str, number: str, status: str, planned: tuple[str, ...] = ()) -> str:
    head = "SUBPLAN" if kind == "subplan" else "EXECUTION_TASK"
    out = [f"# {head}: Achievement {number}", "", f"**Achievement**: {number}", f"**Status**: {status}", ""]
    if planned:
        out += ["## 🔄 Active EXECUTION_TASKs", "", "| Execution | Objective | Status |", "| --- | --- | --- |"]
        out += [f"| {p} | step | 📋 Planned |" for p in planned]
    return "\n".join(out) + "\n"


COMPLETE, IN_PROGRESS = "✅ Complete", "🔄 In Progress"


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "work-space" / "plans").mkdir(parents=True)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def run(self, *argv: str, cwd: Path | None = None) -> Output:
        return run(list(argv), str(cwd or self.root))


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """@THING: 1.1 approved, 1.2 executing, 1.3 open beside it, 2.1 blocked on both; the handoff says 2.1.
    @DONE: its only achievement approved."""
    w = Workspace(tmp_path / "ws")
    t = "work-space/plans/THING/"
    w.write(t + "PLAN_THING.md", THING)
    w.write(t + "subplans/SUBPLAN_THING_11.md", work("subplan", "1.1", COMPLETE))
    w.write(t + "execution/EXECUTION_TASK_THING_11_01.md", work("execution", "1.1", COMPLETE))
    w.write(t + "execution/feedbacks/APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    w.write(t + "subplans/SUBPLAN_THING_12.md", work("subplan", "1.2", IN_PROGRESS))
    w.write(t + "execution/EXECUTION_TASK_THING_12_01.md", work("execution", "1.2", IN_PROGRESS))
    w.write(t + "parallel.json", json.dumps({"plan_name": "THING", "achievements": [
        {"achievement_id": "1.1", "dependencies": []}, {"achievement_id": "1.2", "dependencies": ["1.1"]},
        {"achievement_id": "1.3", "dependencies": ["1.1"]}, {"achievement_id": "2.1", "dependencies": ["1.2", "1.3"]}]}))
    d = "work-space/plans/DONE/"
    w.write(d + "PLAN_DONE.md", DONE)
    w.write(d + "subplans/SUBPLAN_DONE_11.md", work("subplan", "1.1", COMPLETE))
    w.write(d + "execution/EXECUTION_TASK_DONE_11_01.md", work("execution", "1.1", COMPLETE))
    w.write(d + "execution/feedbacks/APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    return w


HANDOFF_WARNING = (f"perfd: warning: work-space/plans/THING/PLAN_THING.md:{HANDOFF_LINE}: the handoff says next is 2.1, "
                   "but the filesystem says 1.2 (use --trust-plan to follow the handoff)\n")


# --- status --------------------------------------------------------------------------------------


def test_status_table_has_a_column_per_field_and_a_row_per_plan(ws: Workspace) -> None:
    out = ws.run("status")
    assert (out.code, out.stderr) == (0, "")  # the plans' own problems are counted, not printed, here
    assert out.stdout == (
        "PLAN    DONE  NEXT  STATE             PENDING FIXES  PARALLEL  SOURCE\n"
        "@DONE   1/1   -     plan_complete     -              -         review files\n"
        "@THING  1/4   1.2   active_execution  -              1.3       review files\n")


def test_status_table_lists_pending_fixes(ws: Workspace) -> None:
    (ws.root / "work-space/plans/DONE/execution/feedbacks/APPROVED_11.md").unlink()
    ws.write("work-space/plans/DONE/execution/feedbacks/FIX_11.md",
             "# FIX: Achievement 1.1\n\n## Critical Issues\n\n1. No.\n")
    rows = ws.run("status").stdout.splitlines()
    assert rows[1].split() == ["@DONE", "0/1", "1.1", "fix_pending", "1.1", "-", "review", "files"]


def test_status_of_an_empty_workspace(tmp_path: Path) -> None:
    w = Workspace(tmp_path / "empty")
    out = w.run("status")
    assert (out.code, out.stdout, out.stderr) == (0, f"no plans under {w.root}\n", "")


def test_a_bad_setting_goes_to_stderr_in_one_line_and_exit_1(ws: Workspace) -> None:
    # The settings issue: a setting perfd cannot use is an error naming the file and line, never a
    # warning beside answers computed with a default the user did not ask for.
    ws.write("perfd.toml", "[cache]\ncapacity = 0\n")
    out = ws.run("status")
    assert (out.code, out.stdout) == (1, "")
    assert out.stderr == "perfd: perfd.toml:2: [cache] capacity = 0: expected int >= 1\n"


def test_status_of_one_plan(ws: Workspace) -> None:
    out = ws.run("status", "@THING")
    assert out.code == 0
    assert out.stdout == (
        "@THING: Build the Thing\n"
        "work-space/plans/THING/PLAN_THING.md\n"
        "1/4 complete · next: 1.2 (active_execution) · source: review files\n"
        "parallel options: 1.3\n"
        "handoff says next: 2.1\n"
        "\n"
        # ✅ takes two columns on a terminal, ▶ and · one: the columns line up by display width.
        "    ACH  STATE                 TITLE                                             FILES\n"
        "✅  1.1  complete              Lay the Groundwork                                "
        "work-space/plans/THING/subplans/SUBPLAN_THING_11.md\n"
        "▶   1.2  active_execution      Wire the Parts Together Across Every Module in t  "  # titles stop at 48
        "work-space/plans/THING/execution/EXECUTION_TASK_THING_12_01.md\n"
        "·   1.3  no_subplan            Measure\n"
        "·   2.1  no_subplan (blocked)  Ship\n")
    assert out.stderr == HANDOFF_WARNING


def test_status_of_a_finished_plan_has_no_handoff_or_parallel_line(ws: Workspace) -> None:
    out = ws.run("status", "@DONE")
    assert (out.code, out.stderr) == (0, "")
    assert out.stdout.splitlines()[:4] == [
        "@DONE: Done", "work-space/plans/DONE/PLAN_DONE.md",
        "1/1 complete · next: - (plan_complete) · source: review files", ""]


def test_status_icons_for_every_state(tmp_path: Path) -> None:
    w = Workspace(tmp_path / "ws")
    states = ["complete", "fix_pending", "no_subplan", "subplan_complete", "subplan_no_execution",
              "active_execution", "create_next_execution", "subplan_all_executed"]
    nums = [f"1.{i}" for i in range(1, len(states) + 1)]
    plan = ["# PLAN: All States", "", "## 📋 Achievement Index", ""]
    plan += [f"- Achievement {n}: {s}" for n, s in zip(nums, states)]
    plan += ["", "## 📋 Achievements", ""] + [f"**Achievement {n}**: {s}\n" for n, s in zip(nums, states)]
    a = "work-space/plans/ALL/"
    w.write(a + "PLAN_ALL.md", "\n".join(plan) + "\n")
    w.write(a + "execution/feedbacks/APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    w.write(a + "execution/feedbacks/FIX_12.md", "# FIX: Achievement 1.2\n\n## Critical Issues\n\n1. No.\n")
    w.write(a + "subplans/SUBPLAN_ALL_14.md", work("subplan", "1.4", COMPLETE))
    w.write(a + "subplans/SUBPLAN_ALL_15.md", work("subplan", "1.5", IN_PROGRESS))
    w.write(a + "subplans/SUBPLAN_ALL_16.md", work("subplan", "1.6", IN_PROGRESS))
    w.write(a + "execution/EXECUTION_TASK_ALL_16_01.md", work("execution", "1.6", IN_PROGRESS))
    w.write(a + "subplans/SUBPLAN_ALL_17.md", work("subplan", "1.7", IN_PROGRESS, planned=("17_01", "17_02")))
    w.write(a + "execution/EXECUTION_TASK_ALL_17_01.md", work("execution", "1.7", COMPLETE))
    w.write(a + "subplans/SUBPLAN_ALL_18.md", work("subplan", "1.8", IN_PROGRESS))
    w.write(a + "execution/EXECUTION_TASK_ALL_18_01.md", work("execution", "1.8", COMPLETE))
    rows = w.run("status", "@ALL").stdout.split("\n\n", 1)[1].splitlines()[1:]
    assert [(r.split()[0], r.split()[1], r.split()[2]) for r in rows] == list(zip(
        ["✅", "🔧", "·", "⏳", "📝", "▶", "➕", "🔍"], nums, states))


def test_status_of_a_plan_in_json_is_the_engines_plan_status(ws: Workspace) -> None:
    out = ws.run("status", "@THING", "--json")
    assert (out.code, out.stderr) == (0, "")  # the handoff warning is in the JSON, not on stderr
    raw = json.loads(out.stdout)
    assert set(raw) == {"plan", "path", "title", "source", "state", "next", "done", "total", "achievements",
                        "parallel_options", "handoff_next", "problems"}
    assert [p["code"] for p in raw["problems"]] == ["stale-handoff"]
    assert [(a["number"], a["state"], a.get("ready", True)) for a in raw["achievements"]] == [
        ("1.1", "complete", True), ("1.2", "active_execution", True), ("1.3", "no_subplan", True),
        ("2.1", "no_subplan", False)]
    assert msgspec.json.decode(out.stdout, type=PlanStatus) == Engine(str(ws.root)).plan_status("@THING")


def test_status_in_json_is_the_engines_workspace_status(ws: Workspace) -> None:
    out = ws.run("status", "--json")
    assert (out.code, out.stderr) == (0, "")
    raw = json.loads(out.stdout)
    assert set(raw) == {"root", "plans", "problems", "plans_dir"}
    assert raw["root"] == str(ws.root) and raw["problems"] == []
    assert raw["plans_dir"] == os.path.join(str(ws.root), "work-space", "plans")  # a view groups plans below it
    # defaults are left out: no pending fixes or parallel options on @DONE, a problem count only where there are problems
    assert [sorted(p) for p in raw["plans"]] == [
        ["done", "next", "path", "plan", "source", "state", "title", "total"],
        ["done", "next", "parallel_options", "path", "plan", "problem_count", "source", "state", "title", "total"]]
    assert [(p["plan"], p["next"], p.get("parallel_options"), p.get("problem_count")) for p in raw["plans"]] == [
        ("DONE", None, None, None), ("THING", "1.2", ["1.3"], 1)]
    assert msgspec.json.decode(out.stdout, type=WorkspaceStatus) == Engine(str(ws.root)).status()


# --- generate --------------------------------------------------------------------------------------


def test_generate_prints_the_prompt_and_a_banner_on_stderr(ws: Workspace) -> None:
    out = ws.run("generate", "@THING")
    assert out.code == 0
    assert out.stdout.startswith("Continue the EXECUTION_TASK work-space/plans/THING/execution/"
                                 "EXECUTION_TASK_THING_12_01.md for achievement 1.2 ")
    assert out.stderr == ("perfd: @THING: achievement 1.2, active_execution (from review files); "
                          "parallel options: 1.3\n" + HANDOFF_WARNING)


def test_generate_for_one_achievement(ws: Workspace) -> None:
    out = ws.run("generate", "@THING", "1.3")
    assert out.code == 0
    assert out.stdout.startswith("Create the SUBPLAN for achievement 1.3 (Measure) of plan \"Build the Thing\".")
    assert out.stderr.splitlines()[0] == (
        "perfd: @THING: achievement 1.3, no_subplan (from review files); parallel options: 1.3")  # its own state


def test_generate_banner_of_a_finished_plan(ws: Workspace) -> None:
    out = ws.run("generate", "@DONE")
    assert out.code == 0
    assert out.stdout.startswith('Plan "Done" (DONE) is complete: 1 of 1 achievements approved')
    assert out.stderr == "perfd: @DONE: no achievement, plan_complete (from review files)\n"


def test_generate_banner_shows_at_most_eight_problems_and_hides_info(ws: Workspace) -> None:
    # ten ids in parallel.json the index does not have: ten warnings; an index entry with no body: info only
    ghosts = [f"9.{i}" for i in range(10)]
    ws.write("work-space/plans/DONE/parallel.json", json.dumps({"plan_name": "DONE", "achievements": [
        {"achievement_id": g, "dependencies": []} for g in ghosts]}))
    ws.write("work-space/plans/DONE/PLAN_DONE.md", DONE.replace("- Achievement 1.1: Only\n",
                                                                "- Achievement 1.1: Only\n- Achievement 1.2: Bodiless\n"))
    full = Engine(str(ws.root)).generate("@DONE")
    assert sorted({(p.code, p.severity) for p in full.problems}) == [
        ("no-body", "info"), ("parallel-not-in-index", "warning")]
    lines = ws.run("generate", "@DONE").stderr.splitlines()
    assert lines[0] == "perfd: @DONE: achievement 1.2, no_subplan (from review files)"
    assert lines[1:9] == [
        f"perfd: warning: work-space/plans/DONE/parallel.json: parallel.json names {g}, which is not in the plan's index"
        for g in ghosts[:8]]
    assert lines[9:] == ["perfd: ... and 2 more (perfd generate --json lists them all)"]


def test_generate_in_json_is_the_engines_result(ws: Workspace) -> None:
    out = ws.run("generate", "--json", "@THING")
    assert (out.code, out.stderr) == (0, "")
    raw = json.loads(out.stdout)
    assert set(raw) == {"plan", "plan_path", "achievement", "state", "source", "prompt", "parallel_options",
                        "problems", "write_path"}
    assert (raw["plan"], raw["achievement"], raw["state"], raw["parallel_options"], raw["write_path"]) == (
        "THING", "1.2", "active_execution", ["1.3"], None)
    assert raw["prompt"] == ws.run("generate", "@THING").stdout
    assert msgspec.json.decode(out.stdout, type=GenerateResult) == Engine(str(ws.root)).generate("@THING")


def test_generate_without_a_plan_uses_the_plan_of_the_folder(ws: Workspace) -> None:
    out = ws.run("generate", cwd=ws.root / "work-space" / "plans" / "DONE" / "subplans")
    assert out.stderr == "perfd: @DONE: no achievement, plan_complete (from review files)\n"


# --- errors ----------------------------------------------------------------------------------------


def test_an_unknown_plan_is_a_user_error(ws: Workspace) -> None:
    out = ws.run("status", "@NOPE")
    assert (out.code, out.stdout) == (1, "")
    assert out.stderr == "perfd: unknown plan @NOPE\nhint: available plans: @DONE, @THING\n"


def test_two_plans_in_one_workspace_need_a_name(ws: Workspace) -> None:
    out = ws.run("generate")
    assert out.code == 1
    assert out.stderr == "perfd: which plan? name one with @NAME\nhint: available plans: @DONE, @THING\n"


def test_next_and_a_number_together_are_a_usage_error(ws: Workspace) -> None:
    out = ws.run("generate", "@THING", "1.3", "--next")
    assert (out.code, out.stdout) == (2, "")
    assert out.stderr == ("perfd: give either --next or an achievement number, not both\n"
                          "hint: perfd generate @PLAN [--next | ACHIEVEMENT]\n")
