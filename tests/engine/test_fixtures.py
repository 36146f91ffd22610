"""The three real plans in ../shared/fixtures and their expected answers (fixtures/README.md)."""

from __future__ import annotations

import os

import pytest

from perfd.engine.engine import Engine
from perfd.engine.plan_parser import parse_plan

from engine_helpers import by_number, codes, fixtures_root


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(fixtures_root())


def plan_path(name: str) -> str:
    return os.path.join(fixtures_root(), "work-space", "plans", name, f"PLAN_{name}.md")


def test_discovery(engine: Engine) -> None:
    assert [p.name for p in engine.workspace.plans()] == [
        "LLM-DASHBOARD-CLI", "PARALLEL-EXECUTION-AUTOMATION", "PROMPT-GENERATOR-UX-AND-FOUNDATION"]
    # README.md, PLAN-UPDATE-SUMMARY.md and documentation/PLAN_*.md are not plans.


def test_llm_dashboard_cli(engine: Engine) -> None:
    st = engine.plan_status("@LLM-DASHBOARD-CLI")
    assert (st.next, st.state, st.source) == ("1.1", "fix_pending", "review files")
    assert st.pending_fixes == ["1.1", "1.2", "2.3"]
    a = by_number(st)
    assert a["1.1"].fix is not None and a["1.1"].fix.endswith("FIX_11.md") and a["1.1"].approved is None
    assert a["1.2"].state == "fix_pending" and a["2.3"].state == "fix_pending"
    for n in ("0.1", "0.2", "0.3", "0.4", "1.3", "2.1", "2.2", "3.1"):
        assert a[n].state == "complete", n
    assert (st.done, st.total) == (8, 13)
    g = engine.generate("@LLM-DASHBOARD-CLI")
    assert (g.achievement, g.state, g.source) == ("1.1", "fix_pending", "review files")
    assert os.path.join("feedbacks", "FIX_11.md") in g.prompt
    assert "Massive Scope Creep" in g.prompt  # a critical issue quoted from FIX_11.md
    assert g.write_path is not None and g.write_path.endswith("FIX_11_RESOLUTION.md")
    assert f"lines {a['1.1'].body_line}-{a['1.1'].body_end}" in g.prompt


def test_llm_dashboard_cli_other_fixes(engine: Engine) -> None:
    for n, nn in (("1.2", "12"), ("2.3", "23")):
        g = engine.generate("@LLM-DASHBOARD-CLI", achievement=n)
        assert g.state == "fix_pending"
        assert os.path.join("feedbacks", f"FIX_{nn}.md") in g.prompt


def test_parallel_execution_automation(engine: Engine) -> None:
    st = engine.plan_status("@PARALLEL-EXECUTION-AUTOMATION")
    assert (st.next, st.state, st.source) == ("3.1", "active_execution", "review files")
    a = by_number(st)
    for n in ("1.1", "1.2", "1.3", "2.1", "2.2", "2.3"):
        assert a[n].state == "complete", n
    assert a["3.1"].active_execution is not None
    assert a["3.1"].active_execution.endswith("EXECUTION_TASK_PARALLEL-EXECUTION-AUTOMATION_31_01.md")
    assert st.handoff_next == "1.1"
    stale = [p for p in st.problems if p.code == "stale-handoff"]
    assert len(stale) == 1 and "1.1" in stale[0].message and "3.1" in stale[0].message
    assert stale[0].line == parse_plan(open(plan_path("PARALLEL-EXECUTION-AUTOMATION"), "rb").read(),
                                       "p").handoff_line
    assert st.parallel_options == ["3.2", "3.3"]  # parallel.json: 3.x depend only on complete work
    g = engine.generate("@PARALLEL-EXECUTION-AUTOMATION")
    assert (g.achievement, g.state) == ("3.1", "active_execution")
    assert "EXECUTION_TASK_PARALLEL-EXECUTION-AUTOMATION_31_01.md" in g.prompt
    assert "stale-handoff" in codes(g.problems)


def test_parallel_execution_automation_trust_plan(engine: Engine) -> None:
    # The handoff names 1.1, which is complete: trusting the plan cannot make it next.
    st = engine.plan_status("@PARALLEL-EXECUTION-AUTOMATION", trust_plan=True)
    assert st.next == "3.1"


def test_prompt_generator_ux_and_foundation(engine: Engine) -> None:
    st = engine.plan_status("@PROMPT-GENERATOR-UX-AND-FOUNDATION")
    assert (st.next, st.state, st.source) == (None, "plan_complete", "review files")
    assert st.done == st.total == 18
    assert all(a.approved is not None for a in st.achievements)
    g = engine.generate("@PROMPT-GENERATOR-UX-AND-FOUNDATION")
    assert (g.achievement, g.state) == (None, "plan_complete")
    assert "18 of 18" in g.prompt


def test_workspace_status(engine: Engine) -> None:
    ws = engine.status()
    got = {(p.plan, p.next, p.state, p.source) for p in ws.plans}
    assert got == {("LLM-DASHBOARD-CLI", "1.1", "fix_pending", "review files"),
                   ("PARALLEL-EXECUTION-AUTOMATION", "3.1", "active_execution", "review files"),
                   ("PROMPT-GENERATOR-UX-AND-FOUNDATION", None, "plan_complete", "review files")}


@pytest.mark.parametrize("name", ["LLM-DASHBOARD-CLI", "PARALLEL-EXECUTION-AUTOMATION",
                                  "PROMPT-GENERATOR-UX-AND-FOUNDATION"])
def test_fixture_plans_parse_cleanly(name: str) -> None:
    doc = parse_plan(open(plan_path(name), "rb").read(), plan_path(name))
    assert doc.title
    assert all(a.body_line is not None and a.index_line is not None for a in doc.achievements)
    assert not [p for p in doc.problems if p.severity == "error"]
    # Bodies follow index order and do not overlap.
    spans = [(a.body_line, a.body_end) for a in doc.achievements]
    assert all(e1 < s2 for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]))  # type: ignore[operator]


@pytest.mark.parametrize("ref", ["@llm", "@parallel", "@PROMPT-GEN", "@DASHBOARD"])
def test_fixture_names_resolve(engine: Engine, ref: str) -> None:
    engine.resolve(ref)
