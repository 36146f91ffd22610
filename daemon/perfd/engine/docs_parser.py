"""Parse SUBPLAN, EXECUTION_TASK and review (APPROVED/FIX) files, and parallel.json.

All parsers are total: they return a document plus problems, never raise.
"""

from __future__ import annotations

import bisect
import functools
import re
from typing import Literal

import msgspec

from perfd.engine.text import MAX_LINE, decode
from perfd.engine.types import FeedbackDoc, ParallelAchievement, ParallelGraph, Problem, WorkDoc, WorkStatus

# `**Achievement**: 3.1`, also `**Achievement:** 3.1` and `**Achievement**: Achievement 3.1 - Title`.
_ACH_META_RE = re.compile(
    r"^\*\*Achievement(?:\*\*:|:\*\*)[ \t]*(?:Achievement[ \t]+|#)?(?P<v>\d+\.\d+(?:\.\d+)?)(?![\d.]*\d)", re.M
)
# `**Achievement Addressed**: Achievement 1.2 (Title)`: a SUBPLAN numbered in creation order names its
# achievement so; it wins over the file's number and over the title.
_ADDRESSED_RE = re.compile(
    r"^\*\*Achievements?[ \t]+Addressed(?:\*\*:|:\*\*)[ \t]*(?:\*\*)?(?:Achievement[ \t]+|#)?"
    r"(?P<v>\d+\.\d+(?:\.\d+)?)(?![\d.]*\d)", re.M | re.I
)
_STATUS_RE = re.compile(r"^\*\*Status(?:\*\*:|:\*\*)[ \t]*(?P<v>[^\n]*?)[ \t]*$", re.M)
_TITLE_ACH_RE = re.compile(r"Achievement[ \t]+(?P<v>\d+\.\d+(?:\.\d+)?)")
# A row of the table under the `## 🔄 Active EXECUTION_TASKs` heading: `| 01_01 |`,
# or the execution named in full as real SUBPLANs do (`| EXECUTION_TASK_<F>_22_01 |`).
_ROW_RE = re.compile(
    r"^\|[ \t]*[`*]*(?:EXECUTION_TASK_\S*?_)?(?P<id>\d{2,4}_\d{2,3})(?:\.md)?[`*]*[ \t]*\|", re.M
)
_ACTIVE_HEAD_RE = re.compile(r"^(?P<h>#{2,6})[ \t][^\n]*Active EXECUTION", re.M)
_HEADING_RE = re.compile(r"^#{1,6}[ \t]", re.M)
_ITEM_RE = re.compile(r"^\d+\.[ \t]+", re.M)
_FIX_HEAD_RE = re.compile(r"^(#{2,4})[ \t]+([^\n]*)$", re.M)

# What a status says, from its words: complete only when the work is
# complete, not when a design is ("Design Complete, Ready for Execution").
_COMPLETE_WORDS = re.compile(r"\b(?:complete|completed|done|finished|approved)\b", re.I)
_NOT_DONE_WORDS = re.compile(
    r"\b(?:design[ \t]+complete|ready|incomplete|not[ \t]+(?:yet[ \t]+)?complete|in[ \t]+progress|pending|partial\w*|"
    r"not[ \t]+started|planning|design[ \t]+phase|fix[ \t]+required|needs[ \t]+fix|executing|todo|blocked)\b",
    re.I,
)
_IN_PROGRESS_WORDS = re.compile(
    r"\b(?:in[ \t]+progress|executing|active|continu\w*|fix[ \t]+required|needs[ \t]+fix|incomplete|blocked|"
    r"started|review)\b|🔄|🎯[ \t]*executing",
    re.I,
)
_NOT_STARTED_PHRASE = re.compile(r"\bnot[ \t]+(?:yet[ \t]+)?started\b", re.I)
_NOT_STARTED_WORDS = re.compile(
    r"\b(?:not[ \t]+started|pending|planning|design|ready|todo|draft|planned)\b", re.I
)
_HEAD = 6000  # metadata sits at the top; templates later in a file repeat "**Status**:"
# A template's placeholder is not a status: `**Status**: [In Progress / Complete]`, `<status>`, `{status}`.
_PLACEHOLDER_RE = re.compile(r"^(?:\*\*)?[ \t]*(?:\[[^\]]*\]|<[^>]*>|\{[^}]*\})[ \t]*(?:\*\*)?$")


@functools.lru_cache(maxsize=1024)  # pure, and the same few statuses recur across thousands of files
def normalise_status(text: str) -> WorkStatus:
    """complete / in_progress / not_started from a free-text status."""
    if not text.strip():
        return "not_started"
    if _COMPLETE_WORDS.search(text) and not _NOT_DONE_WORDS.search(text):
        return "complete"
    if _NOT_STARTED_PHRASE.search(text):
        return "not_started"  # before the in-progress words: "started" is one of them
    if _NOT_STARTED_WORDS.search(text) and not _IN_PROGRESS_WORDS.search(text):
        return "not_started"
    if _NOT_STARTED_WORDS.search(text) and re.search(r"\bready\b", text, re.I):
        return "not_started"
    return "in_progress"


def _title(text: str) -> str:
    for line in text[:2000].split("\n"):
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def parse_work(data: bytes, path: str, kind: Literal["subplan", "execution"]) -> WorkDoc:
    text, problems = decode(data, path)
    head = text[:_HEAD]
    title = _title(head)
    achievement: str | None = None
    am = _ADDRESSED_RE.search(head) if "ddressed" in head or "DDRESSED" in head else None
    m = am or _ACH_META_RE.search(head)
    if m:
        achievement = m.group("v")
    else:
        tm = _TITLE_ACH_RE.search(title)
        if tm:
            achievement = tm.group("v")
    status_text = ""
    status_line: int | None = None
    sm = _STATUS_RE.search(head)
    if sm and len(sm.group("v")) <= MAX_LINE and not _PLACEHOLDER_RE.match(sm.group("v").strip()):
        status_text = sm.group("v").strip()
        status_line = head.count("\n", 0, sm.start()) + 1
    if kind == "execution":
        # The first status line is often the one written at the start ("Starting Execution"); a
        # later real one (a status footer) or a completion section says where the work stands.
        status_text, status_line = _last_status(text, status_text, status_line)
    if status_line is None:
        problems.append(Problem("no-status", "no `**Status**:` line near the top", "info", path))
    planned: list[str] = []
    if kind == "subplan":
        # The section's heading, not the first mention ("- Active EXECUTION_TASKs (if any)").
        hm = _ACTIVE_HEAD_RE.search(text)
        if hm:
            level = len(hm.group("h"))
            end = len(text)
            for nm in _HEADING_RE.finditer(text, hm.end()):
                if len(nm.group(0).rstrip()) <= level:
                    end = nm.start()
                    break
            planned = list(dict.fromkeys(r.group("id") for r in _ROW_RE.finditer(text, hm.end(), end)))
    return WorkDoc(
        path=path,
        kind=kind,
        title=title,
        achievement=achievement,
        status=normalise_status(status_text),
        status_text=status_text,
        status_line=status_line,
        planned_executions=planned,
        problems=problems,
    )


# What _last_status looks for in an EXECUTION_TASK: fence lines, status lines, and later evidence that it
# is finished: a completion date (`**Completed**: 2025-11-14`) or a heading that says so
# (`## ✅ Execution Complete`; not `## ✅ Completion Checklist`). Each pattern starts with a literal, which
# the regex engine finds fast: a `^`-anchored one is tried at every character (ten times slower).
_ANY_STATUS_RE = re.compile(r"\*\*Status(?:\*\*:|:\*\*)[ \t]*(?P<v>[^\n]*?)[ \t]*$", re.M)
_COMPLETED_RE = re.compile(
    r"\*\*(?:Completed|Completion[ \t]+Date|Date[ \t]+Completed|Finished)(?:\*\*:|:\*\*)[ \t]*(?P<v>[^\n]*)$",
    re.M | re.I)
_DONE_HEADING_RE = re.compile(
    r"\n(?P<h>#{1,6}[ \t][^\n]*?\b(?:complete|completed|done)\b[ \t]*[.!]?[ \t]*(?:✅)?[ \t]*)$", re.M | re.I)


def _fence_lines(text: str) -> list[int]:
    """Offsets of the lines that open or close a fenced block (str.find: fences are few, lines many)."""
    out: list[int] = []
    for mark in ("```", "~~~"):
        i = text.find(mark)
        while i >= 0:
            start = text.rfind("\n", 0, i) + 1
            if not text[start:i].strip(" \t"):
                out.append(start)
            end = text.find("\n", i)
            if end < 0:
                break
            i = text.find(mark, end)
    out.sort()
    return out


def _last_status(text: str, status_text: str, status_line: int | None) -> tuple[str, int | None]:
    """An EXECUTION_TASK's status: its last real `**Status**:` line, or a completion section after it.

    Only statuses of work begun or done count once the first is read: a "Ready to Execute" after
    a "✅ Complete" is a footer copied from a template (work once started is not unstarted). Lines
    in fenced blocks (a template shown as an example) say nothing.
    """
    found: list[tuple[int, str]] = []  # (offset, status text) of each piece of evidence of progress
    # One status line that the head gave already says nothing new (a count is cheaper than a search).
    lines = _ANY_STATUS_RE.finditer(text) if text.count("**Status") > 1 or status_line is None else ()
    for m in lines:
        at = m.start()
        v = m.group("v").strip()
        if (at == 0 or text[at - 1] == "\n") and v and len(v) <= MAX_LINE and not _PLACEHOLDER_RE.match(v) \
                and normalise_status(v) != "not_started":
            found.append((at, v))
    if "omplet" in text or "inished" in text or "OMPLET" in text:
        for m in _COMPLETED_RE.finditer(text):
            at = m.start()
            v = m.group("v").strip()
            if (at == 0 or text[at - 1] == "\n") and any(ch.isdigit() for ch in v) \
                    and not _PLACEHOLDER_RE.match(v) and "YYYY" not in v.upper():
                found.append((at, "✅ Complete (" + v + ")"))
        for m in _DONE_HEADING_RE.finditer(text) if "✅" in text or "COMPLETE" in text or "DONE" in text else ():
            h = m.group("h").lstrip("#").strip()
            said = "✅" in h or h.rstrip(" .!✅").endswith(("COMPLETE", "COMPLETED", "DONE"))
            if said and normalise_status(h) == "complete":
                found.append((m.start() + 1, h))
    if not found:
        return status_text, status_line
    first = min((i for i in (text.find("```"), text.find("~~~")) if i >= 0), default=len(text))
    # Evidence before the first fence is outside every fence (the status at the top, most often).
    fences = _fence_lines(text) if any(at > first for at, _v in found) else []
    best: tuple[int, str] | None = None
    for at, v in sorted(found):
        if bisect.bisect_right(fences, at) % 2 == 0:  # an even number of fence lines before it: outside
            best = (at, v)
    if best is None:
        return status_text, status_line
    return best[1], text.count("\n", 0, best[0]) + 1


# A fix prompt quotes the review; this bounds what one review can put in it.
_QUOTE_LIMIT = 6000


def _items(block: str) -> list[str]:
    block = block.strip()
    if not block:
        return []
    starts = [m.start() for m in _ITEM_RE.finditer(block)]
    if not starts:
        return [block[:_QUOTE_LIMIT]]
    if starts[0] != 0:
        starts.insert(0, 0)
    out = []
    for a, b in zip(starts, starts[1:] + [len(block)]):
        item = block[a:b].strip()
        if item:
            out.append(item)
    return out


def parse_feedback(data: bytes, path: str, kind: Literal["approved", "fix"]) -> FeedbackDoc:
    text, problems = decode(data, path)
    title = _title(text)
    tm = _TITLE_ACH_RE.search(title)
    achievement = tm.group("v") if tm else None
    critical: list[str] = []
    minor: list[str] = []
    if kind == "fix":
        # Sections named "Critical Issues" / "Minor Issues" at any heading level.
        heads = [(m.start(), m.end(), len(m.group(1)), m.group(2).lower()) for m in _FIX_HEAD_RE.finditer(text)]
        # A section ends at the next heading of its level or higher: one pass
        # from the end, remembering the nearest heading of each level (2-4).
        stops = [len(text)] * len(heads)
        nearest = {2: len(text), 3: len(text), 4: len(text)}
        for idx in range(len(heads) - 1, -1, -1):
            start, _end, level, _name = heads[idx]
            stops[idx] = min(nearest[lv] for lv in range(2, level + 1))
            nearest[level] = start
        for idx, (_start, end, _level, name) in enumerate(heads):
            if "critical" not in name and "minor" not in name:
                continue
            items = _items(text[end : min(stops[idx], end + _QUOTE_LIMIT)])
            (critical if "critical" in name else minor).extend(items)
        if not critical and not minor:
            problems.append(Problem("fix-without-issues",
                                    "FIX file has no `Critical Issues` or `Minor Issues` section", "info", path))
    return FeedbackDoc(path=path, kind=kind, achievement=achievement, critical=critical, minor=minor,
                       problems=problems)


class _RawParallelItem(msgspec.Struct):
    achievement_id: str | float | int
    dependencies: list[str | float | int] = []
    title: str = ""


class _RawParallel(msgspec.Struct):
    achievements: list[_RawParallelItem]


def parse_parallel(data: bytes, path: str) -> ParallelGraph:
    """Validate parallel.json and give its dependency levels; cycles are named."""
    text, problems = decode(data, path)
    if problems and not text:
        return ParallelGraph(path=path, problems=problems)
    try:
        raw = msgspec.json.decode(text.encode(), type=_RawParallel)
    except msgspec.ValidationError as exc:
        problems.append(Problem("parallel-invalid", f"parallel.json: {exc}", "error", path))
        return ParallelGraph(path=path, problems=problems)
    except msgspec.DecodeError as exc:
        line = _json_error_line(text, str(exc))
        problems.append(Problem("parallel-invalid", f"parallel.json is not valid JSON: {exc}", "error", path, line))
        return ParallelGraph(path=path, problems=problems)
    items: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for it in raw.achievements:
        aid = str(it.achievement_id)
        if aid in items:
            problems.append(Problem("parallel-duplicate", f"parallel.json lists {aid} twice", "error", path))
            continue
        items[aid] = [str(d) for d in it.dependencies]
        titles[aid] = it.title
    for aid, deps in items.items():
        for d in deps:
            if d not in items:
                problems.append(Problem("parallel-unknown-id",
                                        f"parallel.json: {aid} depends on unknown achievement {d}", "error", path,
                                        _find_line(text, f'"{aid}"')))
    levels, level_of, cycles = _levels(items)
    for cycle in cycles:
        problems.append(Problem("parallel-cycle", "parallel.json has a dependency cycle: " + " -> ".join(cycle),
                                "error", path, _find_line(text, f'"{cycle[0]}"')))
    achievements = [ParallelAchievement(aid, deps, titles[aid], level_of.get(aid)) for aid, deps in items.items()]
    return ParallelGraph(path=path, achievements=achievements, levels=levels, problems=problems)


def _levels(items: dict[str, list[str]]) -> tuple[list[list[str]], dict[str, int], list[list[str]]]:
    """Kahn's algorithm by levels; unknown dependencies are ignored (reported elsewhere)."""
    deps = {a: [d for d in ds if d in items] for a, ds in items.items()}
    level_of: dict[str, int] = {}
    levels: list[list[str]] = []
    remaining = set(items)
    while remaining:
        ready = [a for a in items if a in remaining and all(d in level_of for d in deps[a])]
        if not ready:
            break
        for a in ready:
            level_of[a] = len(levels)
        levels.append(ready)
        remaining.difference_update(ready)
    cycles: list[list[str]] = []
    if remaining:
        cycles = _find_cycles({a: [d for d in deps[a] if d in remaining] for a in remaining}, list(items))
    return levels, level_of, cycles


def _find_cycles(graph: dict[str, list[str]], order: list[str]) -> list[list[str]]:
    """Each distinct cycle once, as a closed path `a -> b -> a`."""
    cycles: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    done: set[str] = set()
    for start in (a for a in order if a in graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: dict[str, int] = {}
        node: str | None = start
        while node is not None and node not in done:
            if node in on_path:
                cyc = path[on_path[node] :] + [node]
                key = frozenset(cyc)
                if key not in seen_sets:
                    seen_sets.add(key)
                    cycles.append(cyc)
                break
            on_path[node] = len(path)
            path.append(node)
            nxt = graph.get(node, [])
            node = nxt[0] if nxt else None
        done.update(path)
    return cycles


def _find_line(text: str, needle: str) -> int | None:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _json_error_line(text: str, message: str) -> int | None:
    """The line of a msgspec decode error, which gives a byte offset: `... (byte 46)`."""
    m = re.search(r"\(byte (\d+)\)", message)
    if not m:
        return None
    return text.encode()[: int(m.group(1))].count(b"\n") + 1


