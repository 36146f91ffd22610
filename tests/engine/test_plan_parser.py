"""parse_plan against every notation of PLAN-FORMAT.md ("Inside a PLAN")."""

from __future__ import annotations

import pytest

from perfd.engine.plan_parser import nn_of, parse_plan, section_key
from perfd.engine.types import PlanDoc

from engine_helpers import codes, plan_text


def parse(text: str) -> PlanDoc:
    return parse_plan(text.encode("utf-8"), "PLAN_X.md")


def achs(doc: PlanDoc) -> dict[str, object]:
    return {a.number: a for a in doc.achievements}


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line number of the nth line containing `needle`."""
    seen = 0
    for i, ln in enumerate(text.split("\n"), 1):
        if needle in ln:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in text")


def marks(doc: PlanDoc) -> set[tuple[str, str]]:
    return {(m.number, m.kind) for m in doc.done_marks}


def marked_numbers(doc: PlanDoc) -> set[str]:
    return {m.number for m in doc.done_marks}


# --- title, metadata, sections ----------------------------------------------------


def test_title_and_metadata_lines() -> None:
    text = ("# PLAN: My Feature\n\n**Status**: In Progress\n**Priority**: HIGH\n**Created**: 2025-11-01\n"
            "**Goal**: Ship it\n**Owner:** Ann\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n")
    doc = parse(text)
    assert doc.title == "My Feature"
    assert doc.metadata["Status"] == "In Progress"
    assert doc.metadata["Priority"] == "HIGH"
    assert doc.metadata["Created"] == "2025-11-01"
    assert doc.metadata["Goal"] == "Ship it"
    assert doc.metadata["Owner"] == "Ann"  # `**Key:** value` form
    assert doc.line_count == 11


def test_metadata_first_value_wins_and_body_fields_are_not_metadata() -> None:
    text = plan_text(["1.1"], extra="**Status**: something else")
    doc = parse(text)
    assert doc.metadata["Status"] == "In Progress"


def test_no_title_is_a_problem() -> None:
    doc = parse("## 📋 Achievement Index\n\n- Achievement 1.1: A\n")
    assert doc.title == ""
    assert "no-title" in codes(doc.problems)


@pytest.mark.parametrize("header,key", [
    ("## 📋 Achievement Index", "achievement index"),
    ("## 🎯 Goal", "goal"),
    ("## 📝 Current Status & Handoff", "current status and handoff"),
    ("## Current Status and Handoff", "current status and handoff"),
    ("## 📝 Archive Location", "archive location"),
])
def test_section_keys(header: str, key: str) -> None:
    doc = parse(f"# PLAN: T\n\n{header}\n\ntext\n")
    assert [s.key for s in doc.sections] == [key]
    assert doc.sections[0].line == 3
    assert doc.sections[0].end_line == 5
    assert section_key(header[3:]) == key


def test_section_line_ranges() -> None:
    text = "# PLAN: T\n\n## A\n\none\n\n## B\n\ntwo\n"
    doc = parse(text)
    assert [(s.title, s.line, s.end_line) for s in doc.sections] == [("A", 3, 6), ("B", 7, 9)]


# --- the index ----------------------------------------------------------------------


def test_index_lines_with_and_without_done_mark() -> None:
    text = plan_text([("1.1", "First"), ("1.2", "Second")], done_index=["1.1"])
    doc = parse(text)
    a = achs(doc)
    assert list(a) == ["1.1", "1.2"]
    assert a["1.1"].title == "First" and a["1.1"].marked_done
    assert a["1.2"].title == "Second" and not a["1.2"].marked_done
    assert a["1.1"].index_line == line_of(text, "Achievement 1.1: First")
    assert a["1.2"].index_line == line_of(text, "Achievement 1.2: Second")
    assert ("1.1", "index") in marks(doc)
    assert "1.2" not in marked_numbers(doc)


def test_index_line_with_trailing_done_mark() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: First ✅\n- Achievement 1.2: Second\n"
    a = achs(parse(text))
    assert a["1.1"].title == "First" and a["1.1"].marked_done
    assert not a["1.2"].marked_done


def test_index_order_is_kept() -> None:
    nums = ["2.1", "0.1", "1.3", "1.1"]
    doc = parse(plan_text(nums))
    assert [a.number for a in doc.achievements] == nums


def test_priority_groups() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n**Priority 1: FOUNDATION (HIGH)**\n\n"
            "- Achievement 1.1: A\n- Achievement 1.2: B\n\n**Priority 2: POLISH (MEDIUM)**\n\n"
            "- Achievement 2.1: C\n")
    doc = parse(text)
    a = achs(doc)
    assert a["1.1"].priority == "Priority 1: FOUNDATION (HIGH)"
    assert a["1.2"].priority == "Priority 1: FOUNDATION (HIGH)"
    assert a["2.1"].priority == "Priority 2: POLISH (MEDIUM)"
    assert doc.priorities == [("Priority 1: FOUNDATION (HIGH)", 5), ("Priority 2: POLISH (MEDIUM)", 10)]


def test_no_priority_group() -> None:
    doc = parse(plan_text(["1.1"], priority=None))
    assert doc.achievements[0].priority is None
    assert doc.priorities == []


def test_duplicate_index_entry_is_reported() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n- Achievement 1.1: A again\n"
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1"]
    assert "duplicate-achievement" in codes(doc.problems)


# --- body headers -------------------------------------------------------------------


@pytest.mark.parametrize("form,header", [
    ("bold", "**Achievement 1.1**: First"),
    ("bold-inner", "**Achievement 1.1: First**"),
    ("heading", "### Achievement 1.1: First"),
])
def test_three_body_header_forms(form: str, header: str) -> None:
    text = plan_text([("1.1", "First"), ("1.2", "Second")], body_form=form)
    doc = parse(text)
    a = achs(doc)
    assert a["1.1"].body_line == line_of(text, header)
    assert a["1.1"].body_title == "First"
    assert a["2" if False else "1.2"].body_title == "Second"
    assert "malformed-header" not in codes(doc.problems)
    assert "no-body" not in codes(doc.problems)


def test_body_header_forms_mixed_in_one_plan() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n- Achievement 1.2: B\n"
            "- Achievement 1.3: C\n\n## 📋 Achievements\n\n**Achievement 1.1**: A\n\nx\n\n"
            "**Achievement 1.2: B**\n\ny\n\n### Achievement 1.3: C\n\nz\n")
    a = achs(parse(text))
    assert (a["1.1"].body_line, a["1.2"].body_line, a["1.3"].body_line) == (11, 15, 19)
    assert (a["1.1"].body_end, a["1.2"].body_end, a["1.3"].body_end) == (14, 18, 21)


@pytest.mark.parametrize("header,effort,title", [
    ("**Achievement 1.1**: First (2-3h)", "2-3h", "First"),
    ("**Achievement 1.1**: First ⏱️ 2-3 hours", "2-3 hours", "First"),
    ("**Achievement 1.1: First** (4h)", "4h", "First"),
    ("**Achievement 1.1: First** ⏱️ 4-6 hours", "4-6 hours", "First"),
    ("### Achievement 1.1: First (2-3h)", "2-3h", "First"),
    ("### Achievement 1.1: First ⏱️ 2-3 hours", "2-3 hours", "First"),
    ("**Achievement 1.1**: First (with parens) (1.5h)", "1.5h", "First (with parens)"),
])
def test_effort_suffixes(header: str, effort: str, title: str) -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: First\n\n## 📋 Achievements\n\n"
            f"{header}\n\nbody\n")
    a = achs(parse(text))["1.1"]
    assert a.effort == effort
    assert a.body_title == title
    assert a.body_line == 9


def test_effort_on_index_line() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: First (2-3h)\n"
    a = achs(parse(text))["1.1"]
    assert a.title == "First" and a.effort == "2-3h"


def test_done_mark_after_body_header() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 0.1: Title\n- Achievement 0.2: Other\n\n"
            "## 📋 Achievements\n\n**Achievement 0.1**: Title ✅\n\n**Achievement 0.2**: Other\n")
    doc = parse(text)
    a = achs(doc)
    assert a["0.1"].marked_done and a["0.1"].body_title == "Title"
    assert not a["0.2"].marked_done
    assert ("0.1", "body") in marks(doc)
    assert "0.2" not in marked_numbers(doc)


def test_index_and_first_body_header_define_the_achievement() -> None:
    # The same number later in prose, tracking tables and other sections does not move the body.
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n- Achievement 1.2: B\n\n"
            "## 📋 Achievements\n\n**Achievement 1.1**: A\n\nSee Achievement 1.2 for more.\n\n"
            "**Achievement 1.2**: B\n\nb\n\n## 🚨 Error Handling\n\n**Achievement 1.1**: add retries\n\n"
            "| Achievement 1.2 | row |\n")
    doc = parse(text)
    a = achs(doc)
    assert a["1.1"].body_line == 10 and a["1.1"].body_end == 13
    assert a["1.2"].body_line == 14 and a["1.2"].body_end == 17
    assert a["1.1"].title == "A"


def test_body_line_ranges_end_at_next_section() -> None:
    text = plan_text([("1.1", "A"), ("1.2", "B")], extra="")
    text += "\n## 🎯 Afterwards\n\nmore\n"
    doc = parse(text)
    a = achs(doc)
    b2 = line_of(text, "**Achievement 1.2**")
    after = line_of(text, "## 🎯 Afterwards")
    assert a["1.1"].body_end == b2 - 1
    assert a["1.2"].body_end == after - 1


def test_body_without_index_entry_and_index_without_body() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n- Achievement 1.2: B\n\n"
            "## 📋 Achievements\n\n**Achievement 1.1**: A\n\n**Achievement 1.3**: C\n")
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1", "1.2"]
    assert "body-not-in-index" in codes(doc.problems)
    assert "no-body" in codes(doc.problems)


def test_plan_without_index_uses_body_headers() -> None:
    text = "# PLAN: T\n\n## 📋 Achievements\n\n**Achievement 1.1**: A\n\n### Achievement 1.2: B\n"
    doc = parse(text)
    assert [(a.number, a.title) for a in doc.achievements] == [("1.1", "A"), ("1.2", "B")]
    assert all(a.index_line is None for a in doc.achievements)


# --- numbers: multi-digit minors, three parts ---------------------------------------


def test_multi_digit_minor() -> None:
    nums = [f"3.{i}" for i in range(1, 13)]
    text = plan_text(nums)
    doc = parse(text)
    assert [a.number for a in doc.achievements] == nums
    a = achs(doc)
    assert a["3.10"].body_line == line_of(text, "**Achievement 3.10**")
    assert a["3.1"].body_line == line_of(text, "**Achievement 3.1**:")
    assert a["3.1"].title == "Title 3.1" and a["3.10"].title == "Title 3.10"


def test_nn_of() -> None:
    assert nn_of("3.1") == "31"
    assert nn_of("0.2") == "02"
    assert nn_of("3.10") == "310"
    assert nn_of("3.5.1") == "351"


def test_three_part_numbers() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 3.5: Parent\n- Achievement 3.5.1: Child one\n"
            "- Achievement 3.5.2: Child two\n\n## 📋 Achievements\n\n**Achievement 3.5**: Parent\n\np\n\n"
            "**Achievement 3.5.1**: Child one (1h)\n\nc1\n\n### Achievement 3.5.2: Child two\n\nc2\n\n"
            "## Tracking\n\n- [x] **Achievement 3.5.1**: Child one\n")
    doc = parse(text)
    a = achs(doc)
    assert list(a) == ["3.5", "3.5.1", "3.5.2"]
    assert a["3.5.1"].title == "Child one" and a["3.5.1"].effort == "1h"
    assert a["3.5"].body_line == 11 and a["3.5"].body_end == 14
    assert a["3.5.1"].body_line == 15 and a["3.5.2"].body_line == 19
    assert ("3.5.1", "checked") in marks(doc)
    assert "3.5" not in marked_numbers(doc)


def test_number_followed_by_more_digits_is_not_truncated() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.2.3.4: Odd\n- Achievement 1.2: Real\n"
    doc = parse(text)
    assert "1.2" in achs(doc)
    assert "1.2.3" not in achs(doc)


# --- handoff, archive, time fields ------------------------------------------------


@pytest.mark.parametrize("header", [
    "## 📝 Current Status & Handoff",
    "## 📝 Current Status and Handoff",
    "## Current Status & Handoff",
    "## Current Status and Handoff",
    "## 🔄 Current Status & Handoff",
])
@pytest.mark.parametrize("pointer", [
    "**⏳ Next: Achievement 1.2**",
    "**Next**: Achievement 1.2",
    "**⏳ Next**: Achievement 1.2 (B)",
    "⏳ Next: Achievement 1.2",
])
def test_handoff_variants(header: str, pointer: str) -> None:
    text = plan_text(["1.1", "1.2", "1.3"]) + (
        f"\n{header}\n\n**Last completed**: Achievement 1.1 ✅\n\n{pointer}\n\n- progress line\n")
    doc = parse(text)
    assert doc.handoff_next == "1.2"
    assert doc.handoff_line == line_of(text, pointer)
    a = achs(doc)
    assert a["1.3"].body_end is not None and a["1.3"].body_end < line_of(text, header)


def test_handoff_next_with_three_part_and_multi_digit_numbers() -> None:
    for num in ("3.10", "3.5.1"):
        text = plan_text(["1.1", num], handoff_next=num)
        assert parse(text).handoff_next == num


def test_no_handoff() -> None:
    doc = parse(plan_text(["1.1"]))
    assert doc.handoff_next is None and doc.handoff_line is None


@pytest.mark.parametrize("section", [
    "## 📝 Archive Location\n\nArchived work goes to `./demo-archive/`.\n",
    "## Archive Location\n\n`./demo-archive/`\n",
    "## 📝 Archive Location\n\n**Archive Location**: `./demo-archive/`\n",
])
def test_archive_location(section: str) -> None:
    doc = parse(plan_text(["1.1"]) + "\n" + section)
    assert doc.archive_location == "./demo-archive/"


def test_archive_location_metadata_field() -> None:
    text = plan_text(["1.1"], extra="## Notes\n\n**Archive Location**: `./x-archive/`")
    assert parse(text).archive_location == "./x-archive/"


def test_time_fields() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n- Achievement 1.2: B\n\n"
            "## 📋 Achievements\n\n**Achievement 1.1**: A\n\n**Time**: 3 hours\n**Actual**: 2.5 hours\n\n"
            "**Achievement 1.2**: B\n\n**Time**: 1 hour\n")
    a = achs(parse(text))
    assert a["1.1"].time == "3 hours" and a["1.1"].actual == "2.5 hours"
    assert a["1.2"].time == "1 hour" and a["1.2"].actual is None


def test_time_field_outside_bodies_is_not_attached() -> None:
    text = plan_text(["1.1"]) + "\n## Other\n\n**Time**: 99 hours\n"
    assert achs(parse(text))["1.1"].time is None


# --- code fences ----------------------------------------------------------------------


@pytest.mark.parametrize("fence", ["```", "```markdown", "~~~", "  ```"])
def test_code_fences_ignored(fence: str) -> None:
    close = fence.strip()[:3]
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n"
            f"{fence}\n- Achievement 9.1: In a fence\n**Achievement 9.2**: Fenced\n## Not a section\n"
            f"- ✅ Achievement 1.1: fenced log\nALL ACHIEVEMENTS DONE\n{close}\n"
            "- Achievement 1.2: B\n\n## 📋 Achievements\n\n**Achievement 1.1**: A\n\n```\n"
            "**Achievement 1.2**: fenced body\n```\n\n**Achievement 1.2**: B\n")
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1", "1.2"]
    assert [s.title for s in doc.sections] == ["📋 Achievement Index", "📋 Achievements"]
    assert achs(doc)["1.2"].body_line == line_of(text, "**Achievement 1.2**: B")
    assert doc.done_marks == [] and doc.all_done_line is None


def test_longer_fence_is_closed_only_by_a_fence_as_long() -> None:
    # CommonMark: a ```` fence holding ``` examples ends only at ````.
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n\n## 📋 Achievements\n\n"
            "````markdown\n```python\n**Achievement 9.1**: example\n```\n**Achievement 9.2**: example\n````\n\n"
            "**Achievement 1.1**: A\n")
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1"]
    assert achs(doc)["1.1"].body_line == line_of(text, "**Achievement 1.1**: A")
    assert "body-not-in-index" not in codes(doc.problems)


def test_nested_fences_with_info_strings_pair_up() -> None:
    # Real plans nest ```bash blocks inside a ```markdown block (see the
    # PARALLEL-EXECUTION-AUTOMATION fixture): the text after the outer block is not fenced.
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n\n## 📋 Achievements\n\n"
            "```markdown\n## Inner heading\n1. Step:\n   ```bash\n   run it\n   ```\n"
            "**Achievement 9.1**: example\n```\n\n**Achievement 1.1**: A\n\n## 🎯 After\n")
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1"]
    assert achs(doc)["1.1"].body_line == line_of(text, "**Achievement 1.1**: A")
    assert [s.title for s in doc.sections] == ["📋 Achievement Index", "📋 Achievements", "🎯 After"]


def test_tilde_fence_is_not_closed_by_backticks() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n~~~\n```\n"
            "- Achievement 9.1: fenced\n~~~\n- Achievement 1.2: B\n")
    assert [a.number for a in parse(text).achievements] == ["1.1", "1.2"]


def test_unclosed_fence_swallows_the_rest() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n```\n- Achievement 1.2: B\n"
    doc = parse(text)
    assert [a.number for a in doc.achievements] == ["1.1"]


# --- done marks in the text ----------------------------------------------------------


PLAN_HEAD = ("# PLAN: Old\n\n## 📋 Achievement Index\n\n" + "".join(
    f"- Achievement {n}: T{n}\n" for n in ("0.1", "0.2", "1.1", "1.2", "3.1", "3.2", "4.1", "4.2", "4.3", "3.5.1"))
    + "\n## Tracking\n\n")


@pytest.mark.parametrize("line,expected", [
    ("- [x] **Achievement 3.1**: Done it", {"3.1"}),
    ("- [X] **Achievement 3.1**: Done it", {"3.1"}),
    ("* [x] Achievement 3.1: Done it", {"3.1"}),
    ("- [x] **Achievement 3.5.1**: Deep", {"3.5.1"}),
    ("- [x] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup Complete", {"0.1"}),
    ("- [x] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup", {"0.1"}),
    ("- [x] **SUBPLAN_OLD_04**: Achievement 4.1 & 4.2 - Fours Complete", {"4.1", "4.2"}),
    ("- [x] Achievements 4.1, 4.2 and 4.3 - all three", {"4.1", "4.2", "4.3"}),
    ("- **SUBPLAN_01**: Achievement 0.1 (Setup) - Status: ✅ COMPLETE", {"0.1"}),
    ("- **SUBPLAN_01**: Achievement 0.1 (Setup) - Status: Complete", {"0.1"}),
    ("- **SUBPLAN_02**: Achievement 0.2 - ✅ Complete", {"0.2"}),
    ("- ✅ **Achievement 0.1 COMPLETE**: set up the thing", {"0.1"}),
    ("- ✅ Achievement 1.2: T1.2 (SUBPLAN_03, EXECUTION_TASK_03_01)", {"1.2"}),
    ("- ✅ **Achievement 1.2**: T1.2", {"1.2"}),
])
def test_done_mark_forms(line: str, expected: set[str]) -> None:
    doc = parse(PLAN_HEAD + line + "\n")
    assert marked_numbers(doc) == expected


@pytest.mark.parametrize("line", [
    "- [ ] **Achievement 3.1**: Not done",
    "- [ ] **SUBPLAN_OLD_01**: Achievement 0.1 - Setup Complete",
    "- [ ] Achievement 4.1 & 4.2 - Complete",
    "- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: 🔄 In Progress",
    "- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: ✅ Design Complete, Ready for Execution",
    "- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: Design Complete",
    "- **SUBPLAN_02**: Achievement 0.2 (Parse) - Status: Not Complete",
    "- Achievement 0.2: not yet complete",
    "Achievement 0.1 is complete, says the prose.",
    "- ⏳ Achievement 1.1: Next up",
])
def test_not_done_marks(line: str) -> None:
    doc = parse(PLAN_HEAD + line + "\n")
    assert marked_numbers(doc) == set()


def test_done_mark_kinds() -> None:
    text = PLAN_HEAD + ("- [x] **Achievement 3.1**: a\n- **SUBPLAN_01**: Achievement 0.1 (S) - Status: ✅ COMPLETE\n"
                        "\n## Progress Log\n\n- ✅ Achievement 1.2: T (SUBPLAN_03)\n")
    m = marks(parse(text))
    assert ("3.1", "checked") in m
    assert ("0.1", "tracking") in m
    assert ("1.2", "log") in m


@pytest.mark.parametrize("line,done", [
    ("🎉 ALL ACHIEVEMENTS DONE", True),
    ("**ALL ACHIEVEMENTS DONE** 🎉", True),
    ("🎉 PLAN COMPLETE - ALL ACHIEVEMENTS DONE", True),
    ("All achievements are complete.", True),
    ("- ✅ All achievements completed", True),
    ("**Status**: ✅ All achievements complete (18/18)", True),
    ("Plan complete: all achievements done", True),
    ("Not all achievements done yet.", False),
    ("When all achievements are done, archive the plan.", False),
    ("1. Detect PLAN completion (all achievements done)", False),  # PROMPT-GENERATOR fixture, line 392
    ("- [ ] All achievements complete", False),
    ("- [ ] ALL ACHIEVEMENTS DONE", False),
    ("All 3 achievements done!", False),  # a priority group, not the plan
])
def test_all_achievements_done(line: str, done: bool) -> None:
    doc = parse(PLAN_HEAD + "\n## Status\n\n" + line + "\n")
    assert (doc.all_done_line is not None) is done
    if done:
        assert doc.all_done_line == line_of(PLAN_HEAD + "\n## Status\n\n" + line + "\n", line)


def test_all_achievements_done_in_metadata_status() -> None:
    text = "# PLAN: Old\n**Status**: ✅ ALL ACHIEVEMENTS DONE\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n"
    doc = parse(text)
    assert doc.all_done_line == 2
    assert doc.metadata["Status"] == "✅ ALL ACHIEVEMENTS DONE"


# --- malformed lines ------------------------------------------------------------------


def test_malformed_index_header_is_reported_not_raised() -> None:
    text = "# PLAN: T\n\n## 📋 Achievement Index\n\n- **Achievement 1.1**\n- Achievement 1.2: B\n"
    doc = parse(text)
    assert "1.2" in achs(doc)
    assert "malformed-header" in codes(doc.problems)
    p = next(p for p in doc.problems if p.code == "malformed-header")
    assert p.line == 5


def test_title_mismatch_is_info() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- Achievement 1.1: Alpha\n\n## 📋 Achievements\n\n"
            "**Achievement 1.1**: Something else entirely\n")
    doc = parse(text)
    a = achs(doc)["1.1"]
    assert a.title == "Alpha" and a.body_title == "Something else entirely"
    p = next(p for p in doc.problems if p.code == "title-mismatch")
    assert p.severity == "info" and p.line == 9


def test_inline_triple_backticks_do_not_open_a_fence() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n```bash``` is the shell we use\n- Achievement 1.1: A\n"
            "- Achievement 1.2: B\n")
    assert [a.number for a in parse(text).achievements] == ["1.1", "1.2"]


@pytest.mark.parametrize("line", ["## 🎉 ALL ACHIEVEMENTS DONE", "### ALL ACHIEVEMENTS COMPLETE ✅",
                                  "**ALL ACHIEVEMENTS DONE**: archived 2025-01-01"])
def test_all_achievements_done_in_headings_and_bold_lines(line: str) -> None:
    text = "# PLAN: Old\n\n## 📋 Achievement Index\n\n- Achievement 1.1: A\n\n" + line + "\n"
    assert parse(text).all_done_line == 7


def test_index_written_as_a_checklist_lists_every_achievement() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- [x] Achievement 1.1: Done one\n"
            "- [ ] Achievement 1.2: Open one\n- [x] **Achievement 1.3**: Bold done\n")
    doc = parse(text)
    a = achs(doc)
    assert list(a) == ["1.1", "1.2", "1.3"]
    assert (a["1.1"].title, a["1.2"].title, a["1.3"].title) == ("Done one", "Open one", "Bold done")
    assert a["1.1"].marked_done and a["1.3"].marked_done and not a["1.2"].marked_done
    assert marked_numbers(doc) == {"1.1", "1.3"}


@pytest.mark.parametrize("handoff", [
    "**Last Completed**: Achievement 1.1 (next steps below)\n\n**⏳ Next: Achievement 1.2**",
    "### ⏳ Next: Achievement 1.2",
    "✅ Achievement 1.1 complete; next: Achievement 1.2",
    "**Next Achievement**: 1.2",
    "- Next up: Achievement 1.2 (B)",
    "**Achievement 1.1**: ✅ Complete\n\n**Next**: Achievement 1.2",
    "⏳ **Achievement 1.2: B** ← **NEXT**",  # PROMPT-GENERATOR fixture style
])
def test_handoff_next_pointer_forms(handoff: str) -> None:
    text = plan_text(["1.1", "1.2", "1.3"]) + "\n## 📝 Current Status & Handoff\n\n" + handoff + "\n"
    doc = parse(text)
    assert doc.handoff_next == "1.2"
    assert doc.handoff_line == line_of(text, handoff.split("\n")[-1])
    assert [a.body_line for a in doc.achievements] == [line_of(text, f"**Achievement {n}**: Title") for n in
                                                       ("1.1", "1.2", "1.3")]


@pytest.mark.parametrize("prefix", ["🔄 ", "⏳ ", "📋 ", "❌ ", "⏸️ ", "🚧"])
def test_index_entry_with_another_status_emoji_is_kept(prefix: str) -> None:
    text = (f"# PLAN: T\n\n## 📋 Achievement Index\n\n- ✅ Achievement 1.1: A\n- {prefix}Achievement 1.2: B\n"
            f"- {prefix}**Achievement 1.3**: C\n")
    doc = parse(text)
    a = achs(doc)
    assert list(a) == ["1.1", "1.2", "1.3"]
    assert (a["1.2"].title, a["1.3"].title) == ("B", "C")
    assert a["1.1"].marked_done and not a["1.2"].marked_done and not a["1.3"].marked_done


@pytest.mark.parametrize("suffix", [" ✅", " ✅ COMPLETE", " (✅ Complete)", " - ✅ Complete", " ✅ **COMPLETE**",
                                    " **(✅ DONE)**", " ✅ Complete (2025-11-10)", " - COMPLETE ✅", " | ✅"])
def test_done_status_after_a_title_is_not_part_of_it(suffix: str) -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n"
            f"- Achievement 1.1: Parse the index{suffix}\n\n## 📋 Achievements\n\n"
            f"**Achievement 1.1**: Parse the index{suffix}\n\n### Achievement 1.2: Other{suffix}\n")
    doc = parse(text)
    a = achs(doc)
    assert a["1.1"].title == "Parse the index" and a["1.1"].body_title == "Parse the index"
    assert a["1.1"].marked_done
    assert "title-mismatch" not in codes(doc.problems)


def test_leading_done_marks_and_titles_with_parentheses() -> None:
    text = ("# PLAN: T\n\n## 📋 Achievement Index\n\n- ✅ Achievement 1.1: ✅ Coverage (90%)\n"
            "- Achievement 1.2: Clipboard Default (--clipboard flag)\n")
    a = achs(parse(text))
    assert a["1.1"].title == "Coverage (90%)" and a["1.1"].marked_done
    assert a["1.2"].title == "Clipboard Default (--clipboard flag)"
