"""Notations of a second real workspace (issue: real plans, round two), each as a small synthetic plan."""

from __future__ import annotations

import pytest

from perfd.engine.docs_parser import parse_work
from perfd.engine.plan_parser import nn_of, parse_plan
from perfd.engine.types import PlanStatus

from engine_helpers import WS, plan_text, work_text

NAME = "NOTE"


def status(ws: WS) -> PlanStatus:
    return ws.engine().plan_status("@" + NAME)


def states(st: PlanStatus) -> dict[str, str]:
    return {a.number: a.state for a in st.achievements}


# --- an EXECUTION_TASK's status: the last real one, not the first -------------------------------


def execution(*lines: str) -> bytes:
    return ("# EXECUTION_TASK: Achievement 1.1\n\n**Achievement**: 1.1\n" + "\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("lines,expected", [
    (["**Status**: Starting Execution", "", "## Work", "", "done things", "", "**Status**: ✅ COMPLETE"], "complete"),
    (["**Status**: 🔄 In Progress", "", "## ✅ Execution Complete", "", "All good."], "complete"),
    (["**Status**: In Progress", "", "## Done", "", "**Completed**: 2025-11-14"], "complete"),
    # A template's placeholder is no status, and the first line stands.
    (["**Status**: 📋 Ready for Execution", "", "## Log", "", "**Status**: [In Progress / Complete]"], "not_started"),
    (["**Status**: In Progress", "", "**Completed**: [YYYY-MM-DD]"], "in_progress"),
    # A "ready" footer after the work is done is the template's next step, not a reset.
    (["**Status**: ✅ Complete", "", "## Next", "", "**Status**: 📋 Ready to Execute"], "complete"),
    # A later real status that is not complete wins over an earlier complete one.
    (["**Status**: ✅ Complete", "", "## Iteration 2", "", "**Status**: 🔄 In Progress"], "in_progress"),
    # A status shown in a fenced example says nothing of this file.
    (["**Status**: In Progress", "", "```markdown", "**Status**: ✅ Complete", "```"], "in_progress"),
    (["**Status**: In Progress", "", "## ✅ Completion Checklist", "", "## 🎯 Definition of Done"], "in_progress"),
])
def test_execution_status_is_its_last_real_one(lines: list[str], expected: str) -> None:
    assert parse_work(execution(*lines), "E.md", "execution").status == expected


def test_the_real_template_placeholder_keeps_the_execution_active(ws: WS) -> None:
    ws.plan(NAME, ["1.1"])
    ws.subplan(NAME, "1.1", "In Progress")
    ws.write(ws.folder(NAME) / "execution" / f"EXECUTION_TASK_{NAME}_11_01.md",
             execution("**Status**: 📋 Ready for Execution", "", "## Result", "", "**Status**: [In Progress / Complete]",
                       "", "**EXECUTION_TASK Status**: 📋 Ready for Execution"))
    assert states(status(ws)) == {"1.1": "active_execution"}


def test_a_finished_execution_with_a_stale_first_line_is_finished(ws: WS) -> None:
    ws.plan(NAME, ["1.1"])
    ws.subplan(NAME, "1.1", "In Progress")
    ws.write(ws.folder(NAME) / "execution" / f"EXECUTION_TASK_{NAME}_11_01.md",
             execution("**Status**: Starting Execution", "", "## Completion", "", "**Status**: ✅ COMPLETE"))
    assert states(status(ws)) == {"1.1": "subplan_all_executed"}


# --- done marks in other words -------------------------------------------------------------------


@pytest.mark.parametrize("extra,expected", [
    ("Achievement 1.1 complete (2025-11-10, all tests pass)", {"1.1"}),
    ("- Achievement 1.1 complete - merged", {"1.1"}),
    ("**Status**: Achievement 1.1 Complete", {"1.1"}),
    ("- ✅ Priority 1: 2/2 achievements", {"1.1", "1.2"}),
    ("- ✅ **Priority 1**: 1/2 achievements", set()),
    ("- ✅ Priority 2: 3/3 achievements", set()),
    ("Achievement 1.1 is complete, says the prose", set()),
    ("Achievement 1.1 complete when the tests pass", set()),
])
def test_done_marks_in_other_words(ws: WS, extra: str, expected: set[str]) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], extra=extra))
    st = status(ws)
    assert st.source == "plan marks"
    assert {n for n, s in states(st).items() if s == "complete"} == expected


def test_priority_line_without_priority_groups_goes_by_number(ws: WS) -> None:
    ws.plan(NAME, plan_text(["0.1", "0.2", "1.1"], priority=None, extra="✅ Priority 0: 2/2 achievements"))
    assert {n for n, s in states(status(ws)).items() if s == "complete"} == {"0.1", "0.2"}


@pytest.mark.parametrize("line,done", [
    ("**Completed**: 2025-11-10", True),
    ("**Completion Date**: 10 Nov 2025", True),
    ("**Completed**: [YYYY-MM-DD]", False),
    ("**Status**: ✅ Complete", True),
    ("**Status**: ✅ Design Complete, Ready for Execution", False),
    ("**Status**: 🔄 In Progress", False),
])
def test_a_body_status_or_completion_date(ws: WS, line: str, done: bool) -> None:
    text = plan_text(["1.1", "1.2"]).replace("Body of 1.1.", "Body of 1.1.\n\n" + line)
    ws.plan(NAME, text)
    assert states(status(ws))["1.1"] == ("complete" if done else "no_subplan")
    assert states(status(ws))["1.2"] == "no_subplan"


# --- `### 1. Title - 3h` under an achievements heading ---------------------------------------------


NUMBERED = """# PLAN: Numbered

**Status**: In Progress

## 🎯 Goal

Make it.

## 📋 Achievements

### 1. Set up the project - 3h

Do the setup.

### 2. Write the parser - 2-3 hours

Parse it.

### 3. Ship ✅

Shipped.

## Notes

### 4. Not an achievement

Prose under another heading.
"""


def test_numbered_achievements_under_an_achievements_heading() -> None:
    doc = parse_plan(NUMBERED.encode(), "PLAN_N.md")
    assert [(a.number, a.title, a.effort) for a in doc.achievements] == [
        ("1", "Set up the project", "3h"), ("2", "Write the parser", "2-3 hours"), ("3", "Ship", None)]
    assert "no-achievements" not in [p.code for p in doc.problems]
    assert nn_of("1") == "01" and nn_of("3.1") == "31"


def test_numbered_achievements_map_to_two_digit_files(ws: WS) -> None:
    ws.plan(NAME, NUMBERED)
    ws.write(ws.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_01.md", work_text("subplan", None, "In Progress"))
    st = status(ws)
    assert states(st) == {"1": "subplan_no_execution", "2": "no_subplan", "3": "complete"}
    assert st.next == "1"


# --- a SUBPLAN names its achievement in `**Achievement Addressed**:` -----------------------------


def test_achievement_addressed_wins_over_the_file_number(ws: WS) -> None:
    ws.plan(NAME, plan_text(["0.1", "1.1", "1.2"]))
    text = ("# SUBPLAN: Second one\n\n**Achievement Addressed**: Achievement 1.2 (Title 1.2)\n"
            "**Status**: In Progress\n")
    ws.write(ws.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_02.md", text)
    ws.write(ws.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_01.md",
             "# SUBPLAN: First\n\n**Achievement Addressed**: 0.1\n**Status**: ✅ Complete\n")
    st = status(ws)
    assert states(st) == {"0.1": "complete", "1.1": "no_subplan", "1.2": "subplan_no_execution"}
    assert parse_work(text.encode(), "S.md", "subplan").achievement == "1.2"
