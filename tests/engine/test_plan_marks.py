"""Older plans with no review files: the plan's own marks decide (PLAN-FORMAT.md, "Workflow state")."""

from __future__ import annotations

import pytest

from perfd.engine.types import PlanStatus

from engine_helpers import WS

NAME = "OLD"
NUMS = ["0.1", "0.2", "1.1", "1.2", "3.1", "3.2", "4.1", "4.2", "5.1", "3.5.1"]


def old_plan(extra: str = "", *, index_done: str = "", body_extra: str = "") -> str:
    idx = "".join(f"- {'✅ ' if n == index_done else ''}Achievement {n}: T{n}\n" for n in NUMS)
    bodies = "".join(f"**Achievement {n}**: T{n}{body_extra if n == '0.2' else ''}\n\nbody\n\n" for n in NUMS)
    return (f"# PLAN: Old plan\n\n**Status**: In Progress\n\n## 📋 Achievement Index\n\n{idx}\n"
            f"## 📋 Achievements\n\n{bodies}## 📊 Subplan Tracking\n\n{extra}\n")


def complete(ws: WS) -> set[str]:
    st = status(ws)
    assert st.source == "plan marks"
    return {a.number for a in st.achievements if a.state == "complete"}


def status(ws: WS) -> PlanStatus:
    return ws.engine().plan_status("@" + NAME)


@pytest.mark.parametrize("extra,expected", [
    ("- [x] **Achievement 3.1**: Three one", {"3.1"}),
    ("- [X] **Achievement 3.1**: Three one", {"3.1"}),
    ("- [x] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup Complete", {"0.1"}),
    ("- [x] **SUBPLAN_OLD_07**: Achievement 4.1 & 4.2 - Fours Complete", {"4.1", "4.2"}),
    ("- [x] **SUBPLAN_OLD_07**: Achievement 4.1 and 4.2 - Fours", {"4.1", "4.2"}),
    ("- [ ] **Achievement 3.1**: Three one", set()),
    ("- [ ] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup Complete", set()),
    ("- **SUBPLAN_01**: Achievement 0.1 (Setup) - Status: ✅ COMPLETE", {"0.1"}),
    ("- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: 🔄 In Progress", set()),
    ("- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: ✅ Design Complete, Ready for Execution", set()),
    ("- ✅ **Achievement 0.1 COMPLETE**: set up", {"0.1"}),
    ("- ✅ Achievement 1.2: T1.2 (SUBPLAN_03, EXECUTION_TASK_03_01)", {"1.2"}),
    ("- [x] **Achievement 3.5.1**: Deep", {"3.5.1"}),
    ("🎉 ALL ACHIEVEMENTS DONE", set(NUMS)),
    ("When all achievements are done, archive the plan.", set()),
    ("Achievement 0.1 is complete, says the prose", set()),
])
def test_mark_forms(ws: WS, extra: str, expected: set[str]) -> None:
    ws.plan(NAME, old_plan(extra))
    assert complete(ws) == expected


def test_done_mark_on_the_index_line(ws: WS) -> None:
    ws.plan(NAME, old_plan(index_done="1.1"))
    assert complete(ws) == {"1.1"}


def test_done_mark_after_a_body_header(ws: WS) -> None:
    ws.plan(NAME, old_plan(body_extra=" ✅"))
    assert complete(ws) == {"0.2"}


def test_all_achievements_done_in_the_status_metadata(ws: WS) -> None:
    ws.plan(NAME, old_plan().replace("**Status**: In Progress", "**Status**: ✅ ALL ACHIEVEMENTS DONE"))
    st = status(ws)
    assert st.state == "plan_complete" and st.next is None and st.done == len(NUMS)


def test_subplan_with_complete_status(ws: WS) -> None:
    ws.plan(NAME, old_plan())
    ws.subplan(NAME, "1.1", "✅ Complete")
    ws.subplan(NAME, "1.2", "✅ Design Complete, Ready for Execution")
    st = status(ws)
    a = {x.number: x.state for x in st.achievements}
    assert a["1.1"] == "complete"
    assert a["1.2"] == "subplan_no_execution"
    assert st.next == "0.1"


def test_sequentially_numbered_subplans_trusted_by_their_achievement_line(ws: WS) -> None:
    # SUBPLAN_OLD_01 is for 0.1, _02 for 1.1 (not 0.2), _03 for 3.5.1 (there is no 0.3).
    ws.plan(NAME, old_plan())
    ws.subplan(NAME, "0.1", "✅ Complete", file_nn="01")
    ws.subplan(NAME, "1.1", "✅ Complete", file_nn="02")
    ws.subplan(NAME, "3.5.1", "🔄 In Progress", file_nn="03")
    ws.execution(NAME, "3.5.1", "01", "🔄 In Progress", file_nn="03")
    st = status(ws)
    a = {x.number: x for x in st.achievements}
    assert {n for n, x in a.items() if x.state == "complete"} == {"0.1", "1.1"}
    assert a["0.2"].state == "no_subplan" and a["0.2"].subplan is None
    assert a["3.5.1"].state == "active_execution"
    assert a["3.5.1"].subplan is not None and a["3.5.1"].subplan.endswith("SUBPLAN_OLD_03.md")
    assert st.next == "0.2"
    assert [p for p in st.problems if p.code.endswith("not-in-index")] == []


def test_old_plan_next_and_prompt(ws: WS) -> None:
    ws.plan(NAME, old_plan("- [x] **Achievement 0.1**: a\n- [x] **Achievement 0.2**: b"))
    g = ws.engine().generate("@" + NAME)
    assert g.source == "plan marks" and g.achievement == "1.1" and g.state == "no_subplan"


def test_every_mark_form_together_makes_the_plan_complete(ws: WS) -> None:
    extra = "\n".join([
        "- [x] **Achievement 3.1**: a",
        "- [x] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup Complete",
        "- [x] **SUBPLAN_OLD_07**: Achievement 4.1 & 4.2 - Fours Complete",
        "- **SUBPLAN_05**: Achievement 5.1 (T) - Status: ✅ COMPLETE",
        "- ✅ Achievement 1.2: T1.2 (SUBPLAN_03, EXECUTION_TASK_03_01)",
        "- [x] **Achievement 3.5.1**: Deep",
    ])
    ws.plan(NAME, old_plan(extra, index_done="1.1", body_extra=" ✅"))
    ws.subplan(NAME, "3.2", "✅ COMPLETE")
    st = status(ws)
    assert st.state == "plan_complete" and st.done == st.total == len(NUMS)
    g = ws.engine().generate("@" + NAME)
    assert g.state == "plan_complete" and g.source == "plan marks"
