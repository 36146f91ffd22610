"""From the achievement headers a plan's scan found to its achievements: index entries, bodies, line ranges.

The second half of parsing a PLAN: perfd.engine.plan_parser scans the lines
and collects Headers; this module puts them together (which body goes with
which index entry, where each body ends, the Time/Actual fields).
"""

from __future__ import annotations

import bisect
import re

import msgspec

from perfd.engine.docs_parser import normalise_status
from perfd.engine.types import Achievement, DoneMark, Problem, Section

_KEY_STRIP_RE = re.compile(r"[^a-z0-9&]+")
_PRIORITY_NUM_RE = re.compile(r"Priority[ \t]+(\d+)\b", re.I)


def section_key(title: str) -> str:
    """`📝 Current Status & Handoff` -> `current status and handoff`."""
    key = _KEY_STRIP_RE.sub(" ", title.lower().replace("&", " and ")).strip()
    return " ".join(key.split())


class Header:
    """An achievement header line the scan found: in the index or a body, with what it says."""

    __slots__ = ("line", "num", "title", "effort", "form", "done", "in_index", "section", "priority")

    def __init__(self, line: int, num: str, title: str, effort: str | None, form: str, done: bool,
                 in_index: bool, section: int, priority: str | None) -> None:
        self.line = line
        self.num = num
        self.title = title
        self.effort = effort
        self.form = form
        self.done = done
        self.in_index = in_index
        self.section = section
        self.priority = priority



def assemble(headers: list[Header], sections: list[Section], n: int, path: str) -> tuple[list[Achievement], list[Problem]]:
    """Index entries plus the body chosen for each, with line ranges and problems."""
    problems: list[Problem] = []
    index = [h for h in headers if h.in_index]
    bodies = [h for h in headers if not h.in_index]

    # Body candidates: those in an "Achievements" section win over the same
    # number mentioned in a header-like line elsewhere (an error-handling
    # section may say `**Achievement 1.3**: Add error handling`).
    def in_ach_section(h: Header) -> bool:
        if h.section < 0:
            return False
        key = sections[h.section].key
        return "achievement" in key and "index" not in key and "tracking" not in key

    chosen: dict[str, Header] = {}
    for h in bodies:
        if in_ach_section(h) and h.num not in chosen:
            chosen[h.num] = h
    if not chosen:
        for h in bodies:
            chosen.setdefault(h.num, h)

    order: list[Header] = []
    seen: dict[str, int] = {}
    if index:
        for h in index:
            if h.num in seen:
                problems.append(Problem("duplicate-achievement",
                                        f"achievement {h.num} is listed twice in the index (first on line {seen[h.num]})",
                                        "error", path, h.line))
                continue
            seen[h.num] = h.line
            order.append(h)
        for num, h in chosen.items():
            if num not in seen:
                problems.append(Problem("body-not-in-index",
                                        f"achievement {num} has a body section but is not in the Achievement Index",
                                        "warning", path, h.line))
    else:
        for h in sorted(chosen.values(), key=lambda h: h.line):
            order.append(h)
            seen[h.num] = h.line
    # Duplicate body headers within the achievements section.
    body_seen: dict[str, int] = {}
    for h in bodies:
        if in_ach_section(h) or not index:
            if h.num in body_seen and chosen.get(h.num) is not h and h.form != "heading":
                problems.append(Problem("duplicate-achievement",
                                        f"achievement {h.num} has a second body header (first on line {body_seen[h.num]})",
                                        "warning", path, h.line))
            body_seen.setdefault(h.num, h.line)

    body_lines = sorted(h.line for h in chosen.values())
    sec_starts = [s.line for s in sections]

    def body_end(start: int) -> int:
        # Bisect, not scan: plans with hundreds of achievements stay linear.
        end = n
        si = bisect.bisect_right(sec_starts, start) - 1
        if si >= 0 and sections[si].line <= start <= sections[si].end_line:
            end = sections[si].end_line
        bi = bisect.bisect_right(body_lines, start)
        if bi < len(body_lines):
            end = min(end, body_lines[bi] - 1)
        return end

    result: list[Achievement] = []
    for h in order:
        body = chosen.get(h.num)
        if index and body is None:
            problems.append(Problem("no-body", f"achievement {h.num} has no body section", "info", path, h.line))
        elif index and body is not None and body.title and h.title and \
                titles_differ(body.title, h.title):
            problems.append(Problem("title-mismatch",
                                    f"achievement {h.num} is '{h.title}' in the index but '{body.title}' in its body",
                                    "info", path, body.line))
        result.append(Achievement(
            number=h.num,
            title=h.title or (body.title if body else ""),
            priority=h.priority,
            index_line=h.line if h.in_index else None,
            body_line=body.line if body else None,
            body_end=body_end(body.line) if body else None,
            body_title=body.title if body else None,
            effort=h.effort or (body.effort if body else None),
            marked_done=h.done or bool(body and body.done),
        ))
    return result, problems


def titles_differ(a: str, b: str) -> bool:
    if a == b:
        return False
    ka, kb = section_key(a), section_key(b)
    return ka[:40] != kb[:40] and not ka.startswith(kb) and not kb.startswith(ka)


def attach_time_fields(achievements: list[Achievement], fields: list[tuple[int, str, str]]) -> None:
    """`**Time**:` / `**Actual**:` lines go to the achievement whose body holds them."""
    if not fields:
        return
    spans = sorted((a.body_line, a.body_end, idx) for idx, a in enumerate(achievements)
                   if a.body_line is not None and a.body_end is not None)
    starts = [sp[0] for sp in spans]
    found: dict[int, dict[str, str]] = {}
    for line, key, value in fields:
        k = bisect.bisect_right(starts, line) - 1
        if k >= 0 and line <= spans[k][1]:
            found.setdefault(spans[k][2], {}).setdefault(key, value)
    for idx, kv in found.items():
        achievements[idx] = msgspec.structs.replace(achievements[idx], time=kv.get("time"), actual=kv.get("actual"))


def body_marks(achievements: list[Achievement], fields: list[tuple[int, str, str]]) -> list[DoneMark]:
    """Done marks from an achievement's own body: `**Status**: ✅ Complete`, `**Completed**: 2025-11-10`.

    A date says it is done only when it is one (a digit, no `YYYY` placeholder); a status only when it
    says the work is complete (normalise_status, as for a SUBPLAN's).
    """
    wanted = [f for f in fields if f[1] == "status" or f[1] == "completed"]
    if not wanted:
        return []
    spans = sorted((a.body_line, a.body_end, a.number) for a in achievements
                   if a.body_line is not None and a.body_end is not None)
    starts = [sp[0] for sp in spans]
    out: list[DoneMark] = []
    for line, key, value in wanted:
        k = bisect.bisect_right(starts, line) - 1
        if k < 0 or line > spans[k][1]:
            continue
        v = value.strip()
        if key == "completed":
            done = any(ch.isdigit() for ch in v) and "YYYY" not in v.upper() and not v.startswith("[")
        else:
            done = not v.startswith("[") and normalise_status(v) == "complete"
        if done:
            out.append(DoneMark(spans[k][2], "date" if key == "completed" else "status", line))
    return out


def priority_marks(achievements: list[Achievement], done: list[tuple[str, int]]) -> list[DoneMark]:
    """`✅ Priority 0: 3/3 achievements` marks each achievement of that priority done.

    An achievement is of priority P when the bold priority line it is listed under says `Priority P`,
    or, in a plan with no such lines, when its number starts with `P.`.
    """
    out: list[DoneMark] = []
    grouped = any(a.priority for a in achievements)
    for p, line in done:
        for a in achievements:
            if grouped:
                pm = _PRIORITY_NUM_RE.match(a.priority or "")
                mine = pm is not None and pm.group(1) == p
            else:
                mine = a.number.split(".", 1)[0] == p and "." in a.number
            if mine:
                out.append(DoneMark(a.number, "priority", line))
    return out
