"""Prompts for every state, line ranges, safe rendering, workspace overrides."""

from __future__ import annotations

import os

import pytest

from perfd.engine.prompts import TEMPLATE_NAMES, render
from perfd.engine.types import GenerateResult

from engine_helpers import WS, codes, plan_text

NAME = "DEMO"


def gen(ws: WS, achievement: str | None = None) -> GenerateResult:
    return ws.engine().generate("@" + NAME, achievement=achievement)


def rel(ws: WS, *parts: str) -> str:
    return os.path.join("work-space", "plans", NAME, *parts)


@pytest.fixture
def demo(ws: WS) -> WS:
    ws.plan(NAME, [("1.1", "Parse the index"), ("1.2", "Second thing")], title="Demo Plan")
    ws.feedbacks(NAME)
    return ws


def body_range(ws: WS, number: str) -> str:
    st = ws.engine().plan_status("@" + NAME)
    a = next(a for a in st.achievements if a.number == number)
    assert a.body_line and a.body_end
    return f"{a.body_line}-{a.body_end}"


def test_no_subplan_prompt(demo: WS) -> None:
    g = gen(demo)
    assert g.state == "no_subplan" and g.achievement == "1.1"
    assert g.write_path == str(demo.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_11.md")
    assert rel(demo, "subplans", f"SUBPLAN_{NAME}_11.md") in g.prompt
    assert "Parse the index" in g.prompt and "Demo Plan" in g.prompt
    assert f"lines {body_range(demo, '1.1')}" in g.prompt
    assert rel(demo, f"PLAN_{NAME}.md") in g.prompt
    assert g.problems == []


def test_fix_pending_prompt_quotes_the_review(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "✅ Complete")
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    demo.fix(NAME, "1.1", critical=["Tests cannot run: stdin prompt", "Lock file left behind"],
             minor=["Typo in --help output"])
    g = gen(demo)
    assert g.state == "fix_pending"
    for text in ("Tests cannot run: stdin prompt", "Lock file left behind", "Typo in --help output"):
        assert text in g.prompt
    assert g.prompt.index("Lock file left behind") < g.prompt.index("Typo in --help output")
    assert rel(demo, "execution", "feedbacks", "FIX_11.md") in g.prompt
    assert g.write_path == str(demo.feedbacks(NAME) / "FIX_11_RESOLUTION.md")
    assert f"lines {body_range(demo, '1.1')}" in g.prompt


def test_subplan_no_execution_prompt(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "📋 Design Phase")
    g = gen(demo)
    assert g.state == "subplan_no_execution"
    assert g.write_path == str(demo.folder(NAME) / "execution" / f"EXECUTION_TASK_{NAME}_11_01.md")
    assert rel(demo, "execution", f"EXECUTION_TASK_{NAME}_11_01.md") in g.prompt
    assert rel(demo, "subplans", f"SUBPLAN_{NAME}_11.md") in g.prompt
    assert f"lines {body_range(demo, '1.1')}" in g.prompt


def test_active_execution_prompt_names_the_execution(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01", "11_02"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    demo.execution(NAME, "1.1", "02", "🔄 In Progress")
    g = gen(demo)
    assert g.state == "active_execution"
    assert rel(demo, "execution", f"EXECUTION_TASK_{NAME}_11_02.md") in g.prompt
    assert "🔄 In Progress" in g.prompt
    assert g.write_path is None
    assert f"lines {body_range(demo, '1.1')}" in g.prompt


def test_create_next_execution_prompt(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01", "11_02", "11_03"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    demo.execution(NAME, "1.1", "02", "✅ Complete")
    g = gen(demo)
    assert g.state == "create_next_execution"
    assert g.write_path == str(demo.folder(NAME) / "execution" / f"EXECUTION_TASK_{NAME}_11_03.md")
    assert "11_03" in g.prompt and "3 planned" in g.prompt
    assert f"lines {body_range(demo, '1.1')}" in g.prompt


def test_subplan_all_executed_prompt(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "In Progress", planned=["11_01"])
    demo.execution(NAME, "1.1", "01", "✅ Complete")
    g = gen(demo)
    assert g.state == "subplan_all_executed"
    assert rel(demo, "execution", f"EXECUTION_TASK_{NAME}_11_01.md") in g.prompt
    assert rel(demo, "execution", "feedbacks", "APPROVED_11.md") in g.prompt
    assert g.write_path is None


def test_subplan_complete_prompt(demo: WS) -> None:
    demo.subplan(NAME, "1.1", "✅ Complete")
    g = gen(demo, "1.1")
    assert g.state == "subplan_complete"
    assert "awaiting review" in g.prompt
    assert rel(demo, "execution", "feedbacks", "APPROVED_11.md") in g.prompt
    assert f"lines {body_range(demo, '1.1')}" in g.prompt


def test_plan_complete_prompt_has_a_summary(demo: WS) -> None:
    demo.approved(NAME, "1.1")
    demo.approved(NAME, "1.2")
    g = gen(demo)
    assert g.state == "plan_complete" and g.achievement is None and g.write_path is None
    assert "2 of 2" in g.prompt
    assert "1.1: Parse the index" in g.prompt and "1.2: Second thing" in g.prompt
    assert "review files" in g.prompt


def test_every_template_has_a_prompt_and_no_leftover_placeholder(demo: WS) -> None:
    # One plan with an achievement in every state; each prompt renders every placeholder.
    nums = [f"1.{i}" for i in range(1, 8)]
    demo.plan(NAME, nums)
    demo.fix(NAME, "1.1")
    demo.subplan(NAME, "1.2", "✅ Complete")
    demo.subplan(NAME, "1.3", "Planning")
    demo.subplan(NAME, "1.4", "In Progress")
    demo.execution(NAME, "1.4", "01", "In Progress")
    demo.subplan(NAME, "1.5", "In Progress", planned=["15_01", "15_02"])
    demo.execution(NAME, "1.5", "01", "Complete")
    demo.subplan(NAME, "1.6", "In Progress", planned=["16_01"])
    demo.execution(NAME, "1.6", "01", "Complete")
    seen = set()
    for n in nums:
        g = gen(demo, n)
        seen.add(g.state)
        assert "{{" not in g.prompt, (n, g.prompt)
        assert "template-placeholder" not in codes(g.problems)
    assert seen == set(TEMPLATE_NAMES) - {"plan_complete"}


# --- safe rendering ---------------------------------------------------------------------------


NASTY = r"Use {{number}} and {{evil}} with {braces} $HOME ${x} \1 \g<0> %s {0}"


def test_plan_text_full_of_placeholders_is_inserted_verbatim(ws: WS) -> None:
    ws.plan(NAME, [("1.1", NASTY), ("1.2", "{{title}}")], title="{{plan_title}} $PATH {}")
    ws.feedbacks(NAME)
    g = gen(ws)
    assert NASTY in g.prompt
    assert "{{plan_title}} $PATH {}" in g.prompt
    assert "template-placeholder" not in codes(g.problems)
    ws.approved(NAME, "1.1")
    ws.approved(NAME, "1.2")
    g = gen(ws)
    assert g.state == "plan_complete" and NASTY in g.prompt and "1.2: {{title}}" in g.prompt


def test_fix_issues_full_of_placeholders(ws: WS) -> None:
    ws.plan(NAME, ["1.1"])
    ws.fix(NAME, "1.1", critical=["Replace {{critical}} with ${VALUE} and \\1"], minor=["{{minor}} {x}"])
    g = gen(ws)
    assert "Replace {{critical}} with ${VALUE} and \\1" in g.prompt
    assert "{{minor}} {x}" in g.prompt
    assert "template-placeholder" not in codes(g.problems)


def test_render_directly() -> None:
    out, unknown = render("a {{ x }} b {{y}} c {{x}} {single} {{ 1bad }}", {"x": "{{y}} $1 \\g<0>"})
    assert out == "a {{y}} $1 \\g<0> b {{y}} c {{y}} $1 \\g<0> {single} {{ 1bad }}"
    assert unknown == ["y"]


# --- workspace overrides -----------------------------------------------------------------------


def test_workspace_template_override_is_used(demo: WS) -> None:
    demo.write(".perfd/templates/no_subplan.md", "CUSTOM for {{number}} -> {{write_path}} ({{body_lines}})\n")
    g = gen(demo)
    assert g.prompt == (f"CUSTOM for 1.1 -> {rel(demo, 'subplans', f'SUBPLAN_{NAME}_11.md')} "
                        f"({body_range(demo, '1.1')})\n")
    assert g.problems == []


def test_override_of_another_state_does_not_apply(demo: WS) -> None:
    demo.write(".perfd/templates/fix_pending.md", "CUSTOM FIX\n")
    assert "CUSTOM" not in gen(demo).prompt


def test_unknown_placeholder_in_an_override_is_reported(demo: WS) -> None:
    demo.write(".perfd/templates/no_subplan.md", "Do {{number}} then {{no_such_thing}} and {{no_such_thing}}.\n")
    g = gen(demo)
    assert g.prompt == "Do 1.1 then {{no_such_thing}} and {{no_such_thing}}.\n"
    probs = [p for p in g.problems if p.code == "template-placeholder"]
    assert len(probs) == 1
    assert "no_such_thing" in probs[0].message
    assert probs[0].path is not None and probs[0].path.endswith(os.path.join(".perfd", "templates", "no_subplan.md"))


def test_override_edit_is_seen(demo: WS) -> None:
    eng = demo.engine()
    demo.write(".perfd/templates/no_subplan.md", "ONE {{number}}\n")
    assert eng.generate("@" + NAME).prompt == "ONE 1.1\n"
    demo.write(".perfd/templates/no_subplan.md", "TWO! {{number}}\n")
    assert eng.generate("@" + NAME).prompt == "TWO! 1.1\n"
    os.remove(demo.root / ".perfd" / "templates" / "no_subplan.md")
    assert "Create the SUBPLAN" in eng.generate("@" + NAME).prompt


def test_achievement_without_body_names_its_index_line(ws: WS) -> None:
    ws.plan(NAME, plan_text(["1.1"], bodies=False))
    ws.feedbacks(NAME)
    g = gen(ws)
    st = ws.engine().plan_status("@" + NAME)
    assert f"lines {st.achievements[0].index_line} (index entry; no body section)" in g.prompt
