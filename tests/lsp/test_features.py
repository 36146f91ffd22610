"""perfd.lsp.features called directly: engine results in, LSP shapes out.

One small plan is written to tmp_path and read by the real engine; every
expected value below is counted from PLAN's numbered lines (1-based in the
engine, 0-based in LSP). No server is started.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import msgspec
import pytest
from lsprotocol import types as lsp
from pygls.uris import to_fs_path

from perfd.engine.engine import Engine
from perfd.engine.types import PlanDoc, PlanStateName, PlanStatus, Problem
from perfd.lsp import features as F
from perfd.lsp.positions import UTF16, Units

PLAN = """\
# PLAN: Demo 🚀 Plan

**Status**: In Progress

## 📋 Achievement Index

**Priority 1: FOUNDATION (HIGH)**

- Achievement 1.1: Parse Input (2-3h)
- Achievement 1.2: Render Output

**Priority 2: POLISH (MEDIUM)**

- Achievement 2.1: Polish ✨ Edges

## 📋 Achievements

**Achievement 1.1**: Parse Input

**Time**: 2 hours
**Actual**: 3 hours

Body of 1.1, see SUBPLAN_DEMO_11.md and APPROVED_11.md.

**Achievement 1.2**: Render Output

Body of 1.2: after Achievement 1.1 comes FIX_12.md.

**Achievement 2.1**: Polish ✨ Edges

Body of 2.1.

## 📝 Current Status & Handoff

**⏳ Next: Achievement 1.2**
"""
# Lines (1-based) the tests point at.
TITLE, INDEX_SEC, P1, I11, I12, P2, I21, ACH_SEC = 1, 5, 7, 9, 10, 12, 14, 16
B11, B11_LINK, B12, B12_REF, B21, HANDOFF_SEC, LAST = 18, 23, 25, 27, 29, 33, 35


def _done(kind: str, number: str) -> str:
    head = "SUBPLAN" if kind == "subplan" else "EXECUTION_TASK"
    return f"# {head}: Achievement {number}\n\n**Achievement**: {number}\n**Status**: ✅ Complete\n"


@dataclass
class Demo:
    root: str
    folder: str
    plan: str
    lines: list[str]
    doc: PlanDoc
    status: PlanStatus
    engine: Engine

    def file(self, rel: str) -> str:
        return os.path.join(self.folder, rel)


@pytest.fixture
def demo(tmp_path: Path) -> Demo:
    """1.1 approved, 1.2 with a FIX pending, 2.1 not started and blocked on 1.2 (parallel.json)."""
    root = tmp_path / "ws"
    folder = root / "work-space" / "plans" / "DEMO"
    files = {
        "PLAN_DEMO.md": PLAN,
        "subplans/SUBPLAN_DEMO_11.md": _done("subplan", "1.1"),
        "execution/EXECUTION_TASK_DEMO_11_01.md": _done("execution", "1.1"),
        "execution/feedbacks/APPROVED_11.md": "# APPROVED: Achievement 1.1\n\nGood.\n",
        "subplans/SUBPLAN_DEMO_12.md": _done("subplan", "1.2"),
        "execution/EXECUTION_TASK_DEMO_12_01.md": _done("execution", "1.2"),
        "execution/feedbacks/FIX_12.md": "# FIX: Achievement 1.2\n\n## Critical Issues\n\n1. Broken.\n",
        "parallel.json": json.dumps({"plan_name": "DEMO", "achievements": [
            {"achievement_id": "1.1", "dependencies": []},
            {"achievement_id": "1.2", "dependencies": ["1.1"]},
            {"achievement_id": "2.1", "dependencies": ["1.2"]}]}),
    }
    for rel, text in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    engine = Engine(str(root))
    ref = engine.resolve("@DEMO")
    d = Demo(str(root), str(folder), ref.path, PLAN.split("\n"), engine.plan_doc(ref), engine.plan_status(ref), engine)
    # What the tests below rely on, stated once.
    assert [(a.number, a.state, a.ready) for a in d.status.achievements] == [
        ("1.1", "complete", True), ("1.2", "fix_pending", True), ("2.1", "no_subplan", False)]
    assert d.status.next == "1.2"
    return d


def pos(line: int, character: int) -> lsp.Position:
    """A 1-based line (as the constants above) and a 0-based character."""
    return lsp.Position(line - 1, character)


def col(line_text: str, needle: str) -> int:
    return line_text.index(needle)


def r(sl: int, sc: int, el: int, ec: int) -> F.RangeJSON:
    return {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}


# --- width ------------------------------------------------------------------------------------


def test_width_counts_utf16_code_units() -> None:
    assert UTF16.width("") == 0
    assert UTF16.width("plain ascii") == 11
    assert UTF16.width("✅ done") == 6  # U+2705 is in the BMP: one unit
    assert UTF16.width("🚀") == 2  # astral: a surrogate pair
    assert UTF16.width("# PLAN: Demo 🚀 Plan") == len("# PLAN: Demo 🚀 Plan") + 1 == 20


def test_every_state_has_a_label() -> None:
    states = set(get_args(PlanStateName))  # the nested Literal of achievement states flattens into it
    assert "plan_complete" in states and "fix_pending" in states
    assert set(F.STATE_LABEL) == states


# --- diagnostics --------------------------------------------------------------------------------


def test_diagnostics_span_the_whole_line_in_utf16(demo: Demo) -> None:
    probs = [Problem("bad-title", "title is odd", "error", demo.plan, TITLE),
             Problem("bad-index", "index is odd", "info", demo.plan, I21)]
    diags = F.diagnostics(probs, demo.plan, demo.lines)
    assert [(d.code, d.message, d.severity, d.source) for d in diags] == [
        ("bad-title", "title is odd", lsp.DiagnosticSeverity.Error, "perfd"),
        ("bad-index", "index is odd", lsp.DiagnosticSeverity.Information, "perfd")]
    # "# PLAN: Demo 🚀 Plan" is 19 code points, 20 UTF-16 units
    assert diags[0].range == lsp.Range(lsp.Position(0, 0), lsp.Position(0, 20))
    assert diags[1].range == lsp.Range(lsp.Position(I21 - 1, 0), lsp.Position(I21 - 1, len(demo.lines[I21 - 1])))


def test_diagnostics_keep_this_files_problems_once(demo: Demo, tmp_path: Path) -> None:
    alias = tmp_path / "alias.md"
    alias.symlink_to(demo.plan)
    probs = [
        Problem("w", "about the plan", "warning", demo.plan, I11),
        Problem("w", "about the plan", "warning", demo.plan, I11),  # a duplicate: shown once
        Problem("w", "same place, other words", "warning", demo.plan, I11),
        Problem("g", "about nothing in particular"),  # no path, no line: pinned to line 1
        Problem("s", "through a symlink", "warning", str(alias), I12),
        Problem("o", "about another file", "error", demo.file("parallel.json"), 1),
        Problem("far", "past the end", "warning", demo.plan, 999),
    ]
    diags = F.diagnostics(probs, demo.plan, demo.lines)
    assert [(d.code, d.message, d.range.start.line, d.severity) for d in diags] == [
        ("w", "about the plan", I11 - 1, lsp.DiagnosticSeverity.Warning),
        ("w", "same place, other words", I11 - 1, lsp.DiagnosticSeverity.Warning),
        ("g", "about nothing in particular", 0, lsp.DiagnosticSeverity.Warning),
        ("s", "through a symlink", I12 - 1, lsp.DiagnosticSeverity.Warning),
        ("far", "past the end", 998, lsp.DiagnosticSeverity.Warning),
    ]
    assert diags[-1].range == lsp.Range(lsp.Position(998, 0), lsp.Position(998, 0))


def test_diagnostics_of_a_real_engine_problem(demo: Demo) -> None:
    Path(demo.file("parallel.json")).write_text("{not json", encoding="utf-8")
    st = demo.engine.plan_status("@DEMO")
    pj = demo.file("parallel.json")
    assert [(p.code, p.path) for p in st.problems] == [("parallel-invalid", pj)]
    assert F.diagnostics(list(st.problems), demo.plan, demo.lines) == []  # not about the plan itself
    diags = F.diagnostics(list(st.problems), pj, ["{not json"])
    assert [(d.code, d.severity, d.range) for d in diags] == [
        ("parallel-invalid", lsp.DiagnosticSeverity.Error, lsp.Range(lsp.Position(0, 0), lsp.Position(0, 9)))]


def test_related_diagnostics_group_other_files_by_path(demo: Demo, tmp_path: Path) -> None:
    alias = tmp_path / "alias.md"
    alias.symlink_to(demo.plan)
    fix, pj = demo.file("execution/feedbacks/FIX_12.md"), demo.file("parallel.json")
    p1, p2, p3 = Problem("a", "one", path=fix), Problem("b", "two", path=pj), Problem("c", "three", path=fix)
    st = msgspec.structs.replace(demo.status, problems=[
        Problem("own", "the plan's own", path=demo.plan), Problem("none", "no path"), p1, p2,
        Problem("link", "the plan through a symlink", path=str(alias)), p3])
    assert F.related_diagnostics(st) == {fix: [p1, p3], pj: [p2]}
    assert F.related_diagnostics(demo.status) == {}


# --- document symbols ------------------------------------------------------------------------------


def test_document_symbols_nest_groups_and_bodies(demo: Demo) -> None:
    L = demo.lines

    def w(n: int) -> int:
        return UTF16.width(L[n - 1])

    syms = F.document_symbols(demo.doc, L)
    index, bodies, handoff = syms
    assert [(s["name"], s["kind"]) for s in syms] == [
        ("📋 Achievement Index", lsp.SymbolKind.Namespace), ("📋 Achievements", lsp.SymbolKind.Namespace),
        ("📝 Current Status & Handoff", lsp.SymbolKind.Namespace)]
    assert index["range"] == r(INDEX_SEC - 1, 0, ACH_SEC - 2, w(ACH_SEC - 1))
    assert index["selectionRange"] == r(INDEX_SEC - 1, 0, INDEX_SEC - 1, w(INDEX_SEC))
    assert w(INDEX_SEC) == len("## 📋 Achievement Index") + 1  # the emoji is two units
    assert "children" not in handoff
    assert handoff["range"] == r(HANDOFF_SEC - 1, 0, LAST - 1, w(LAST))

    g1, g2 = index["children"]
    assert (g1["name"], g1["kind"], g2["name"]) == ("Priority 1: FOUNDATION (HIGH)", lsp.SymbolKind.Package,
                                                     "Priority 2: POLISH (MEDIUM)")
    assert g1["range"] == r(P1 - 1, 0, I12 - 1, w(I12))  # the group ends with its last achievement
    assert g1["selectionRange"] == r(P1 - 1, 0, P1 - 1, w(P1))
    assert [(c["name"], c["kind"], c.get("detail"), c["range"]) for c in g1["children"]] == [
        ("1.1 Parse Input", lsp.SymbolKind.Event, "2-3h", r(I11 - 1, 0, I11 - 1, w(I11))),
        ("1.2 Render Output", lsp.SymbolKind.Event, None, r(I12 - 1, 0, I12 - 1, w(I12)))]
    assert [c["name"] for c in g2["children"]] == ["2.1 Polish ✨ Edges"]

    assert [(c["name"], c["kind"], c.get("detail"), c["range"]["start"]["line"], c["range"]["end"]["line"])
            for c in bodies["children"]] == [
        ("Achievement 1.1: Parse Input", lsp.SymbolKind.Class, "2 hours", B11 - 1, B12 - 2),  # Time over effort
        ("Achievement 1.2: Render Output", lsp.SymbolKind.Class, None, B12 - 1, B21 - 2),
        ("Achievement 2.1: Polish ✨ Edges", lsp.SymbolKind.Class, None, B21 - 1, HANDOFF_SEC - 2)]


def test_document_symbols_without_priority_groups(demo: Demo) -> None:
    text = "# PLAN: X\n\n## Achievement Index\n\n- Achievement 1.1: One\n- Achievement 1.2: Two\n"
    doc = demo.engine.parse_text(demo.file("PLAN_X.md"), text)
    (index,) = F.document_symbols(doc, text.split("\n"))
    assert [(c["name"], c["kind"], c["range"]["start"]["line"]) for c in index["children"]] == [
        ("1.1 One", lsp.SymbolKind.Event, 4), ("1.2 Two", lsp.SymbolKind.Event, 5)]


# --- code lenses -----------------------------------------------------------------------------------


def _lens_rows(lenses: list[F.CodeLensJSON]) -> list[tuple[int, str, str, list[str]]]:
    return [(x["range"]["start"]["line"], x["command"]["title"], x["command"]["command"], x["command"]["arguments"])
            for x in lenses]


def test_code_lenses_state_per_achievement_and_generate_where_open(demo: Demo) -> None:
    p = demo.plan
    assert _lens_rows(F.code_lenses(demo.status, demo.doc, demo.lines)) == [
        (0, "Next: 1.2 — Generate", "perfd.generateNext", [p]),
        (I11 - 1, "✅ approved", "perfd.status", [p, "1.1"]),
        (B11 - 1, "✅ approved", "perfd.status", [p, "1.1"]),
        (I12 - 1, "🔧 fix pending", "perfd.status", [p, "1.2"]),
        (I12 - 1, "Generate prompt", "perfd.generate", [p, "1.2"]),
        (B12 - 1, "🔧 fix pending", "perfd.status", [p, "1.2"]),
        (B12 - 1, "Generate prompt", "perfd.generate", [p, "1.2"]),
        (I21 - 1, "📄 no SUBPLAN yet (blocked)", "perfd.status", [p, "2.1"]),
        (I21 - 1, "Generate prompt", "perfd.generate", [p, "2.1"]),
        (B21 - 1, "📄 no SUBPLAN yet (blocked)", "perfd.status", [p, "2.1"]),
        (B21 - 1, "Generate prompt", "perfd.generate", [p, "2.1"]),
    ]


def test_code_lens_of_a_finished_plan_sits_on_the_title(demo: Demo) -> None:
    done = msgspec.structs.replace(demo.status, next=None, state="plan_complete", done=3, achievements=[])
    lines = ["---", "front: matter", "---", "# PLAN: Demo", ""]
    lenses = F.code_lenses(done, demo.doc, lines)
    assert _lens_rows(lenses) == [(3, "✅ plan complete (3/3)", "perfd.status", [demo.plan])]
    assert lenses[0]["range"] == r(3, 0, 3, 0)


# --- hover ------------------------------------------------------------------------------------------


def test_hover_on_a_reference_describes_that_achievement(demo: Demo) -> None:
    line = demo.lines[B12_REF - 1]
    h = F.hover(demo.status, demo.lines, pos(B12_REF, col(line, "Achievement 1.1") + 3), demo.root, demo.doc)
    assert h is not None and h.contents.kind == lsp.MarkupKind.Markdown  # type: ignore[union-attr]
    assert h.contents.value.split("  \n") == [  # type: ignore[union-attr]
        "**Achievement 1.1**: Parse Input", "", "State: ✅ approved", "Priority: Priority 1: FOUNDATION (HIGH)",
        "SUBPLAN: work-space/plans/DEMO/subplans/SUBPLAN_DEMO_11.md",
        "EXECUTION_TASKs: work-space/plans/DEMO/execution/EXECUTION_TASK_DEMO_11_01.md",
        "APPROVED: work-space/plans/DEMO/execution/feedbacks/APPROVED_11.md",
        "Effort: 2-3h", "Time: 2 hours", "Actual: 3 hours", f"Section: lines {B11}-{B12 - 1}"]


def test_hover_in_a_body_describes_the_achievement_around_it(demo: Demo) -> None:
    line = demo.lines[B12_REF - 1]
    after_ref = col(line, "Achievement 1.1") + len("Achievement 1.1") + 1  # just past the reference
    h = F.hover(demo.status, demo.lines, pos(B12_REF, after_ref), demo.root)
    assert h is not None
    assert h.contents.value.split("  \n") == [  # type: ignore[union-attr]
        "**Achievement 1.2**: Render Output", "", "State: 🔧 fix pending", "Priority: Priority 1: FOUNDATION (HIGH)",
        "Depends on: 1.1", "SUBPLAN: work-space/plans/DEMO/subplans/SUBPLAN_DEMO_12.md",
        "EXECUTION_TASKs: work-space/plans/DEMO/execution/EXECUTION_TASK_DEMO_12_01.md",
        "FIX: work-space/plans/DEMO/execution/feedbacks/FIX_12.md", f"Section: lines {B12}-{B21 - 1}"]


def test_hover_on_a_blocked_index_line(demo: Demo) -> None:
    h = F.hover(demo.status, demo.lines, pos(I21, 0), demo.root, demo.doc)
    assert h is not None
    assert h.contents.value.split("  \n") == [  # type: ignore[union-attr]
        "**Achievement 2.1**: Polish ✨ Edges", "", "State: 📄 no SUBPLAN yet", "Priority: Priority 2: POLISH (MEDIUM)",
        "Depends on: 1.2 (not all complete)", "SUBPLAN: —", f"Section: lines {B21}-{HANDOFF_SEC - 1}"]


def test_hover_elsewhere_is_none(demo: Demo) -> None:
    assert F.hover(demo.status, demo.lines, pos(TITLE, 3), demo.root) is None
    assert F.hover(demo.status, demo.lines, pos(LAST + 5, 0), demo.root) is None
    lines = [*demo.lines[:-1], "See Achievement 9.9."]
    assert F.hover(demo.status, lines, lsp.Position(len(lines) - 1, 6), demo.root) is None


# --- definition and links -------------------------------------------------------------------------------


def test_definition_of_a_reference_is_the_body(demo: Demo) -> None:
    files = F.plan_files(demo.status, demo.folder)
    line = demo.lines[B12_REF - 1]
    loc = F.definition(demo.status, demo.lines, pos(B12_REF, col(line, "Achievement 1.1")), demo.plan, files)
    assert loc == lsp.Location(uri=F.path_to_uri(demo.plan),
                               range=lsp.Range(lsp.Position(B11 - 1, 0), lsp.Position(B11 - 1, 0)))


def test_definition_of_a_file_name_is_the_file(demo: Demo) -> None:
    files = F.plan_files(demo.status, demo.folder)
    line = demo.lines[B12_REF - 1]
    loc = F.definition(demo.status, demo.lines, pos(B12_REF, col(line, "FIX_12.md") + 4), demo.plan, files)
    assert loc == lsp.Location(uri=F.path_to_uri(demo.file("execution/feedbacks/FIX_12.md")),
                               range=lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0)))
    line = demo.lines[B11_LINK - 1]
    loc = F.definition(demo.status, demo.lines, pos(B11_LINK, col(line, "APPROVED_11.md")), demo.plan, files)
    assert loc is not None and loc.uri == F.path_to_uri(demo.file("execution/feedbacks/APPROVED_11.md"))


def test_definition_finds_nothing_where_there_is_nothing(demo: Demo) -> None:
    files = F.plan_files(demo.status, demo.folder)
    lines = ["Achievement 9.9 and SUBPLAN_DEMO_99.md"]
    assert F.definition(demo.status, lines, lsp.Position(0, 2), demo.plan, files) is None  # no such achievement
    assert F.definition(demo.status, lines, lsp.Position(0, 25), demo.plan, files) is None  # no such file
    assert F.definition(demo.status, demo.lines, pos(TITLE, 0), demo.plan, files) is None
    assert F.definition(demo.status, demo.lines, pos(LAST + 5, 0), demo.plan, files) is None
    # an achievement the plan names but never places has nowhere to go
    unplaced = msgspec.structs.replace(demo.status, achievements=[
        msgspec.structs.replace(a, index_line=None, body_line=None) for a in demo.status.achievements])
    line = demo.lines[B12_REF - 1]
    assert F.definition(unplaced, demo.lines, pos(B12_REF, col(line, "Achievement 1.1")), demo.plan, files) is None


def test_document_links_cover_known_file_names(demo: Demo) -> None:
    files = F.plan_files(demo.status, demo.folder)
    links = F.document_links(demo.lines + ["SUBPLAN_DEMO_99.md is not a file of the plan"], files)
    l23, l27 = demo.lines[B11_LINK - 1], demo.lines[B12_REF - 1]
    got = [(x.range, x.target) for x in links]
    assert got == [
        (lsp.Range(lsp.Position(B11_LINK - 1, col(l23, "SUBPLAN_")), lsp.Position(B11_LINK - 1, col(l23, " and"))),
         F.path_to_uri(demo.file("subplans/SUBPLAN_DEMO_11.md"))),
        (lsp.Range(lsp.Position(B11_LINK - 1, col(l23, "APPROVED_")), lsp.Position(B11_LINK - 1, len(l23) - 1)),
         F.path_to_uri(demo.file("execution/feedbacks/APPROVED_11.md"))),
        (lsp.Range(lsp.Position(B12_REF - 1, col(l27, "FIX_")), lsp.Position(B12_REF - 1, len(l27) - 1)),
         F.path_to_uri(demo.file("execution/feedbacks/FIX_12.md"))),
    ]


# Columns after an astral emoji, in each encoding a client may agree on: 🚀 is 4 UTF-8 bytes,
# 2 UTF-16 units (a surrogate pair), 1 UTF-32 unit.
ENCODINGS = [("utf-8", 4), ("utf-16", 2), ("utf-32", 1)]


@pytest.mark.parametrize(("encoding", "rocket"), ENCODINGS)
def test_document_link_columns_follow_the_agreed_encoding_after_an_astral_emoji(
        demo: Demo, encoding: str, rocket: int) -> None:
    files = F.plan_files(demo.status, demo.folder)
    (link,) = F.document_links(["🚀 FIX_12.md"], files, units=Units(encoding))
    assert link.range == lsp.Range(lsp.Position(0, rocket + 1), lsp.Position(0, rocket + 10))


@pytest.mark.parametrize(("encoding", "rocket"), ENCODINGS)
def test_the_cursor_after_an_astral_emoji_is_read_in_the_agreed_encoding(
        demo: Demo, encoding: str, rocket: int) -> None:
    units = Units(encoding)
    files = F.plan_files(demo.status, demo.folder)
    line = "🚀🚀 see FIX_12.md and Achievement 1.2"
    lines = [line]
    at_fix = 2 * rocket + len(" see ")  # the F of FIX_12.md, in client units
    loc = F.definition(demo.status, lines, lsp.Position(0, at_fix), demo.plan, files, units=units)
    assert loc is not None and loc.uri == F.path_to_uri(demo.file("execution/feedbacks/FIX_12.md"))
    # counted in code points instead, the UTF-8 and UTF-16 cursors would land past the name
    at_ref = 2 * rocket + len(" see FIX_12.md and Achievement 1")
    h = F.hover(demo.status, lines, lsp.Position(0, at_ref), demo.root, demo.doc, units=units)
    assert h is not None and h.contents.value.startswith("**Achievement 1.2**")  # type: ignore[union-attr]
    items = F.completions(demo.status, ["DEMO"], ["🚀 run @de"], lsp.Position(0, rocket + len(" run @de")),
                          units=units)
    assert [i.label for i in items] == ["@DEMO"]


@pytest.mark.parametrize(("encoding", "rocket"), ENCODINGS)
def test_whole_line_ranges_end_at_the_line_end_in_the_agreed_encoding(
        demo: Demo, encoding: str, rocket: int) -> None:
    units = Units(encoding)
    title = demo.lines[0]  # "# PLAN: Demo 🚀 Plan"
    (diag,) = F.diagnostics([Problem("x", "m", "warning", demo.plan, 1)], demo.plan, demo.lines, units=units)
    assert diag.range.end == lsp.Position(0, len(title) - 1 + rocket)
    index = next(sym for sym in F.document_symbols(demo.doc, demo.lines, units=units) if "Index" in sym["name"])
    header = demo.lines[index["selectionRange"]["start"]["line"]]  # "## 📋 Achievement Index"
    assert "📋" in header and index["selectionRange"]["end"]["character"] == len(header) - 1 + rocket


def test_units_round_trip_and_clamp() -> None:
    line = "🚀 FIX_12.md é"
    for encoding in ("utf-8", "utf-16", "utf-32"):
        u = Units(encoding)
        cols = [u.column(line, i) for i in range(len(line) + 1)]
        assert [u.index(line, c) for c in cols] == list(range(len(line) + 1))
        assert u.width(line) == cols[-1] and u.index(line, 10**6) == len(line) and u.index(line, -3) == 0
    assert Units("utf-16").index(line, 1) == 0  # half a surrogate pair is the character it halves
    assert Units("utf-8").index("é!", 1) == 0
    assert Units("latin-1").encoding == Units(None).encoding == "utf-16"  # unknown: LSP's default
    # as pygls may hold it: lsprotocol's enum, whose str() is "PositionEncodingKind.Utf8"
    for kind, name in ((lsp.PositionEncodingKind.Utf8, "utf-8"), (lsp.PositionEncodingKind.Utf32, "utf-32")):
        assert str(Units(kind).encoding) == name  # a plain string, whatever it was given


# --- folding, completion, workspace symbols ------------------------------------------------------------------


def test_folding_ranges_are_sections_and_bodies(demo: Demo) -> None:
    assert [(f["startLine"], f["endLine"], f["kind"]) for f in F.folding_ranges(demo.doc)] == [
        (INDEX_SEC - 1, ACH_SEC - 2, "region"), (ACH_SEC - 1, HANDOFF_SEC - 2, "region"),
        (HANDOFF_SEC - 1, LAST - 1, "region"),
        (B11 - 1, B12 - 2, "region"), (B12 - 1, B21 - 2, "region"), (B21 - 1, HANDOFF_SEC - 2, "region")]


def test_one_line_spans_do_not_fold(demo: Demo) -> None:
    doc = msgspec.structs.replace(
        demo.doc, sections=[msgspec.structs.replace(s, end_line=s.line) for s in demo.doc.sections],
        achievements=[msgspec.structs.replace(a, body_end=a.body_line) for a in demo.doc.achievements])
    assert F.folding_ranges(doc) == []


def test_completions_of_plan_names_after_an_at(demo: Demo) -> None:
    names = ["DEMO", "DEMO-2", "OTHER"]
    items = F.completions(demo.status, names, ["run @de"], lsp.Position(0, 7))
    assert [(i.label, i.insert_text, i.filter_text, i.kind) for i in items] == [
        ("@DEMO", "DEMO", "DEMO", lsp.CompletionItemKind.Module),
        ("@DEMO-2", "DEMO-2", "DEMO-2", lsp.CompletionItemKind.Module)]
    assert [i.label for i in F.completions(None, names, ["@"], lsp.Position(0, 1))] == ["@DEMO", "@DEMO-2", "@OTHER"]


def test_completions_of_achievement_numbers(demo: Demo) -> None:
    line = ["see Achievement 1. for more"]
    items = F.completions(demo.status, [], line, lsp.Position(0, len("see Achievement 1.")))
    assert [(i.label, i.detail, i.kind) for i in items] == [
        ("1.1", "Parse Input — ✅ approved", lsp.CompletionItemKind.EnumMember),
        ("1.2", "Render Output — 🔧 fix pending", lsp.CompletionItemKind.EnumMember)]
    plural = F.completions(demo.status, [], ["Achievements 2"], lsp.Position(0, 14))
    assert [i.label for i in plural] == ["2.1"]
    assert [i.label for i in F.completions(demo.status, [], ["Achievement "], lsp.Position(0, 12))] == [
        "1.1", "1.2", "2.1"]


def test_no_completions_out_of_context(demo: Demo) -> None:
    assert F.completions(None, ["DEMO"], ["Achievement 1."], lsp.Position(0, 14)) == []  # no plan status
    assert F.completions(demo.status, ["DEMO"], ["plain words"], lsp.Position(0, 5)) == []
    assert F.completions(demo.status, ["DEMO"], ["@DE"], lsp.Position(1, 0)) == []  # past the last line
    assert F.completions(demo.status, ["DEMO"], ["@XY"], lsp.Position(0, 3)) == []


def test_workspace_symbols_filter_by_name_or_plan(demo: Demo) -> None:
    text = "# PLAN: Other\n\n## Achievement Index\n\n- Achievement 3.1: Ship It\n"
    other_path = os.path.join(demo.root, "work-space", "plans", "OTHER", "PLAN_OTHER.md")
    os.makedirs(os.path.dirname(other_path))
    Path(other_path).write_text(text, encoding="utf-8")
    other = demo.engine.plan_status("@OTHER")
    assert [(a.number, a.index_line, a.body_line) for a in other.achievements] == [("3.1", 5, None)]

    def rows(query: str) -> list[tuple[str, str, str, int]]:
        return [(s.name, s.container_name or "", s.location.uri, s.location.range.start.line)  # type: ignore[union-attr]
                for s in F.workspace_symbols([demo.status, other], query)]

    demo_uri, other_uri = F.path_to_uri(demo.plan), F.path_to_uri(other_path)
    assert rows("") == [("1.1 Parse Input", "DEMO", demo_uri, B11 - 1), ("1.2 Render Output", "DEMO", demo_uri, B12 - 1),
                        ("2.1 Polish ✨ Edges", "DEMO", demo_uri, B21 - 1), ("3.1 Ship It", "OTHER", other_uri, 4)]
    assert rows("RENDER") == [("1.2 Render Output", "DEMO", demo_uri, B12 - 1)]
    assert [n for n, *_ in rows("oth")] == ["3.1 Ship It"]  # the plan's name matches
    assert rows("nothing like it") == []
    assert all(s.kind == lsp.SymbolKind.Event for s in F.workspace_symbols([demo.status], ""))


# --- files and URIs -----------------------------------------------------------------------------------


def test_plan_files_name_every_file_of_the_plan(demo: Demo) -> None:
    f = demo.file
    assert F.plan_files(demo.status, demo.folder) == {
        "PLAN_DEMO.md": demo.plan,
        "SUBPLAN_DEMO_11.md": f("subplans/SUBPLAN_DEMO_11.md"),
        "EXECUTION_TASK_DEMO_11_01.md": f("execution/EXECUTION_TASK_DEMO_11_01.md"),
        "APPROVED_11.md": f("execution/feedbacks/APPROVED_11.md"),
        "SUBPLAN_DEMO_12.md": f("subplans/SUBPLAN_DEMO_12.md"),
        "EXECUTION_TASK_DEMO_12_01.md": f("execution/EXECUTION_TASK_DEMO_12_01.md"),
        "FIX_12.md": f("execution/feedbacks/FIX_12.md"),
    }


def test_plan_files_find_review_files_the_status_does_not_name(demo: Demo) -> None:
    # An approved achievement with an old FIX beside its APPROVED: the status names only the APPROVED.
    Path(demo.file("execution/feedbacks/FIX_11.md")).write_text("# FIX: Achievement 1.1\n", encoding="utf-8")
    bare = msgspec.structs.replace(demo.status, achievements=[
        msgspec.structs.replace(a, subplan=None, executions=[], fix=None, approved=None)
        for a in demo.status.achievements])
    assert F.plan_files(bare, demo.folder) == {
        "PLAN_DEMO.md": demo.plan,
        "APPROVED_11.md": demo.file("execution/feedbacks/APPROVED_11.md"),
        "FIX_11.md": demo.file("execution/feedbacks/FIX_11.md"),
        "FIX_12.md": demo.file("execution/feedbacks/FIX_12.md"),
    }


def test_path_to_uri_quotes_and_round_trips() -> None:
    path = "/tmp/a b/PLAN_#X.md"
    assert F.path_to_uri(path) == "file:///tmp/a%20b/PLAN_%23X.md"
    assert to_fs_path(F.path_to_uri(path)) == path


# --- code actions -----------------------------------------------------------------------------


def _titles(actions: list[lsp.CodeAction]) -> list[str]:
    return [a.title for a in actions]


def _line_range(line: int) -> lsp.Range:
    return lsp.Range(pos(line, 0), pos(line, 0))


def test_code_actions_on_an_approved_index_line_open_its_files(demo: Demo) -> None:
    got = F.code_actions(demo.status, demo.doc, demo.lines, _line_range(I11), [], "file:///p")
    assert _titles(got) == ["Open SUBPLAN for 1.1", "Open EXECUTION_TASK for 1.1", "Open APPROVED for 1.1"]
    assert got[2].command is not None and got[2].command.command == F.CMD_OPEN
    assert got[2].command.arguments == [demo.file("execution/feedbacks/APPROVED_11.md")]
    assert all(a.kind == F.ACTION_KIND for a in got)


def test_code_actions_on_a_fix_pending_body_header(demo: Demo) -> None:
    got = F.code_actions(demo.status, demo.doc, demo.lines, _line_range(B12), [], "file:///p")
    assert _titles(got) == ["Copy prompt for 1.2", "Run 1.2 with the model", "Open SUBPLAN for 1.2",
                            "Open EXECUTION_TASK for 1.2", "Open FIX for 1.2"]
    cmd = got[0].command
    assert cmd is not None and (cmd.command, cmd.arguments) == (F.CMD_GENERATE, [demo.plan, "1.2"])
    run = got[1].command
    assert run is not None and (run.command, run.arguments) == (F.CMD_RUN, [demo.plan, "1.2"])


def test_code_actions_of_a_blocked_achievement_without_subplan(demo: Demo) -> None:
    # 2.1 waits on 1.2: its prompt and its SUBPLAN can be made, but it is not run yet
    got = F.code_actions(demo.status, demo.doc, demo.lines, _line_range(I21), [], "file:///p")
    assert _titles(got) == ["Copy prompt for 2.1", "Create SUBPLAN for 2.1"]
    c = got[1].command
    assert c is not None and (c.command, c.arguments) == (F.CMD_CREATE_SUBPLAN, [demo.plan, "2.1"])


def test_code_actions_elsewhere_and_over_a_span(demo: Demo) -> None:
    assert F.code_actions(demo.status, demo.doc, demo.lines, _line_range(B12_REF), [], "u") == []
    assert F.code_actions(demo.status, demo.doc, demo.lines, _line_range(TITLE), [], "u") == []
    span = lsp.Range(pos(I11, 0), pos(I12, 3))  # a selection over two index lines: both, once each
    titles = _titles(F.code_actions(demo.status, demo.doc, demo.lines, span, [], "u"))
    assert titles[0] == "Open SUBPLAN for 1.1" and "Copy prompt for 1.2" in titles
    assert len(titles) == len(set(titles))


def _diag(line: int, code: str, source: str = F.SOURCE) -> lsp.Diagnostic:
    return lsp.Diagnostic(range=_line_range(line), message="m", code=code, source=source)


def _apply(lines: list[str], action: lsp.CodeAction, uri: str) -> list[str]:
    assert action.edit is not None and action.edit.changes is not None
    (edit,) = action.edit.changes[uri]
    at = edit.range.start.line
    assert edit.range.start == edit.range.end and edit.range.start.character == 0
    return ("\n".join(lines[:at]) + "\n" + edit.new_text + "\n".join(lines[at:])).split("\n")


def test_quick_fix_adds_a_missing_section_in_the_plans_style(demo: Demo, tmp_path: Path) -> None:
    # 1.3 in the index with no body: the fix adds "**Achievement 1.3**: ..." after 1.2's section
    text = PLAN.replace("- Achievement 1.2: Render Output\n",
                        "- Achievement 1.2: Render Output\n- Achievement 1.3: Ship It\n")
    path = Path(demo.plan)
    path.write_text(text, encoding="utf-8")
    demo.engine.changed([str(path)])
    ref = demo.engine.resolve("@DEMO")
    doc, st = demo.engine.plan_doc(ref), demo.engine.plan_status(ref)
    lines = text.split("\n")
    d = _diag(I12 + 1, "no-body")
    (fix,) = F.code_actions(st, doc, lines, _line_range(TITLE), [d], "file:///p")
    assert fix.title == "Add a section for Achievement 1.3" and fix.kind == lsp.CodeActionKind.QuickFix
    assert fix.diagnostics == [d]
    fixed = _apply(lines, fix, "file:///p")
    at = fixed.index("**Achievement 1.3**: Ship It")
    assert fixed[at + 2] == "**Achievement 2.1**: Polish ✨ Edges"  # before 2.1's section, a blank line between
    assert fixed[at - 1] == ""
    # and the engine agrees: the problem is gone
    path.write_text("\n".join(fixed), encoding="utf-8")
    demo.engine.changed([str(path)])
    assert not [p for p in demo.engine.plan_status(ref).problems if p.code == "no-body"]


def test_quick_fix_adds_a_missing_index_entry(demo: Demo, tmp_path: Path) -> None:
    text = PLAN.replace("Body of 2.1.\n", "Body of 2.1.\n\n**Achievement 2.2**: Extra Work\n\nMore.\n")
    path = Path(demo.plan)
    path.write_text(text, encoding="utf-8")
    demo.engine.changed([str(path)])
    ref = demo.engine.resolve("@DEMO")
    doc, st = demo.engine.plan_doc(ref), demo.engine.plan_status(ref)
    (problem,) = [p for p in st.problems if p.code == "body-not-in-index"]
    assert problem.line is not None
    lines = text.split("\n")
    (fix,) = F.code_actions(st, doc, lines, _line_range(TITLE), [_diag(problem.line, problem.code)], "u")
    fixed = _apply(lines, fix, "u")
    assert fixed[I21] == "- Achievement 2.2: Extra Work"  # right after the last index entry
    path.write_text("\n".join(fixed), encoding="utf-8")
    demo.engine.changed([str(path)])
    assert [a.number for a in demo.engine.plan_status(ref).achievements] == ["1.1", "1.2", "2.1", "2.2"]


def test_no_quick_fix_for_other_sources_or_codes(demo: Demo) -> None:
    diags = [_diag(I11, "no-body", source="markdownlint"), _diag(I11, "stale-handoff")]
    got = F.code_actions(demo.status, demo.doc, demo.lines, _line_range(TITLE), diags, "u")
    assert got == []


def test_only_kinds_keeps_the_kinds_the_client_names(demo: Demo) -> None:
    """context.only as pygls hands it over: lsprotocol's enum for a known kind, a string for perfd's."""
    text = PLAN.replace("## 📋 Achievements\n", "## 📋 Achievements\n\n**Achievement 3.1**: Extra Work\n")
    lines = text.split("\n")
    doc = demo.engine.parse_text(demo.plan, text)
    st = demo.engine.plan_status_with(demo.engine.resolve("@DEMO"), doc)
    (problem,) = [p for p in st.problems if p.code == "body-not-in-index"]
    assert problem.line is not None
    span = lsp.Range(lsp.Position(I11 - 1, 0), lsp.Position(problem.line - 1, 0))
    actions = F.code_actions(st, doc, lines, span, [_diag(problem.line, problem.code)], "u")
    kinds = [a.kind for a in actions]
    assert lsp.CodeActionKind.QuickFix in kinds and F.ACTION_KIND in kinds
    assert F.only_kinds(actions, None) == actions == F.only_kinds(actions, [])
    assert [a.kind for a in F.only_kinds(actions, [lsp.CodeActionKind.QuickFix])] == [lsp.CodeActionKind.QuickFix]
    assert {a.kind for a in F.only_kinds(actions, [F.ACTION_KIND])} == {F.ACTION_KIND}
    assert F.only_kinds(actions, [lsp.CodeActionKind.Refactor]) == []
