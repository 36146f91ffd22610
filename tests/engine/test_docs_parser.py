"""SUBPLAN / EXECUTION_TASK / review files and parallel.json (PLAN-FORMAT.md)."""

from __future__ import annotations

import json

import pytest

from perfd.engine.docs_parser import normalise_status, parse_feedback, parse_parallel, parse_work

from engine_helpers import codes, work_text

# --- status normalisation ------------------------------------------------------------

# Every status string PLAN-FORMAT.md lists, and what it means.
LISTED = [
    ("✅ Complete", "complete"),
    ("✅ COMPLETE", "complete"),
    ("Complete", "complete"),
    ("In Progress", "in_progress"),
    ("🔄 In Progress", "in_progress"),
    ("🎯 Executing", "in_progress"),
    ("📋 Design Phase", "not_started"),
    ("📋 Ready for Execution", "not_started"),
    ("Ready to Execute", "not_started"),
    ("PENDING", "not_started"),
    ("Not Started", "not_started"),
    ("✅ Design Complete, Ready for Execution", "not_started"),
]

# Seen in the fixture corpus.
CORPUS = [
    ("✅ Complete (Extended Session)", "complete"),
    ("✅ **COMPLETE** - All 4 Phases Finished", "complete"),
    ("✅ ACHIEVEMENT 2.1 COMPLETE", "complete"),
    ("✅ Approved", "complete"),
    ("⏳ In Progress", "in_progress"),
    ("⚠️ FIX REQUIRED", "in_progress"),
    ("⚠️ Incomplete testing", "in_progress"),
    ("📋 Design Complete", "not_started"),
    ("📋 Design Complete - Ready for Execution", "not_started"),
    ("✅ Design Complete - Ready for EXECUTION_TASK creation", "not_started"),
    ("🚀 Ready to Execute", "not_started"),
    ("Planning", "not_started"),
    ("Complete  ", "complete"),
]


@pytest.mark.parametrize("text,expected", LISTED + CORPUS)
def test_normalise_status(text: str, expected: str) -> None:
    assert normalise_status(text) == expected


@pytest.mark.parametrize("text", ["🔄 Partially complete", "Not complete", "Not yet complete", "Incomplete",
                                  "Complete? No - blocked", "", "   "])
def test_statuses_that_are_not_complete(text: str) -> None:
    assert normalise_status(text) != "complete"


@pytest.mark.parametrize("text", ["✅ Completed", "Done", "✅ DONE", "**✅ Complete**", "Completed ✅",
                                  "✅ Complete (2025-01-01)"])
def test_other_complete_statuses(text: str) -> None:
    assert normalise_status(text) == "complete"


@pytest.mark.parametrize("text,expected", LISTED)
def test_status_line_in_a_file(text: str, expected: str) -> None:
    for kind in ("subplan", "execution"):
        doc = parse_work(work_text(kind, "3.1", text).encode(), f"{kind}.md", kind)  # type: ignore[arg-type]
        assert doc.status == expected
        assert doc.status_text == text
        assert doc.status_line == 5
        assert doc.achievement == "3.1"
        assert doc.kind == kind


# --- SUBPLAN / EXECUTION_TASK files ------------------------------------------------------


def test_work_title_and_achievement_from_metadata() -> None:
    doc = parse_work(work_text("subplan", "3.5.1", "✅ Complete", title="Deep one").encode(), "s.md", "subplan")
    assert doc.title == "SUBPLAN: Deep one"
    assert doc.achievement == "3.5.1"


def test_work_achievement_from_title_when_no_metadata() -> None:
    text = "# SUBPLAN: Achievement 3.10 - Tenth\n\n**Status**: In Progress\n"
    doc = parse_work(text.encode(), "s.md", "subplan")
    assert doc.achievement == "3.10"


def test_work_without_status_is_not_started_with_a_problem() -> None:
    doc = parse_work(b"# EXECUTION_TASK: x\n\nno status here\n", "e.md", "execution")
    assert doc.status == "not_started" and doc.status_line is None
    assert "no-status" in codes(doc.problems)


def test_status_far_down_a_file_is_ignored() -> None:
    # Templates later in a file repeat `**Status**:`; the metadata sits at the top.
    text = "# SUBPLAN: x\n\n" + "filler line\n" * 1000 + "**Status**: ✅ Complete\n"
    assert parse_work(text.encode(), "s.md", "subplan").status == "not_started"


def test_first_status_line_wins() -> None:
    text = "# SUBPLAN: x\n**Status**: 🔄 In Progress\n\n## Template\n\n**Status**: ✅ Complete\n"
    assert parse_work(text.encode(), "s.md", "subplan").status == "in_progress"


def test_planned_executions_table() -> None:
    text = work_text("subplan", "1.1", "In Progress", planned=["11_01", "11_02", "11_03"])
    doc = parse_work(text.encode(), "s.md", "subplan")
    assert doc.planned_executions == ["11_01", "11_02", "11_03"]  # the 99_99 row after the next ## is not


def test_planned_executions_table_with_full_names() -> None:
    # Real SUBPLANs name the executions in full (LLM-DASHBOARD-CLI fixture).
    text = ("# SUBPLAN: x\n**Achievement**: 2.2\n**Status**: In Progress\n\n## 🔄 Active EXECUTION_TASKs\n\n"
            "| EXECUTION | Status | Progress | Notes |\n| --- | --- | --- | --- |\n"
            "| EXECUTION_TASK_LLM-DASHBOARD-CLI_22_01 | Planning | 0% | - |\n"
            "| `EXECUTION_TASK_RELEASE-0.1_22_02.md` | Planning | 0% | - |\n\n---\n\n## 📊 Synthesis\n\n"
            "| EXECUTION_TASK_X_22_09 | later table |\n")
    assert parse_work(text.encode(), "s.md", "subplan").planned_executions == ["22_01", "22_02"]


def test_planned_executions_only_under_the_section_heading() -> None:
    # A prose mention of "Active EXECUTION_TASKs" before the section must not hide its table.
    text = ("# SUBPLAN: x\n**Achievement**: 1.1\n**Status**: In Progress\n\n## Focus\n\n"
            "- Active EXECUTION_TASKs (if any exist)\n\n## Other\n\ntext\n\n## 🔄 Active EXECUTION_TASKs\n\n"
            "| Execution | Status |\n| --- | --- |\n| 11_01 | Planned |\n| 11_02 | Planned |\n")
    assert parse_work(text.encode(), "s.md", "subplan").planned_executions == ["11_01", "11_02"]


def test_no_planned_table() -> None:
    doc = parse_work(work_text("subplan", "1.1", "In Progress").encode(), "s.md", "subplan")
    assert doc.planned_executions == []


def test_execution_files_have_no_planned_table() -> None:
    text = work_text("subplan", "1.1", "In Progress", planned=["11_01"])
    assert parse_work(text.encode(), "e.md", "execution").planned_executions == []


# --- review files ------------------------------------------------------------------------


def test_fix_file_critical_and_minor_issues() -> None:
    text = ("# FIX REQUIRED: Achievement 1.2\n\n**Status**: ⚠️ NEEDS FIXES\n\n## Summary\n\nsummary 1. not an item\n\n"
            "## Issues Found\n\n### Critical Issues (must fix)\n\n1. **Tests cannot run**\n   - detail a\n"
            "2. **Lock file prompt**\n\n### Minor Issues\n\n1. Typo in help\n\n## Verdict\n\nfix it\n")
    doc = parse_feedback(text.encode(), "FIX_12.md", "fix")
    assert doc.kind == "fix" and doc.achievement == "1.2"
    assert len(doc.critical) == 2
    assert doc.critical[0].startswith("1. **Tests cannot run**") and "detail a" in doc.critical[0]
    assert doc.critical[1].startswith("2. **Lock file prompt**")
    assert doc.minor == ["1. Typo in help"]
    assert doc.problems == []


def test_fix_file_without_issue_sections() -> None:
    doc = parse_feedback(b"# FIX\n\nPlease redo.\n", "FIX_11.md", "fix")
    assert doc.critical == [] and doc.minor == []
    assert "fix-without-issues" in codes(doc.problems)


def test_approved_file() -> None:
    doc = parse_feedback(b"# APPROVED: Achievement 3.10\n\nGood.\n", "APPROVED_310.md", "approved")
    assert doc.kind == "approved" and doc.achievement == "3.10"
    assert doc.problems == []


# --- parallel.json -----------------------------------------------------------------------


def parallel(items: list[dict[str, object]]) -> bytes:
    return json.dumps({"plan_name": "P", "parallelization_level": "level_2", "achievements": items}).encode()


def item(aid: str, deps: list[str], **kw: object) -> dict[str, object]:
    return {"achievement_id": aid, "title": f"T {aid}", "dependencies": deps, "estimated_hours": "2-3", **kw}


def test_parallel_levels() -> None:
    g = parse_parallel(parallel([item("1.1", []), item("1.2", ["1.1"]), item("1.3", ["1.1"]),
                                 item("2.1", ["1.2", "1.3"]), item("0.1", [])]), "parallel.json")
    assert g.problems == []
    assert g.levels == [["1.1", "0.1"], ["1.2", "1.3"], ["2.1"]]
    lv = {a.achievement_id: a.level for a in g.achievements}
    assert lv == {"1.1": 0, "1.2": 1, "1.3": 1, "2.1": 2, "0.1": 0}
    assert {a.achievement_id: a.title for a in g.achievements}["2.1"] == "T 2.1"
    assert {a.achievement_id: a.dependencies for a in g.achievements}["2.1"] == ["1.2", "1.3"]


def test_parallel_unknown_id_is_reported() -> None:
    g = parse_parallel(parallel([item("1.1", []), item("1.2", ["9.9"])]), "parallel.json")
    p = [p for p in g.problems if p.code == "parallel-unknown-id"]
    assert len(p) == 1 and "9.9" in p[0].message and "1.2" in p[0].message
    assert p[0].severity == "error"
    # An unknown dependency is reported, not waited on.
    assert {a.achievement_id: a.level for a in g.achievements} == {"1.1": 0, "1.2": 0}


@pytest.mark.parametrize("items,cycle", [
    ([item("1.1", ["1.2"]), item("1.2", ["1.1"])], ["1.1", "1.2"]),
    ([item("1.1", ["1.1"])], ["1.1"]),
    ([item("1.0", []), item("1.1", ["1.0", "1.3"]), item("1.2", ["1.1"]), item("1.3", ["1.2"])], ["1.1", "1.3", "1.2"]),
])
def test_parallel_cycles_are_named(items: list[dict[str, object]], cycle: list[str]) -> None:
    g = parse_parallel(parallel(items), "parallel.json")
    p = [p for p in g.problems if p.code == "parallel-cycle"]
    assert len(p) == 1
    for aid in cycle:
        assert aid in p[0].message
    named = p[0].message.split(": ", 1)[1].split(" -> ")
    assert named[0] == named[-1] and set(named) == set(cycle)
    lv = {a.achievement_id: a.level for a in g.achievements}
    assert all(lv[a] is None for a in cycle)


def test_parallel_node_depending_on_a_cycle_has_no_level() -> None:
    g = parse_parallel(parallel([item("1.1", ["1.2"]), item("1.2", ["1.1"]), item("2.1", ["1.1"]),
                                 item("0.1", [])]), "parallel.json")
    lv = {a.achievement_id: a.level for a in g.achievements}
    assert lv == {"1.1": None, "1.2": None, "2.1": None, "0.1": 0}
    assert codes(g.problems).count("parallel-cycle") == 1
    assert g.levels == [["0.1"]]


def test_parallel_two_cycles_both_reported() -> None:
    g = parse_parallel(parallel([item("1.1", ["1.2"]), item("1.2", ["1.1"]), item("2.1", ["2.2"]),
                                 item("2.2", ["2.1"])]), "parallel.json")
    assert codes(g.problems).count("parallel-cycle") == 2


def test_parallel_duplicate_id() -> None:
    g = parse_parallel(parallel([item("1.1", []), item("1.1", [])]), "parallel.json")
    assert "parallel-duplicate" in codes(g.problems)
    assert [a.achievement_id for a in g.achievements] == ["1.1"]


def test_parallel_numeric_ids_are_read_as_text() -> None:
    data = b'{"achievements": [{"achievement_id": 1.1, "dependencies": []}, {"achievement_id": "1.2", "dependencies": [1.1]}]}'
    g = parse_parallel(data, "parallel.json")
    assert g.problems == []
    assert g.levels == [["1.1"], ["1.2"]]


@pytest.mark.parametrize("data", [b"", b"[]", b'{"achievements": 5}', b"{", b'{"achievements": [{"title": "x"}]}',
                                  b"\x00\x01binary", b'{"achievements": [{"achievement_id": "1.1", "dependencies": null}]}'])
def test_parallel_invalid_is_a_problem(data: bytes) -> None:
    g = parse_parallel(data, "parallel.json")
    assert g.achievements == [] and g.levels == []
    assert any(p.severity == "error" for p in g.problems)


def test_parallel_malformed_json_names_the_line() -> None:
    data = b'{"achievements": [\n  {"achievement_id": "1.1",\n   "dependencies": [],,\n  }\n]}'
    g = parse_parallel(data, "parallel.json")
    p = next(p for p in g.problems if p.code == "parallel-invalid")
    assert p.line == 3


def test_parallel_problem_lines_point_at_the_entry() -> None:
    data = (b'{"achievements": [\n {"achievement_id": "1.1", "dependencies": []},\n'
            b' {"achievement_id": "1.2", "dependencies": ["9.9"]}\n]}')
    g = parse_parallel(data, "parallel.json")
    assert next(p for p in g.problems if p.code == "parallel-unknown-id").line == 3


@pytest.mark.parametrize("line,number", [
    ("**Achievement**: 3.1", "3.1"),
    ("**Achievement**: 3.3 - Comprehensive User Documentation", "3.3"),
    ("**Achievement:** 3.10", "3.10"),
    ("**Achievement**: Achievement 3.5.1 (Deep)", "3.5.1"),
    ("**Achievement**: #2.4", "2.4"),
])
def test_achievement_metadata_forms(line: str, number: str) -> None:
    text = f"# SUBPLAN: Something\n\n**PLAN**: X\n{line}\n**Status**: In Progress\n"
    assert parse_work(text.encode(), "s.md", "subplan").achievement == number


def test_status_metadata_with_colon_inside_the_bold() -> None:
    doc = parse_work(b"# EXECUTION_TASK: x\n**Status:** \xe2\x9c\x85 Complete\n", "e.md", "execution")
    assert doc.status == "complete" and doc.status_line == 2
