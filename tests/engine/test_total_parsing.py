"""Parsing is total: any input gives a model plus problems, never an exception."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfd.engine.docs_parser import normalise_status, parse_feedback, parse_parallel, parse_work
from perfd.engine.plan_parser import PlanMemo, parse_plan, parse_plan_text
from perfd.engine.types import FeedbackDoc, ParallelGraph, PlanDoc, WorkDoc

from engine_helpers import codes, plan_text

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STRUCTURED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(data: bytes) -> tuple[PlanDoc, WorkDoc, WorkDoc, FeedbackDoc, FeedbackDoc, ParallelGraph]:
    out = (parse_plan(data, "PLAN_X.md"), parse_work(data, "SUBPLAN_X_11.md", "subplan"),
           parse_work(data, "EXECUTION_TASK_X_11_01.md", "execution"), parse_feedback(data, "FIX_11.md", "fix"),
           parse_feedback(data, "APPROVED_11.md", "approved"), parse_parallel(data, "parallel.json"))
    plan = out[0]
    for a in plan.achievements:
        assert a.number and (a.index_line is None or 1 <= a.index_line <= plan.line_count)
        if a.body_line is not None:
            assert a.body_end is not None and a.body_line <= a.body_end <= plan.line_count
    for s in plan.sections:
        assert 1 <= s.line <= s.end_line + 1 and s.end_line <= plan.line_count
    return out


# --- arbitrary input -------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(data: bytes) -> None:
    parse_all(data)


@FAST
@given(st.text(max_size=4000))
def test_arbitrary_text(text: str) -> None:
    parse_all(text.encode("utf-8", "surrogatepass"))


@FAST
@given(st.text())
def test_normalise_status_is_total(text: str) -> None:
    assert normalise_status(text) in ("complete", "in_progress", "not_started")


# --- structured random plans ------------------------------------------------------------------

numbers = st.builds(lambda a, b, c: f"{a}.{b}" + (f".{c}" if c is not None else ""),
                    st.integers(0, 12), st.integers(0, 15), st.none() | st.integers(1, 4))
words = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=40)
statuses = st.sampled_from(["✅ Complete", "✅ COMPLETE", "Complete", "In Progress", "🔄 In Progress", "🎯 Executing",
                            "📋 Design Phase", "📋 Ready for Execution", "Ready to Execute", "PENDING",
                            "Not Started", "✅ Design Complete, Ready for Execution"])

plan_line = st.one_of(
    st.builds("- Achievement {}: {}".format, numbers, words),
    st.builds("- ✅ Achievement {}: {}".format, numbers, words),
    st.builds("**Achievement {}**: {}".format, numbers, words),
    st.builds("**Achievement {}: {}**".format, numbers, words),
    st.builds("### Achievement {}: {} (2-3h)".format, numbers, words),
    st.builds("**Achievement {}**: {} ⏱️ 2-3 hours".format, numbers, words),
    st.builds("**Achievement {}**: {} ✅".format, numbers, words),
    st.builds("- [x] **Achievement {}**: {}".format, numbers, words),
    st.builds("- [ ] **Achievement {}**: {}".format, numbers, words),
    st.builds("- [x] **SUBPLAN_X_{}**: Achievement {} & {} - {} Complete".format,
              st.integers(0, 99), numbers, numbers, words),
    st.builds("- **SUBPLAN_{}**: Achievement {} ({}) - Status: {}".format, st.integers(0, 99), numbers, words,
              statuses),
    st.builds("- ✅ **Achievement {} COMPLETE**: {}".format, numbers, words),
    st.builds("**⏳ Next: Achievement {}**".format, numbers),
    st.builds("**Priority {}: {}**".format, st.integers(0, 9), words),
    st.builds("**{}**: {}".format, st.sampled_from(["Status", "Time", "Actual", "Goal", "Archive Location"]),
              words),
    st.sampled_from(["# PLAN: Random", "## 📋 Achievement Index", "## 📋 Achievements",
                     "## 📝 Current Status & Handoff", "## Current Status and Handoff", "## 📝 Archive Location",
                     "`./x-archive/`", "```", "```markdown", "````", "~~~", "ALL ACHIEVEMENTS DONE",
                     "| 11_01 | x |", "", "---", "**Achievement", "Achievement 1.", "- [x]", "**", "#", "##"]),
    words,
)


@STRUCTURED
@given(st.lists(plan_line, max_size=80), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_structured_random_plans(lines: list[str], eol: str, bom: bool) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + eol.join(lines).encode("utf-8", "surrogatepass")
    plan = parse_all(data)[0]
    if eol == "\r\n":
        assert parse_plan(data.replace(b"\r\n", b"\n"), "PLAN_X.md") == plan


edit = st.tuples(st.integers(0, 100), st.integers(0, 3), st.lists(plan_line, max_size=4))


@STRUCTURED
@given(st.lists(plan_line, max_size=80), st.lists(edit, min_size=1, max_size=6))
def test_a_memoised_reparse_after_edits_equals_a_fresh_parse(lines: list[str],
                                                              edits: list[tuple[int, int, list[str]]]) -> None:
    # The LSP session re-parses a buffer after each edit with the chunks of its
    # last parse (PlanMemo); whatever the edits, the answer must be a fresh parse's.
    memo = PlanMemo()
    assert parse_plan_text("\n".join(lines), "PLAN_X.md", memo=memo) == parse_plan(
        "\n".join(lines).encode("utf-8", "surrogatepass"), "PLAN_X.md")
    for at, drop, new in edits:
        at = min(at, len(lines))
        lines[at : at + drop] = new
        text = "\n".join(lines)
        fresh = parse_plan(text.encode("utf-8", "surrogatepass"), "PLAN_X.md")
        assert parse_plan_text(text, "PLAN_X.md", memo=memo) == fresh
        assert len(memo.chunks) <= text.count("\n##") + 1  # only the latest parse's chunks are kept


def test_the_text_entry_point_reports_what_the_bytes_one_does() -> None:
    # BOM, CRLF, NUL and a lone surrogate (which JSON can carry) take the bytes path's problems.
    for text in ("\ufeff# PLAN: X\n", "# PLAN: X\r\n- Achievement 1.1: A\r\n", "# PLAN: X\n\x00",
                 "# PLAN: X \ud800\n- Achievement 1.1: A\n"):
        assert parse_plan_text(text, "p") == parse_plan(text.encode("utf-8", "surrogatepass"), "p")
    assert "invalid-utf8" in {p.code for p in parse_plan_text("# PLAN: \ud800\n", "p").problems}


work_line = st.one_of(
    st.builds("**Status**: {}".format, statuses | words),
    st.builds("**Achievement**: {}".format, numbers),
    st.builds("# SUBPLAN: Achievement {} - {}".format, numbers, words),
    st.builds("| {:02d}_{:02d} | {} |".format, st.integers(0, 999), st.integers(0, 99), words),
    st.builds("| EXECUTION_TASK_X_{:02d}_{:02d} | {} |".format, st.integers(0, 999), st.integers(0, 99), words),
    st.sampled_from(["## 🔄 Active EXECUTION_TASKs", "## Critical Issues", "### Minor Issues", "#### Critical",
                     "## Other", "1. item", "2. item", "   - detail", "Active EXECUTION", ""]),
    words,
)


@STRUCTURED
@given(st.lists(work_line, max_size=60))
def test_structured_random_work_and_review_files(lines: list[str]) -> None:
    parse_all("\n".join(lines).encode("utf-8", "surrogatepass"))


json_ids = st.one_of(numbers, st.integers(-5, 50), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                     st.booleans())
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                           max_leaves=10)
parallel_item = st.fixed_dictionaries(
    {"achievement_id": json_ids},
    optional={"dependencies": st.lists(json_ids, max_size=4) | json_values, "title": st.text(max_size=10) | json_values,
              "estimated_hours": json_values})


@STRUCTURED
@given(st.lists(parallel_item, max_size=12) | json_values, st.booleans())
def test_structured_random_parallel_json(items: object, wrap: bool) -> None:
    doc = {"plan_name": "X", "achievements": items} if wrap else items
    g = parse_parallel(json.dumps(doc).encode(), "parallel.json")
    ids = {a.achievement_id for a in g.achievements}
    assert {x for lv in g.levels for x in lv} <= ids


@STRUCTURED
@given(st.dictionaries(st.sampled_from([f"1.{i}" for i in range(8)]),
                       st.lists(st.sampled_from([f"1.{i}" for i in range(10)]), max_size=4), max_size=8))
def test_parallel_levels_respect_dependencies(graph: dict[str, list[str]]) -> None:
    data = json.dumps({"achievements": [{"achievement_id": a, "dependencies": d} for a, d in graph.items()]})
    g = parse_parallel(data.encode(), "parallel.json")
    level = {a.achievement_id: a.level for a in g.achievements}
    for a, deps in graph.items():
        known = [d for d in deps if d in graph]
        if level[a] is not None:
            assert all(level[d] is not None and level[d] < level[a] for d in known)
            assert level[a] == (max((level[d] for d in known), default=-1) + 1)  # type: ignore[operator]
    on_cycle_or_after = [a for a, lv in level.items() if lv is None]
    assert bool(on_cycle_or_after) == ("parallel-cycle" in codes(g.problems))


# --- well-formed plans: every index entry is found -----------------------------------------------

title_chars = st.characters(codec="utf-8", categories=["L", "N"], exclude_characters="\n\r")
titles = st.builds(
    lambda first, mid, last: (first + mid + last).strip(),
    st.text(alphabet=title_chars, min_size=1, max_size=1),
    st.text(alphabet=st.one_of(title_chars, st.sampled_from(list(" &,./'+#@%=?!<>{}$[]():-"))), max_size=30),
    st.text(alphabet=title_chars, min_size=1, max_size=1),
).filter(lambda t: not t.upper().endswith("COMPLETE") and "Achievement" not in t and not re.search(r"\(\s*\d", t))
efforts = st.sampled_from([None, ("(2-3h)", "2-3h"), ("(4h)", "4h"), ("⏱️ 2-3 hours", "2-3 hours"),
                           ("(1.5 hours)", "1.5 hours")])


@st.composite
def well_formed_plans(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], list[str], list[str | None]]:
    nums = draw(st.lists(numbers, min_size=1, max_size=25, unique=True))
    achs = [(n, draw(titles)) for n in nums]
    forms = draw(st.lists(st.sampled_from(["bold", "bold-inner", "heading"]), min_size=len(nums),
                          max_size=len(nums)))
    effs = draw(st.lists(efforts, min_size=len(nums), max_size=len(nums)))
    done = draw(st.lists(st.sampled_from(nums), unique=True))
    lines = ["# PLAN: Generated", "", "**Status**: In Progress", "", "## 📋 Achievement Index", ""]
    for i, (n, t) in enumerate(achs):
        if i % 5 == 0:
            lines += [f"**Priority {i // 5}: GROUP {i // 5}**", ""]
        lines.append(f"- {'✅ ' if n in done else ''}Achievement {n}: {t}")
    lines += ["", "## 📋 Achievements", ""]
    for (n, t), form, eff in zip(achs, forms, effs):
        header = {"bold": f"**Achievement {n}**: {t}", "bold-inner": f"**Achievement {n}: {t}**",
                  "heading": f"### Achievement {n}: {t}"}[form]
        if eff is not None:
            header += " " + eff[0]
        lines += [header, "", f"Body of {n}, see Achievement {nums[0]}.", "```", f"**Achievement {n}**: fenced",
                  "```", ""]
    return "\n".join(lines) + "\n", achs, done, [e[1] if e else None for e in effs]


@STRUCTURED
@given(well_formed_plans())
def test_every_index_entry_is_found(plan: tuple[str, list[tuple[str, str]], list[str], list[str | None]]) -> None:
    text, achs, done, effs = plan
    doc = parse_plan(text.encode(), "PLAN_X.md")
    assert [(a.number, a.title) for a in doc.achievements] == achs
    lines = text.split("\n")
    for a in doc.achievements:
        assert a.index_line is not None and f"Achievement {a.number}: " in lines[a.index_line - 1]
        assert a.body_line is not None and lines[a.body_line - 1].lstrip("#* ").startswith(f"Achievement {a.number}")
        assert a.body_title == a.title
        assert a.marked_done == (a.number in done)
        assert a.priority is not None and a.priority.startswith("Priority ")
    assert [a.effort for a in doc.achievements] == effs
    assert not [p for p in doc.problems if p.severity != "info"]


# --- specific inputs --------------------------------------------------------------------------------


def test_empty() -> None:
    plan, sub, ex, fix, ap, par = parse_all(b"")
    assert plan.achievements == [] and plan.line_count == 0
    assert "no-title" in codes(plan.problems)
    assert "no-status" in codes(sub.problems) and "fix-without-issues" in codes(fix.problems)
    assert "parallel-invalid" in codes(par.problems)


def test_binary_with_nul_bytes() -> None:
    data = plan_text(["1.1"]).encode()[:40] + b"\x00\x01\x02\xff" * 100
    for doc in parse_all(data):
        assert "binary-file" in codes(doc.problems)  # type: ignore[attr-defined]
    assert parse_plan(data, "p").achievements == []


def test_invalid_utf8_has_a_problem_with_its_line() -> None:
    text = plan_text(["1.1", "1.2"])
    lines = text.split("\n")
    lines[2] += "\udcff"  # line 3: an invalid byte
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    out = parse_all(data)
    for doc in out:
        p = next(p for p in doc.problems if p.code == "invalid-utf8")  # type: ignore[attr-defined]
        assert p.line == 3
    assert [a.number for a in out[0].achievements] == ["1.1", "1.2"]


def test_bom() -> None:
    text = plan_text(["1.1", "1.2"])
    with_bom = parse_plan(b"\xef\xbb\xbf" + text.encode(), "p")
    assert with_bom == parse_plan(text.encode(), "p")
    assert with_bom.title == "Demo Plan"
    w = parse_work(b"\xef\xbb\xbf**Status**: Complete\n", "s", "subplan")
    assert w.status == "complete"
    g = parse_parallel(b'\xef\xbb\xbf{"achievements": [{"achievement_id": "1.1"}]}', "p")
    assert g.problems == [] and g.levels == [["1.1"]]


def test_crlf_and_cr() -> None:
    text = plan_text(["1.1", "1.2"], handoff_next="1.2")
    lf = parse_plan(text.encode(), "p")
    assert parse_plan(text.replace("\n", "\r\n").encode(), "p") == lf
    assert parse_plan(text.replace("\n", "\r").encode(), "p") == lf
    w = parse_work(b"# SUBPLAN: x\r\n**Achievement**: 1.1\r\n**Status**: In Progress\r\n", "s", "subplan")
    assert (w.achievement, w.status_text, w.status_line) == ("1.1", "In Progress", 3)


def test_fifty_thousand_lines() -> None:
    nums = [f"{i // 50}.{i % 50}" for i in range(1000)]
    filler = "\n".join(f"Prose line {i} about Achievement {nums[i % 1000]} and more." for i in range(46000))
    text = plan_text(nums, extra=filler)
    assert text.count("\n") >= 50000
    plan = parse_all(text.encode())[0]
    assert [a.number for a in plan.achievements] == nums
    assert plan.line_count >= 50000


def test_single_five_megabyte_line() -> None:
    data = b"# PLAN: " + b"x" * (5 * 1024 * 1024)
    out = parse_all(data)
    plan = out[0]
    assert plan.line_count == 1 and plan.achievements == []
    assert plan.problems  # no title (the line is too long to read as one), no achievements
    data2 = b"- Achievement 1.1: " + b"y" * (5 * 1024 * 1024) + b"\n" + plan_text(["1.2"]).encode()
    assert [a.number for a in parse_plan(data2, "p").achievements] == ["1.2"]


def test_file_over_the_size_limit() -> None:
    from perfd.engine.text import MAX_BYTES
    data = b"a" * (MAX_BYTES + 1)
    for doc in parse_all(data):
        assert "file-too-large" in codes(doc.problems)  # type: ignore[attr-defined]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_invalid_utf8_line_with_any_line_ending(eol: str) -> None:
    data = eol.join(["# PLAN: x", "line 2", "bad \udcff here", "line 4"]).encode("utf-8", "surrogateescape")
    doc = parse_plan(data, "p")
    assert next(p for p in doc.problems if p.code == "invalid-utf8").line == 3
    assert doc.line_count == 4 and doc.title == "x"


# --- the engine over a workspace of arbitrary files -------------------------------------------------

blobs = st.binary(max_size=600) | st.lists(plan_line, max_size=30).map(lambda ls: "\n".join(ls).encode())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=blobs, subplan=blobs, execution=blobs, fix=blobs, parallel_json=blobs | st.just(b""),
       template=st.text(max_size=200))
def test_engine_answers_for_any_file_contents(plan: bytes, subplan: bytes, execution: bytes, fix: bytes,
                                              parallel_json: bytes, template: str) -> None:
    import tempfile
    from pathlib import Path

    from engine_helpers import WS

    with tempfile.TemporaryDirectory() as d:
        ws = WS(Path(d))
        ws.write(ws.folder("X") / "PLAN_X.md", plan)
        ws.write(ws.folder("X") / "subplans" / "SUBPLAN_X_11.md", subplan)
        ws.write(ws.folder("X") / "execution" / "EXECUTION_TASK_X_11_01.md", execution)
        ws.write(ws.folder("X") / "execution" / "feedbacks" / "FIX_11.md", fix)
        ws.write(ws.folder("X") / "parallel.json", parallel_json)
        ws.write(".perfd/templates/fix_pending.md", template)
        eng = ws.engine()
        g = eng.generate("@X")
        st_ = eng.plan_status("@X")
        assert (g.plan, g.plan_path, g.achievement) == ("X", st_.path, st_.next)
        assert [p.plan for p in eng.status().plans] == ["X"]
