"""Workflow state, "next", parallel options, handoff conflicts (PLAN-FORMAT.md, "Workflow state")."""

from __future__ import annotations

import pytest

from perfd.engine.errors import UserError
from perfd.engine.types import PlanStatus

from engine_helpers import WS, by_number, codes, plan_text

NAME = "DEMO"


def status(ws: WS, **kw: object) -> PlanStatus:
    return ws.engine().plan_status("@" + NAME, **kw)  # type: ignore[arg-type]


def states(st: PlanStatus) -> dict[str, str]:
    return {a.number: a.state for a in st.achievements}


@pytest.fixture
def demo(ws: WS) -> WS:
    """A plan with review files (an empty feedbacks folder) and achievements 1.1-1.3."""
    ws.plan(NAME, ["1.1", "1.2", "1.3"])
    ws.feedbacks(NAME)
    return ws


# --- the states, one by one -----------------------------------------------------------


def test_no_subplan(demo: WS) -> None:
    st = status(demo)
    assert states(st) == {"1.1": "no_subplan", "1.2": "no_subplan", "1.3": "no_subplan"}
    assert st.next == "1.1" and st.state == "no_subplan"
    assert st.source == "review files"
    assert (st.done, st.total) == (0, 3)


def test_subplan_no_execution(demo: WS) -> None:
    sp = demo.subplan(NAME, "1.1", "📋 Design Phase")
    st = status(demo)
    a = by_number(st)["1.1"]
    assert a.state == "subplan_no_execution" and a.subplan == str(sp)
    assert st.next == "1.1" and st.state == "subplan_no_execution"


@pytest.mark.parametrize("exec_status", ["🔄 In Progress", "📋 Ready for Execution", "🎯 Executing", "Not Started",
                                         "✅ Design Complete, Ready for Execution", "PENDING"])
def test_active_execution(demo: WS, exec_status: str) -> None:
    demo.subplan(NAME, "1.1", "🔄 In Progress", planned=["11_01", "11_02"])
    ex = demo.execution(NAME, "1.1", "01", exec_status)
    st = status(demo)
    a = by_number(st)["1.1"]
    assert a.state == "active_execution"
    assert a.active_execution == str(ex)
    assert a.executions == [str(ex)]
    assert st.state == "active_execution" and st.next == "1.1"


def test_active_execution_is_the_first_incomplete_one(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01", "11_02", "11_03"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    e2 = demo.execution(NAME, "1.1", "02", "In Progress")
    demo.execution(NAME, "1.1", "03", "Not Started")
    assert by_number(status(demo))["1.1"].active_execution == str(e2)


def test_create_next_execution(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01", "11_02"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    st = status(demo)
    a = by_number(st)["1.1"]
    assert a.state == "create_next_execution" and a.planned_executions == 2
    assert st.state == "create_next_execution"


def test_subplan_all_executed_with_planned_table(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01", "11_02"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    demo.execution(NAME, "1.1", "02", "✅ COMPLETE")
    assert states(status(demo))["1.1"] == "subplan_all_executed"


def test_subplan_all_executed_without_table_the_files_are_the_plan(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress")
    demo.execution(NAME, "1.1", "01", "Complete")
    st = status(demo)
    a = by_number(st)["1.1"]
    assert a.state == "subplan_all_executed" and a.planned_executions is None


def test_subplan_complete_awaits_review_and_is_skipped(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "✅ Complete")
    st = status(demo)
    assert states(st)["1.1"] == "subplan_complete"
    assert st.awaiting_review == ["1.1"]
    assert st.next == "1.2" and st.state == "no_subplan"


def test_subplan_design_complete_is_not_complete(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "✅ Design Complete, Ready for Execution")
    assert states(status(demo))["1.1"] == "subplan_no_execution"


def test_complete_when_approved(demo: WS) -> None:
    ap = demo.approved(NAME, "1.1")
    st = status(demo)
    a = by_number(st)["1.1"]
    assert a.state == "complete" and a.approved == str(ap)
    assert st.next == "1.2" and (st.done, st.total) == (1, 3)


def test_complete_regardless_of_subplan_status(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "🔄 In Progress")
    demo.execution(NAME, "1.1", "01", "In Progress")
    demo.approved(NAME, "1.1")
    assert states(status(demo))["1.1"] == "complete"


def test_fix_pending(demo: WS) -> None:
    demo.subplan(NAME, "1.2", "✅ Complete")
    fx = demo.fix(NAME, "1.2")
    st = status(demo)
    a = by_number(st)["1.2"]
    assert a.state == "fix_pending" and a.fix == str(fx)
    # The first pending fix is next, before the earlier 1.1 that has no SUBPLAN.
    assert st.next == "1.2" and st.state == "fix_pending"
    assert st.pending_fixes == ["1.2"]


def test_fix_then_approved_is_complete(demo: WS) -> None:
    demo.fix(NAME, "1.1")
    demo.approved(NAME, "1.1")
    st = status(demo)
    assert states(st)["1.1"] == "complete" and st.pending_fixes == []


def test_fix_resolution_is_not_a_new_fix(demo: WS) -> None:
    demo.write(demo.feedbacks(NAME) / "FIX_11_RESOLUTION.md", "# Resolution\n")
    assert states(status(demo))["1.1"] == "no_subplan"


def test_first_pending_fix_in_index_order(demo: WS) -> None:
    demo.fix(NAME, "1.3")
    demo.fix(NAME, "1.2")
    st = status(demo)
    assert st.pending_fixes == ["1.2", "1.3"] and st.next == "1.2"


def test_plan_complete(demo: WS) -> None:
    for n in ("1.1", "1.2", "1.3"):
        demo.approved(NAME, n)
    st = status(demo)
    assert st.state == "plan_complete" and st.next is None
    assert (st.done, st.total) == (3, 3)


def test_every_state_in_one_plan(ws: WS) -> None:
    nums = ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8"]
    ws.plan(NAME, nums)
    ws.approved(NAME, "1.1")
    ws.subplan(NAME, "1.2", "✅ Complete")
    ws.fix(NAME, "1.2")
    ws.subplan(NAME, "1.3", "✅ Complete")
    ws.subplan(NAME, "1.4", "📋 Design Phase")
    ws.subplan(NAME, "1.5", "In Progress")
    ws.execution(NAME, "1.5", "01", "🔄 In Progress")
    ws.subplan(NAME, "1.6", "In Progress", planned=["16_01", "16_02"])
    ws.execution(NAME, "1.6", "01", "✅ Complete")
    ws.subplan(NAME, "1.7", "In Progress", planned=["17_01"])
    ws.execution(NAME, "1.7", "01", "✅ Complete")
    st = status(ws)
    assert states(st) == {"1.1": "complete", "1.2": "fix_pending", "1.3": "subplan_complete",
                          "1.4": "subplan_no_execution", "1.5": "active_execution",
                          "1.6": "create_next_execution", "1.7": "subplan_all_executed", "1.8": "no_subplan"}
    assert st.next == "1.2" and st.state == "fix_pending"
    assert st.awaiting_review == ["1.3"]
    assert st.parallel_options == []  # no parallel.json: sequential


def test_nothing_actionable_when_all_remaining_await_review(demo: WS) -> None:
    demo.approved(NAME, "1.1")
    demo.subplan(NAME, "1.2", "✅ Complete")
    demo.subplan(NAME, "1.3", "✅ Complete")
    st = status(demo)
    assert st.next is None and st.state == "subplan_complete"
    assert st.awaiting_review == ["1.2", "1.3"]
    g = demo.engine().generate("@" + NAME)
    assert g.achievement is None and "awaiting review" in g.prompt and "1.2" in g.prompt


# --- numbers: NN resolution ---------------------------------------------------------------


def test_multi_digit_minor_nn_resolved_against_the_index(ws: WS) -> None:
    ws.plan(NAME, ["3.1", "3.2", "3.10"])
    ws.approved(NAME, "3.10")  # APPROVED_310.md
    ws.subplan(NAME, "3.1", "In Progress")  # SUBPLAN_DEMO_31.md
    ws.execution(NAME, "3.10", "01", "In Progress", achievement=None)  # EXECUTION_TASK_DEMO_310_01.md
    st = status(ws)
    assert states(st) == {"3.1": "subplan_no_execution", "3.2": "no_subplan", "3.10": "complete"}
    assert by_number(st)["3.10"].executions and not by_number(st)["3.1"].executions


@pytest.mark.parametrize("title,expected", [("# APPROVED: Achievement 11.1\n", "11.1"),
                                            ("# APPROVED: Achievement 1.11\n", "1.11")])
def test_ambiguous_nn_resolved_by_the_review_files_title(ws: WS, title: str, expected: str) -> None:
    ws.plan(NAME, ["1.11", "11.1"])
    ws.approved(NAME, expected, title=title)  # both are APPROVED_111.md
    st = status(ws)
    assert states(st)[expected] == "complete"
    other = "1.11" if expected == "11.1" else "11.1"
    assert states(st)[other] == "no_subplan"


def test_ambiguous_nn_without_a_title_is_reported(ws: WS) -> None:
    ws.plan(NAME, ["1.11", "11.1"])
    ws.approved(NAME, "1.11", title="Looks good\n")
    st = status(ws)
    assert states(st) == {"1.11": "no_subplan", "11.1": "no_subplan"}
    p = next(p for p in st.problems if p.code == "review-not-in-index")
    assert "ambiguous" in p.message and "APPROVED_111.md" in p.message


def test_ambiguous_nn_subplan_trusted_by_its_achievement_line(ws: WS) -> None:
    ws.plan(NAME, ["1.11", "11.1"])
    ws.feedbacks(NAME)
    ws.subplan(NAME, "11.1", "In Progress")  # SUBPLAN_DEMO_111.md, **Achievement**: 11.1
    st = status(ws)
    assert states(st) == {"1.11": "no_subplan", "11.1": "subplan_no_execution"}


def test_review_file_for_unknown_achievement_is_reported(demo: WS) -> None:
    demo.approved(NAME, "9.9", title="ok\n")
    st = status(demo)
    assert "review-not-in-index" in codes(st.problems)
    assert st.done == 0


def test_three_part_numbers(ws: WS) -> None:
    ws.plan(NAME, ["3.5", "3.5.1", "3.5.2"])
    ws.approved(NAME, "3.5")
    ws.approved(NAME, "3.5.1")  # APPROVED_351.md
    ws.subplan(NAME, "3.5.2", "In Progress")  # SUBPLAN_DEMO_352.md
    ws.execution(NAME, "3.5.2", "01", "🔄 In Progress")
    st = status(ws)
    assert states(st) == {"3.5": "complete", "3.5.1": "complete", "3.5.2": "active_execution"}
    assert st.next == "3.5.2"
    g = ws.engine().generate("@" + NAME)
    assert g.achievement == "3.5.2" and "EXECUTION_TASK_DEMO_352_01.md" in g.prompt


def test_subplan_for_unknown_achievement_is_reported(demo: WS) -> None:
    demo.subplan(NAME, "9.9", "In Progress")
    demo.execution(NAME, "9.9", "01", "In Progress")
    st = status(demo)
    assert "subplan-not-in-index" in codes(st.problems)
    assert "execution-not-in-index" in codes(st.problems)


# --- parallel.json ------------------------------------------------------------------------


def test_parallel_options_and_dependencies(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2", "1.3", "2.1"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": [], "1.2": ["1.1"], "1.3": [], "2.1": ["1.2", "1.3"]})
    st = status(ws)
    assert st.next == "1.1" and st.parallel_options == ["1.3"]
    a = by_number(st)
    assert a["1.2"].dependencies == ["1.1"] and not a["1.2"].ready
    assert a["1.3"].ready and a["1.1"].ready and not a["2.1"].ready

    ws.approved(NAME, "1.1")
    st = status(ws)
    assert st.next == "1.2" and st.parallel_options == ["1.3"]
    ws.approved(NAME, "1.2")
    ws.approved(NAME, "1.3")
    st = status(ws)
    assert st.next == "2.1" and st.parallel_options == []


def test_next_skips_achievements_waiting_on_dependencies(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2", "1.3"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": ["1.3"], "1.2": ["1.3"], "1.3": []})
    st = status(ws)
    assert st.next == "1.3" and st.parallel_options == []


def test_parallel_options_exclude_awaiting_review(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2", "1.3"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": [], "1.2": [], "1.3": []})
    ws.subplan(NAME, "1.2", "✅ Complete")
    st = status(ws)
    assert st.next == "1.1" and st.parallel_options == ["1.3"] and st.awaiting_review == ["1.2"]


def test_parallel_unknown_ids_reported_not_crashing(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": [], "1.2": ["7.7"], "8.8": []})
    st = status(ws)
    c = codes(st.problems)
    assert "parallel-unknown-id" in c and "parallel-not-in-index" in c
    assert st.next == "1.1"
    # An unknown dependency is reported, not waited on forever (as in the levels).
    assert st.parallel_options == ["1.2"] and by_number(st)["1.2"].ready
    ws.engine().generate("@" + NAME)


def test_dependency_listed_in_parallel_json_but_not_in_the_plan_does_not_block(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"0.9": [], "1.1": ["0.9"], "1.2": ["1.1"]})
    st = status(ws)
    assert "parallel-not-in-index" in codes(st.problems)
    assert st.next == "1.1" and st.parallel_options == []


def test_parallel_cycle_reported_with_the_cycle_named(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2", "1.3"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": ["1.2"], "1.2": ["1.1"], "1.3": []})
    st = status(ws)
    p = next(p for p in st.problems if p.code == "parallel-cycle")
    assert "1.1 -> 1.2 -> 1.1" in p.message
    assert st.next == "1.3"
    assert not by_number(st)["1.1"].ready and not by_number(st)["1.2"].ready


def test_every_achievement_on_a_cycle_leaves_nothing_next(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2"])
    ws.feedbacks(NAME)
    ws.parallel(NAME, {"1.1": ["1.2"], "1.2": ["1.1"]})
    st = status(ws)
    assert st.next is None and st.state != "plan_complete"
    g = ws.engine().generate("@" + NAME)
    assert g.achievement is None and "dependency" in g.prompt
    assert "parallel-cycle" in codes(g.problems)


def test_invalid_parallel_json_is_a_problem_and_plan_is_sequential(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2"])
    ws.feedbacks(NAME)
    ws.write(ws.folder(NAME) / "parallel.json", "{not json")
    st = status(ws)
    assert "parallel-invalid" in codes(st.problems)
    assert st.next == "1.1" and st.parallel_options == []


# --- handoff ------------------------------------------------------------------------------


def test_handoff_agreeing_is_no_conflict(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], handoff_next="1.1"))
    ws.feedbacks(NAME)
    st = status(ws)
    assert st.handoff_next == "1.1" and "stale-handoff" not in codes(st.problems)


def test_stale_handoff_naming_a_complete_achievement(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], handoff_next="1.1"))
    ws.approved(NAME, "1.1")
    st = status(ws)
    assert st.next == "1.2"
    p = next(p for p in st.problems if p.code == "stale-handoff")
    assert "1.1" in p.message and "1.2" in p.message and p.line is not None


def test_handoff_conflict_filesystem_wins_unless_trust_plan(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2", "1.3"], handoff_next="1.3"))
    ws.feedbacks(NAME)
    ws.subplan(NAME, "1.3", "In Progress")
    st = status(ws)
    assert st.next == "1.1" and "stale-handoff" in codes(st.problems)
    g = ws.engine().generate("@" + NAME)
    assert g.achievement == "1.1" and g.state == "no_subplan"
    assert "stale-handoff" in codes(g.problems)

    st = status(ws, trust_plan=True)
    assert st.next == "1.3"
    g = ws.engine().generate("@" + NAME, trust_plan=True)
    assert g.achievement == "1.3" and g.state == "subplan_no_execution"


def test_trust_plan_without_a_handoff_changes_nothing(demo: WS) -> None:
    assert status(demo, trust_plan=True).next == "1.1"


def test_handoff_naming_an_unknown_achievement(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1"], handoff_next="7.7"))
    ws.feedbacks(NAME)
    st = status(ws)
    assert "handoff-unknown" in codes(st.problems) and st.next == "1.1"


# --- generate: explicit achievement -------------------------------------------------------


def test_generate_for_a_named_achievement(demo: WS) -> None:
    demo.approved(NAME, "1.1")
    eng = demo.engine()
    g = eng.generate("@" + NAME, achievement="1.3")
    assert g.achievement == "1.3" and g.state == "no_subplan"
    g = eng.generate("@" + NAME, achievement="1.1")
    assert g.state == "complete" and "nothing to do" in g.prompt and g.write_path is None


def test_generate_for_an_unknown_achievement_is_a_user_error(demo: WS) -> None:
    with pytest.raises(UserError) as ei:
        demo.engine().generate("@" + NAME, achievement="9.9")
    assert ei.value.code == "unknown-achievement"
    assert ei.value.candidates == ["1.1", "1.2", "1.3"]


# --- source -------------------------------------------------------------------------------


def test_source_review_files_with_an_empty_feedbacks_folder(demo: WS) -> None:
    assert status(demo).source == "review files"


def test_review_files_decide_the_achievements_they_name_and_marks_the_rest(ws: WS) -> None:
    # Per achievement (issue 24): 1.1, which no review file names, is decided by its ✅; 1.3's
    # FIX wins over its ✅; the plan-wide "all done" line is not read in a plan that keeps reviews.
    ws.plan(NAME, plan_text(["1.1", "1.2", "1.3", "1.4"], done_index=["1.1", "1.3"],
                            extra="ALL ACHIEVEMENTS DONE"))
    ws.approved(NAME, "1.2")
    ws.fix(NAME, "1.3")
    st = status(ws)
    assert st.source == "review files"
    assert states(st) == {"1.1": "complete", "1.2": "complete", "1.3": "fix_pending", "1.4": "no_subplan"}
    p = next(p for p in st.problems if p.code == "marked-done-not-approved")
    assert "1.1" in p.message and p.severity == "info"
    by = {a.number: a.decided_by for a in st.achievements}
    assert by["1.2"] == "APPROVED_12.md" and by["1.3"] == "FIX_13.md" and "index line" in by["1.1"]


def test_source_plan_marks_without_review_files(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], done_index=["1.1"]))
    st = status(ws)
    assert st.source == "plan marks"
    assert states(st) == {"1.1": "complete", "1.2": "no_subplan"}
    g = ws.engine().generate("@" + NAME)
    assert g.source == "plan marks" and g.achievement == "1.2"


def test_a_single_review_file_decides_only_its_achievement(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], done_index=["1.1"]))
    ws.fix(NAME, "1.2")
    st = status(ws)
    assert st.source == "review files"
    assert states(st) == {"1.1": "complete", "1.2": "fix_pending"}


def test_a_stray_review_named_otherwise_does_not_flip_the_plan(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1", "1.2"], done_index=["1.1"]))
    ws.write(ws.feedbacks(NAME) / f"EXECUTION_ANALYSIS_{NAME}-REVIEW.md", "# Review of the execution\n")
    st = status(ws)
    assert st.source == "plan marks"
    assert states(st) == {"1.1": "complete", "1.2": "no_subplan"}
    assert not [p for p in st.problems if p.code == "marked-done-not-approved"]


def test_review_file_naming_an_unknown_achievement_in_its_title_is_reported(demo: WS) -> None:
    demo.approved(NAME, "9.9")  # APPROVED_99.md, "# APPROVED: Achievement 9.9"
    demo.fix(NAME, "8.8")
    st = status(demo)
    assert codes(st.problems).count("review-not-in-index") == 2
