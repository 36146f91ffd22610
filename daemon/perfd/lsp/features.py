"""LSP features as plain functions: engine results in, lsprotocol types out.

The pygls handlers in perfd.lsp.handlers only fetch the document and call
these, so tests can call them directly. Engine line numbers are 1-based and
inclusive; LSP's are 0-based, hence the `- 1`s.

The three answers that grow with the plan (document symbols, code lenses,
folding ranges) are built as their JSON shapes instead (the TypedDicts
below): on a 10,000-line plan, constructing and unstructuring the lsprotocol
objects alone took 10-15 ms, against about 1 ms for the dicts, which the
session's protocol sends without passing them through cattrs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import NotRequired, TypedDict

from lsprotocol import types as lsp

from perfd.engine.plan_parser import nn_of
from perfd.engine.workspace import display_path
from perfd.engine.types import AchievementStatus, PlanDoc, PlanStatus, Problem
from perfd.lsp.positions import UTF16, Units

SOURCE = "perfd"

STATE_LABEL = {
    "complete": "✅ approved",
    "fix_pending": "🔧 fix pending",
    "no_subplan": "📄 no SUBPLAN yet",
    "subplan_complete": "⏳ awaiting review",
    "subplan_no_execution": "📝 no EXECUTION yet",
    "active_execution": "▶ active execution",
    "create_next_execution": "➕ next EXECUTION to create",
    "subplan_all_executed": "🔍 ready for review",
    "plan_complete": "✅ plan complete",
}

_ACH_REF_RE = re.compile(r"Achievement[ \t]+(\d+\.\d+(?:\.\d+)?)")
_FILE_REF_RE = re.compile(r"\b((?:SUBPLAN|EXECUTION_TASK|APPROVED|FIX|PLAN)_[A-Za-z0-9_.\-]*?\.md)\b")
_SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
             "info": lsp.DiagnosticSeverity.Information}


class PositionJSON(TypedDict):
    line: int
    character: int


class RangeJSON(TypedDict):
    start: PositionJSON
    end: PositionJSON


class SymbolJSON(TypedDict):
    name: str
    kind: int
    range: RangeJSON
    selectionRange: RangeJSON
    detail: NotRequired[str]
    children: NotRequired[list[SymbolJSON]]


class CommandJSON(TypedDict):
    title: str
    command: str
    arguments: list[str]


class CodeLensJSON(TypedDict):
    range: RangeJSON
    command: CommandJSON


class FoldingRangeJSON(TypedDict):
    startLine: int
    endLine: int
    kind: str


def _span(start: int, end: int, lines: list[str], units: Units) -> RangeJSON:
    """0-based lines `start`..`end` whole, as JSON."""
    end_char = units.width(lines[end]) if end < len(lines) else 0
    return {"start": {"line": start, "character": 0}, "end": {"line": end, "character": end_char}}


def _range(line: int) -> lsp.Range:
    """The start of 1-based `line` of another file, as an empty LSP range (a jump target)."""
    start = max(0, line - 1)
    return lsp.Range(lsp.Position(start, 0), lsp.Position(start, 0))


def _line_range(line: int, lines: list[str], units: Units) -> lsp.Range:
    i = max(0, line - 1)
    text = lines[i] if i < len(lines) else ""
    return lsp.Range(lsp.Position(i, 0), lsp.Position(i, units.width(text)))


_NAMESPACE, _PACKAGE, _CLASS, _EVENT = (int(k) for k in (lsp.SymbolKind.Namespace, lsp.SymbolKind.Package,
                                                          lsp.SymbolKind.Class, lsp.SymbolKind.Event))


def document_symbols(doc: PlanDoc, lines: list[str], *, units: Units = UTF16) -> list[SymbolJSON]:
    """Sections at the top; under the index, priority groups then achievements; bodies under their section."""
    out: list[SymbolJSON] = []
    for sec in doc.sections:
        children: list[SymbolJSON] = []
        if "index" in sec.key and "achievement" in sec.key:
            groups: dict[str | None, list[SymbolJSON]] = {}
            for a in doc.achievements:
                if a.index_line is None or not (sec.line <= a.index_line <= sec.end_line):
                    continue
                r = _span(a.index_line - 1, a.index_line - 1, lines, units)
                sym: SymbolJSON = {"name": f"{a.number} {a.title}", "kind": _EVENT, "range": r, "selectionRange": r}
                if a.effort:
                    sym["detail"] = a.effort
                groups.setdefault(a.priority, []).append(sym)
            for name, line in doc.priorities:
                if not (sec.line <= line <= sec.end_line):
                    continue
                kids = groups.pop(name, [])
                end = kids[-1]["range"]["end"]["line"] if kids else line - 1
                group: SymbolJSON = {"name": name, "kind": _PACKAGE,
                                     "range": _span(line - 1, max(end, line - 1), lines, units),
                                     "selectionRange": _span(line - 1, line - 1, lines, units)}
                if kids:
                    group["children"] = kids
                children.append(group)
            for kids in groups.values():
                children.extend(kids)
        else:
            for a in doc.achievements:
                if a.body_line is not None and a.body_end is not None and sec.line <= a.body_line <= sec.end_line:
                    sym = {"name": f"Achievement {a.number}: {a.body_title or a.title}", "kind": _CLASS,
                           "range": _span(a.body_line - 1, max(a.body_end, a.body_line) - 1, lines, units),
                           "selectionRange": _span(a.body_line - 1, a.body_line - 1, lines, units)}
                    detail = a.time or a.effort
                    if detail:
                        sym["detail"] = detail
                    children.append(sym)
        top: SymbolJSON = {"name": sec.title, "kind": _NAMESPACE,
                           "range": _span(sec.line - 1, max(sec.end_line, sec.line) - 1, lines, units),
                           "selectionRange": _span(sec.line - 1, sec.line - 1, lines, units)}
        if children:
            top["children"] = children
        out.append(top)
    return out


def diagnostics(problems: list[Problem], path: str, lines: list[str], *,
                units: Units = UTF16) -> list[lsp.Diagnostic]:
    """Problems about `path` (or about no file in particular, pinned to line 1)."""
    real = os.path.realpath(path)
    out: list[lsp.Diagnostic] = []
    seen: set[tuple[str, int | None, str]] = set()
    mine: dict[str, bool] = {}  # realpath is slow: once per distinct path, not per problem
    for p in problems:
        if p.path is not None:
            same = mine.get(p.path)
            if same is None:
                same = mine[p.path] = p.path == path or os.path.realpath(p.path) == real
            if not same:
                continue
        key = (p.code, p.line, p.message)
        if key in seen:
            continue
        seen.add(key)
        r = _line_range(p.line or 1, lines, units)
        out.append(lsp.Diagnostic(range=r, message=p.message, severity=_SEVERITY.get(p.severity), code=p.code,
                                  source=SOURCE))
    return out


def related_diagnostics(status: PlanStatus) -> dict[str, list[Problem]]:
    """Problems about other files of the plan (review files, SUBPLANs, parallel.json), by path."""
    out: dict[str, list[Problem]] = {}
    plan_real = os.path.realpath(status.path)
    other: dict[str, bool] = {}  # realpath is slow: once per distinct path
    for p in status.problems:
        if not p.path or p.path == status.path:
            continue
        is_other = other.get(p.path)
        if is_other is None:
            is_other = other[p.path] = os.path.realpath(p.path) != plan_real
        if is_other:
            out.setdefault(p.path, []).append(p)
    return out


def code_lenses(status: PlanStatus, doc: PlanDoc, lines: list[str]) -> list[CodeLensJSON]:
    out: list[CodeLensJSON] = []
    title_line = next((i for i, ln in enumerate(lines[:50]) if ln.startswith("# ")), 0)
    r0: RangeJSON = {"start": {"line": title_line, "character": 0}, "end": {"line": title_line, "character": 0}}
    if status.next:
        out.append({"range": r0, "command": {"title": f"Next: {status.next} — Generate", "command": "perfd.generateNext",
                                             "arguments": [status.path]}})
    else:
        out.append({"range": r0, "command": {
            "title": f"{STATE_LABEL.get(status.state, status.state)} ({status.done}/{status.total})",
            "command": "perfd.status", "arguments": [status.path]}})
    for a in status.achievements:
        label = STATE_LABEL.get(a.state, a.state) + ("" if a.ready else " (blocked)")
        for line in (a.index_line, a.body_line if a.body_line != a.index_line else None):
            if line is None:
                continue
            p: PositionJSON = {"line": line - 1, "character": 0}
            r: RangeJSON = {"start": p, "end": p}
            out.append({"range": r, "command": {"title": label, "command": "perfd.status",
                                                "arguments": [status.path, a.number]}})
            if a.state != "complete":
                out.append({"range": r, "command": {"title": "Generate prompt", "command": "perfd.generate",
                                                    "arguments": [status.path, a.number]}})
    return out


def _ach_at(status: PlanStatus, line: int) -> AchievementStatus | None:
    """The achievement whose index line or body holds 1-based `line`."""
    for a in status.achievements:
        if a.index_line == line:
            return a
        if a.body_line is not None and a.body_end is not None and a.body_line <= line <= a.body_end:
            return a
    return None


def _ref_at(lines: list[str], pos: lsp.Position, units: Units) -> str | None:
    """The achievement number named by "Achievement N.N" under the cursor."""
    if pos.line >= len(lines):
        return None
    at = units.index(lines[pos.line], pos.character)
    for m in _ACH_REF_RE.finditer(lines[pos.line]):
        if m.start() <= at <= m.end():
            return m.group(1)
    return None


def hover(status: PlanStatus, lines: list[str], pos: lsp.Position, root: str,
          doc: PlanDoc | None = None, *, units: Units = UTF16) -> lsp.Hover | None:
    num = _ref_at(lines, pos, units)
    a = next((x for x in status.achievements if x.number == num), None) if num else _ach_at(status, pos.line + 1)
    if a is None:
        return None

    def rel(p: str | None) -> str:
        return display_path(root, p) if p else "—"

    parts = [f"**Achievement {a.number}**: {a.title}", "", f"State: {STATE_LABEL.get(a.state, a.state)}"]
    if a.priority:
        parts.append(f"Priority: {a.priority}")
    if a.dependencies:
        parts.append("Depends on: " + ", ".join(a.dependencies) + ("" if a.ready else " (not all complete)"))
    parts.append(f"SUBPLAN: {rel(a.subplan)}")
    if a.executions:
        parts.append("EXECUTION_TASKs: " + ", ".join(rel(e) for e in a.executions)
                     + (f" ({a.planned_executions} planned)" if a.planned_executions else ""))
    if a.fix:
        parts.append(f"FIX: {rel(a.fix)}")
    if a.approved:
        parts.append(f"APPROVED: {rel(a.approved)}")
    parsed = next((x for x in doc.achievements if x.number == a.number), None) if doc is not None else None
    if parsed is not None:
        for label, value in (("Effort", parsed.effort), ("Time", parsed.time), ("Actual", parsed.actual)):
            if value:
                parts.append(f"{label}: {value}")
    if a.body_line:
        parts.append(f"Section: lines {a.body_line}-{a.body_end}")
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="  \n".join(parts)))


def definition(status: PlanStatus, lines: list[str], pos: lsp.Position, doc_path: str,
               files: dict[str, str], *, units: Units = UTF16) -> lsp.Location | None:
    """From "Achievement N.N" to its body section; from a file name to the file."""
    num = _ref_at(lines, pos, units)
    if num is not None:
        a = next((x for x in status.achievements if x.number == num), None)
        if a is None:
            return None
        line = a.body_line or a.index_line
        if line is None:
            return None
        return lsp.Location(uri=path_to_uri(status.path), range=_range(line))
    if pos.line < len(lines):
        at = units.index(lines[pos.line], pos.character)
        for m in _FILE_REF_RE.finditer(lines[pos.line]):
            if m.start() <= at <= m.end():
                target = files.get(m.group(1))
                if target:
                    return lsp.Location(uri=path_to_uri(target), range=_range(1))
    return None


def document_links(lines: list[str], files: dict[str, str], *, units: Units = UTF16) -> list[lsp.DocumentLink]:
    out = []
    for i, line in enumerate(lines):
        if ".md" not in line:
            continue
        for m in _FILE_REF_RE.finditer(line):
            target = files.get(m.group(1))
            if target:
                start, end = units.column(line, m.start()), units.column(line, m.end())
                out.append(lsp.DocumentLink(range=lsp.Range(lsp.Position(i, start), lsp.Position(i, end)),
                                            target=path_to_uri(target)))
    return out


def folding_ranges(doc: PlanDoc) -> list[FoldingRangeJSON]:
    region = lsp.FoldingRangeKind.Region.value
    out: list[FoldingRangeJSON] = [{"startLine": s.line - 1, "endLine": s.end_line - 1, "kind": region}
                                   for s in doc.sections if s.end_line > s.line]
    for a in doc.achievements:
        if a.body_line is not None and a.body_end is not None and a.body_end > a.body_line:
            out.append({"startLine": a.body_line - 1, "endLine": a.body_end - 1, "kind": region})
    return out


def completions(status: PlanStatus | None, plan_names: list[str], lines: list[str],
                pos: lsp.Position, *, units: Units = UTF16) -> list[lsp.CompletionItem]:
    """Achievement numbers after "Achievement ", plan names after "@"."""
    if pos.line >= len(lines):
        return []
    line = lines[pos.line]
    before = line[: units.index(line, pos.character)]
    m = re.search(r"@([A-Za-z0-9_.\-]*)$", before)
    if m:
        return [lsp.CompletionItem(label="@" + n, kind=lsp.CompletionItemKind.Module, insert_text=n,
                                   filter_text=n) for n in plan_names if n.lower().startswith(m.group(1).lower())]
    m = re.search(r"Achievements?[ \t]+([\d.]*)$", before)
    if m and status is not None:
        return [lsp.CompletionItem(label=a.number, kind=lsp.CompletionItemKind.EnumMember,
                                   detail=f"{a.title} — {STATE_LABEL.get(a.state, a.state)}")
                for a in status.achievements if a.number.startswith(m.group(1))]
    return []


def workspace_symbols(statuses: list[PlanStatus], query: str) -> list[lsp.WorkspaceSymbol]:
    q = query.lower()
    out = []
    for st in statuses:
        for a in st.achievements:
            name = f"{a.number} {a.title}"
            if q and q not in name.lower() and q not in st.plan.lower():
                continue
            line = a.body_line or a.index_line or 1
            out.append(lsp.WorkspaceSymbol(location=lsp.Location(uri=path_to_uri(st.path), range=_range(line)),
                                           name=name, kind=lsp.SymbolKind.Event, container_name=st.plan))
    return out


def plan_files(status: PlanStatus, folder: str) -> dict[str, str]:
    """File name -> path for every file of the plan a link or definition may name."""
    out: dict[str, str] = {os.path.basename(status.path): status.path}
    feedbacks = os.path.join(folder, "execution", "feedbacks")
    for a in status.achievements:
        for p in [a.subplan, a.fix, a.approved, *a.executions]:
            if p:
                out[os.path.basename(p)] = p
        nn = nn_of(a.number)
        for name in (f"APPROVED_{nn}.md", f"FIX_{nn}.md"):
            p = os.path.join(feedbacks, name)
            if name not in out and os.path.exists(p):
                out[name] = p
    return out


def path_to_uri(path: str) -> str:
    from pygls.uris import from_fs_path

    return from_fs_path(path) or "file://" + path


# --- code actions ------------------------------------------------------------------

# Commands the actions carry: executed by the server (workspace/executeCommand), so any LSP
# client can run them; VS Code's extension points the first three at its own presenters.
CMD_GENERATE = "perfd.generate"
CMD_CREATE_SUBPLAN = "perfd.createSubplan"
CMD_RUN = "perfd.run"
CMD_OPEN = "perfd.openFile"
ACTION_KIND = "perfd"  # not a quick fix or a refactor: the workflow's next steps, listed under their own kind

_BODY_HEAD_RE = re.compile(r"Achievement[ \t]+(\d+(?:\.\d+)+)\**[ \t]*[:\-–—]?[ \t]*(.*?)[ \t]*$")


def _command_action(title: str, command: str, arguments: list[str]) -> lsp.CodeAction:
    return lsp.CodeAction(title=title, kind=ACTION_KIND,
                          command=lsp.Command(title=title, command=command, arguments=list(arguments)))


def achievement_on_line(status: PlanStatus, line: int) -> AchievementStatus | None:
    """The achievement whose index entry or body header is on 1-based `line`."""
    for a in status.achievements:
        if a.index_line == line or a.body_line == line:
            return a
    return None


def achievement_actions(status: PlanStatus, a: AchievementStatus) -> list[lsp.CodeAction]:
    """What can be done for one achievement, in the order a person takes the steps."""
    out: list[lsp.CodeAction] = []
    n = a.number
    if a.state != "complete":
        out.append(_command_action(f"Copy prompt for {n}", CMD_GENERATE, [status.path, n]))
    if a.state == "no_subplan" and not a.subplan:
        out.append(_command_action(f"Create SUBPLAN for {n}", CMD_CREATE_SUBPLAN, [status.path, n]))
    if a.state not in ("complete", "subplan_complete") and a.ready:
        out.append(_command_action(f"Run {n} with the model", CMD_RUN, [status.path, n]))
    execution = a.active_execution or (a.executions[-1] if a.executions else None)
    for label, path in (("SUBPLAN", a.subplan), ("EXECUTION_TASK", execution), ("FIX", a.fix),
                        ("APPROVED", a.approved)):
        if path:
            out.append(_command_action(f"Open {label} for {n}", CMD_OPEN, [path]))
    return out


def code_actions(status: PlanStatus, doc: PlanDoc, lines: list[str], rng: lsp.Range,
                 diagnostics: Sequence[lsp.Diagnostic], uri: str) -> list[lsp.CodeAction]:
    """The actions for the achievement under the cursor, then quick fixes for the diagnostics given."""
    out: list[lsp.CodeAction] = []
    seen: set[str] = set()
    for line in range(rng.start.line, rng.end.line + 1):
        a = achievement_on_line(status, line + 1)
        if a is not None and a.number not in seen:
            seen.add(a.number)
            out.extend(achievement_actions(status, a))
    for d in diagnostics:
        if d.source != SOURCE:
            continue
        fix = quick_fix(status, doc, lines, d, uri)
        if fix is not None:
            out.append(fix)
    return out


def only_kinds(actions: list[lsp.CodeAction],
               only: Sequence[lsp.CodeActionKind | str] | None) -> list[lsp.CodeAction]:
    """The actions of the kinds the client asked for (its context's `only`); all when it named none."""
    if not only:
        return actions
    return [a for a in actions if any(str(a.kind or "").startswith(str(k)) for k in only)]


def quick_fix(status: PlanStatus, doc: PlanDoc, lines: list[str], d: lsp.Diagnostic,
              uri: str) -> lsp.CodeAction | None:
    """A mechanical fix for one of perfd's diagnostics, or None when the fix needs a person."""
    line = d.range.start.line + 1
    if d.code == "no-body":  # an index entry without a section: add the section's header
        a = next((x for x in doc.achievements if x.index_line == line), None)
        if a is None:
            return None
        at, text = _new_body_header(doc, lines, a.number, a.title)
        title = f"Add a section for Achievement {a.number}"
    elif d.code == "body-not-in-index":  # a section not in the index: add its index entry
        m = _BODY_HEAD_RE.search(lines[line - 1]) if 0 < line <= len(lines) else None
        last = max((x.index_line for x in doc.achievements if x.index_line is not None), default=None)
        if m is None or last is None:
            return None
        number, name = m.group(1), m.group(2).strip("* ")
        at, text = last, f"- Achievement {number}: {name}\n" if name else f"- Achievement {number}\n"
        title = f"Add Achievement {number} to the index"
    else:
        return None
    pos = lsp.Position(at, 0)
    edit = lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(range=lsp.Range(pos, pos), new_text=text)]})
    return lsp.CodeAction(title=title, kind=lsp.CodeActionKind.QuickFix, diagnostics=[d], edit=edit,
                          is_preferred=True)


def _new_body_header(doc: PlanDoc, lines: list[str], number: str, title: str) -> tuple[int, str]:
    """(0-based line to insert at, text): a body header in the style of the plan's others, after the
    section of the achievement before it (else after the last section, else at the end)."""
    bodies = [x for x in doc.achievements if x.body_line is not None and x.body_end is not None]
    style = lines[bodies[0].body_line - 1] if bodies and bodies[0].body_line is not None else ""
    hashes = re.match(r"(#{2,6})[ \t]", style)
    header = (f"{hashes.group(1)} Achievement {number}: {title}" if hashes
              else f"**Achievement {number}**: {title}")
    before = [x for x in bodies if _key(x.number) < _key(number)]
    anchor = max(before, key=lambda x: _key(x.number)) if before else (bodies[-1] if bodies else None)
    if anchor is None or anchor.body_end is None:
        at = len(lines)
        return at, ("\n" if lines and lines[-1].strip() else "") + header + "\n\n"
    at = min(anchor.body_end, len(lines))
    blank_before = at > 0 and lines[at - 1].strip() != ""
    return at, ("\n" if blank_before else "") + header + "\n\n"


def _key(number: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in number.split("."))
