"""Parse a PLAN markdown file into a PlanDoc (see ../shared/PLAN-FORMAT.md).

One pass over the lines with cheap string tests picks the few lines that can
matter (headings, bold lines, bullets naming an achievement, fences); only
those meet the precompiled regexes. That keeps a 3,000-line plan to a couple
of milliseconds and the cost linear in the file size.
"""

from __future__ import annotations

import re

import msgspec

from perfd.engine.plan_assembly import Header, assemble, attach_time_fields, body_marks, priority_marks, section_key
from perfd.engine.text import MAX_BYTES, MAX_LINE, decode
from perfd.engine.types import DoneMark, PlanDoc, Problem, Section

NUM = r"\d+\.\d+(?:\.\d+)?"

# A line that names an achievement in a header-like position. Groups tell
# the notation apart: `- ✅ Achievement 1.1: T`, `**Achievement 1.1**: T`,
# `**Achievement 1.1: T**`, `### Achievement 1.1: T`, `- [x] **Achievement 1.1**: T`.
_HEADER_RE = re.compile(
    rf"^(?P<bullet>[-*+][ \t]+)?(?P<check>\[[ xX]\][ \t]+)?(?P<pre>✅[ \t]*)?"
    rf"(?P<b1>\*\*)?(?P<pre2>✅[ \t]*)?Achievement[ \t]+(?P<num>{NUM})(?![\d.]*\d)"
    rf"(?P<b2>\*\*)?[ \t]*(?P<sep>[:\-–—])?[ \t]*(?P<rest>.*)$"
)
# "Achievement 4.1 & 4.2", "Achievements 1.1, 1.2 and 1.3": every number named.
_MENTION_RE = re.compile(rf"Achievements?[ \t]+(?P<nums>{NUM}(?:[ \t]*(?:&|,|/|and)[ \t]*{NUM})*)")
_NUM_RE = re.compile(NUM)
# `- 🔄 Achievement 2.1: Title` in the index: a status emoji other than ✅ (which
# marks it done) must not make the entry vanish from the plan.
_INDEX_EMOJI_RE = re.compile(r"^(?P<bullet>[-*+][ \t]+)[^\w\s\[\]*`✅]{1,3}[ \t]*(?=(?:\*\*)?Achievement[ \t])")
_PRIORITY_RE = re.compile(r"^\*\*(?P<name>Priority[ \t]+\d+\b[^*]*?):?[ \t]*\*\*(?P<rest>.*)$")
_META_RE = re.compile(r"^\*\*(?P<key>[^*:]{1,60}?)\*\*:[ \t]*(?P<value>.*?)[ \t]*$")
_META_INNER_RE = re.compile(r"^\*\*(?P<key>[^*]{1,60}?):\*\*[ \t]*(?P<value>.*?)[ \t]*$")
_EFFORT_PAREN_RE = re.compile(
    r"[ \t]*\((?P<e>\d+(?:\.\d+)?(?:[ \t]*[-–][ \t]*\d+(?:\.\d+)?)?[ \t]*(?:h|hrs?|hours?))\)", re.I
)
_EFFORT_CLOCK_RE = re.compile(r"[ \t]*⏱️?[ \t]*(?P<e>\d[^|]*?(?:h|hrs?|hours?))\b.*$", re.I)
_COMPLETE_RE = re.compile(
    r"✅[ \t]*(?:\*\*)?[ \t]*(?:complete|completed|done|approved|finished)\b"
    r"|\bstatus\b[^a-z0-9]*?✅?[ \t]*(?:\*\*)?(?:complete|completed|done)\b"
    r"|\b(?:complete|completed|done)\b[ \t]*(?:\*\*)?[ \t]*[.!]?[ \t]*(?:✅)?[ \t]*$",
    re.I,
)
_NOT_COMPLETE_RE = re.compile(r"\b(?:design|not|in)[ \t]+(?:yet[ \t]+)?complete|\bincomplete\b|\bready\b", re.I)
_ALL_DONE_RE = re.compile(r"\ball[ \t]+achievements[ \t]+(?:are[ \t]+)?(?:done|complete|completed)\b", re.I)
_NEGATION_RE = re.compile(r"\bnot[ \t]+(?:yet[ \t]+)?$", re.I)
_WORDS_RE = re.compile(r"[a-z]+")
# Words that may come before "all achievements done" in a statement of it
# (`**Status**: ✅ All achievements complete`, `Plan complete - all achievements done`);
# any other word makes it prose about the future ("When all achievements are
# done, ...", "Detect PLAN completion (all achievements done)").
_ALL_DONE_PREFIX = frozenset({"status", "plan", "complete", "completed", "done", "finished", "final", "result"})
_NEXT_RE = re.compile(r"\bnext\b", re.I)
_NEXT_ACH_RE = re.compile(rf"\bnext[ \t]+achievement\b[^0-9\n]{{0,12}}?(?P<num>{NUM})", re.I)  # **Next Achievement**: 1.2
_BACKTICK_RE = re.compile(r"`([^`]+)`")
_MARKUP_START = frozenset("#*-+`~|⏳✅")
_COMPLETE_SUFFIX_RE = re.compile(r"\bCOMPLETE\b[ \t]*$")
# `Achievement 0.1 complete (...)`, `**Status**: Achievement 0.1 Complete`, `- Achievement 0.1 done - ...`:
# the number, then at once the word that says it is finished, then the end, a bracket or a dash
# (not a sentence: "Achievement 0.1 is complete, says the prose" is no mark).
_NAMED_DONE_RE = re.compile(
    rf"^(?:[-*+][ \t]+)?(?:\*\*Status(?:\*\*:|:\*\*)[ \t]*)?(?:✅[ \t]*)?(?:\*\*)?Achievement[ \t]+(?P<num>{NUM})"
    rf"(?![\d.]*\d)(?:\*\*)?:?[ \t]+(?:✅[ \t]*)?(?:\*\*)?(?:complete|completed|done|finished)\b(?:\*\*)?"
    r"(?=[ \t]*(?:$|\(|[-–—:✅!.]))", re.I)
# `✅ Priority 0: 3/3 achievements`: every achievement of that priority is done (when the counts agree).
_PRIORITY_DONE_RE = re.compile(
    r"✅[ \t]*(?:\*\*)?Priority[ \t]+(?P<p>\d+)\b[^/\n]*?(?P<a>\d+)[ \t]*/[ \t]*(?P<b>\d+)[ \t]*achievements", re.I)
# `### 1. Title - 3h` (or `### 1.2 Title`) under an achievements heading: an achievement without the word.
_NUMBERED_RE = re.compile(rf"^(?P<num>\d+(?:\.\d+){{0,2}})(?:\.|:|[ \t]+[-–—])?[ \t]+(?P<rest>\S.*)$")
_EFFORT_DASH_RE = re.compile(
    r"[ \t]+[-–—][ \t]+(?P<e>\d+(?:\.\d+)?(?:[ \t]*[-–][ \t]*\d+(?:\.\d+)?)?[ \t]*(?:h|hrs?|hours?))[ \t]*$", re.I)

# A document named PLAN_ that says it is something else: a summary's own words in its title or name.
_NOT_PLAN_WORDS_RE = re.compile(
    r"\b(?:summary|summaries|report|retrospective|post-?mortem|lessons[ \t_-]+learned|changelog|recap)\b", re.I)

_TIME_KEYS = {"time": "time", "estimated time": "time", "effort": "time", "estimate": "time",
              "actual": "actual", "actual time": "actual",
              # In an achievement's body these say it is done (read by plan_assembly.body_marks).
              "status": "status", "completed": "completed", "completion date": "completed",
              "date completed": "completed"}


def nn_of(number: str) -> str:
    """The `<NN>` used in file names: 3.1 -> 31, 0.2 -> 02, 3.5.1 -> 351; a plain 1 (`### 1. Title`) -> 01."""
    return number.replace(".", "") if "." in number else number.zfill(2)


def _clean_title(text: str) -> tuple[str, str | None]:
    """Strip markdown, effort suffixes and done marks from a header title."""
    # Each regex runs only when the character it needs is there: this runs for every
    # header of every plan, and most titles are plain words.
    effort = None
    if "(" in text:
        m = _EFFORT_PAREN_RE.search(text)
        if m:
            effort = m.group("e")
            text = text[: m.start()] + text[m.end() :]
    if "⏱" in text:
        m = _EFFORT_CLOCK_RE.search(text)
        if m:
            effort = effort or m.group("e")
            text = text[: m.start()]
    # A ✅ after the title starts its status (`Title (✅ Complete)`, `Title - ✅ Done
    # 2025-11-10`); a leading one is a done mark.
    text = text.lstrip("✅ \t")
    k = text.find("✅")
    if k >= 0:
        text = text[:k]
    if "**" in text:
        text = text.replace("**", "")
    text = text.strip()
    if "COMPLETE" in text:
        text = _COMPLETE_SUFFIX_RE.sub("", text)
    if text[-1:] in ("h", "s", "H", "S") and ("-" in text or "–" in text or "—" in text):
        m = _EFFORT_DASH_RE.search(text)  # `Title - 3h`
        if m:
            effort = effort or m.group("e")
            text = text[: m.start()]
    return text.strip(" \t-–—:").rstrip(" \t-–—:(|["), effort


# What a chunk of lines needs to know of the lines before it, and tells the
# lines after it: (in_fence, fence, in_index, in_handoff, in_archive, priority,
# `## ` sections opened so far, counted up to 2, in an achievements section). Nothing else carries from one
# line to the next. Metadata and priorities outside the index are read until a
# second section opens: the first section may still hold them.
_State = tuple[bool, str, bool, bool, bool, "str | None", int, bool]
_START: _State = (False, "", False, False, False, None, 0, False)


class _Chunk:
    """What one chunk of lines says, with line numbers counted from the chunk's first line."""

    __slots__ = ("lines", "exit", "rare", "title", "metadata", "sections", "headers", "priorities", "marks",
                 "all_done", "time_fields", "next_candidates", "archive", "problems", "priority_done")

    def __init__(self) -> None:
        self.lines = 0
        self.exit = _START
        self.rare = False  # whether any of the rare fields below is set
        self.title: str | None = None
        self.metadata: list[tuple[str, str]] = []
        self.sections: list[tuple[str, str, int]] = []  # ## headings opened here: (title, key, line)
        # Each header's `section` counts sections opened in this chunk: -1 is the
        # one open when the chunk began.
        self.headers: list[Header] = []
        self.priorities: list[tuple[str, int]] = []
        self.marks: list[DoneMark] = []
        self.all_done: int | None = None
        self.time_fields: list[tuple[int, str, str]] = []
        self.next_candidates: list[tuple[int, str, bool, bool]] = []  # (line, number, in handoff, after "next")
        self.archive: str | None = None
        self.problems: list[Problem] = []
        self.priority_done: list[tuple[str, int]] = []  # (priority number, line) of `✅ Priority 0: 3/3 achievements`


class PlanMemo:
    """Chunks parsed last time for one document (an editor buffer), so that
    re-parsing it after an edit re-reads only the chunks the edit touched.

    A chunk runs from one `##`, `###`... heading to the next. Its result depends
    only on its text and the state it starts in, so (text, state) is the key;
    line numbers are stored relative to the chunk and shifted when combined.
    Only the chunks of the latest parse are kept.
    """

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: dict[tuple[str, _State], _Chunk] = {}


def parse_plan(data: bytes, path: str, *, memo: PlanMemo | None = None) -> PlanDoc:
    """Parse PLAN bytes. Total: never raises; problems say what was wrong."""
    text, problems = decode(data, path)
    return _parse(text, problems, path, memo)


def parse_plan_text(text: str, path: str, *, memo: PlanMemo | None = None) -> PlanDoc:
    """Parse an editor's buffer; the same result as parse_plan of its UTF-8 bytes."""
    if not text.isascii():  # O(1): CPython knows
        try:
            text.encode("utf-8")  # a lone surrogate (JSON allows one) is reported as its bytes would be
        except UnicodeEncodeError:
            return parse_plan(text.encode("utf-8", "surrogatepass"), path, memo=memo)
    if len(text) * 4 > MAX_BYTES or "\x00" in text[:8192] or text.startswith("\ufeff"):
        return parse_plan(text.encode("utf-8"), path, memo=memo)  # the rare cases decode() reports
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as decode() does
    return _parse(text, [], path, memo)


def _parse(text: str, problems: list[Problem], path: str, memo: PlanMemo | None) -> PlanDoc:
    n = text.count("\n") + (0 if text.endswith("\n") else 1) if text else 0

    title = ""
    metadata: dict[str, str] = {}
    sections: list[Section] = []
    open_section: tuple[str, str, int] | None = None
    headers: list[Header] = []
    priorities: list[tuple[str, int]] = []
    marks: list[DoneMark] = []
    all_done_line: int | None = None
    time_fields: list[tuple[int, str, str]] = []
    next_candidates: list[tuple[int, str, bool, bool]] = []
    archive: str | None = None
    priority_done: list[tuple[str, int]] = []

    old = memo.chunks if memo is not None else {}
    kept: dict[tuple[str, _State], _Chunk] = {}
    state = _START
    off = 0  # lines before this chunk
    # Without a memo nothing is reused, and one chunk is the cheapest way through.
    pieces = text.split("\n##") if memo is not None else [text]
    for i, piece in enumerate(pieces):
        chunk_text = "##" + piece if i else piece
        key = (chunk_text, state)
        ch = old.get(key) or kept.get(key)
        if ch is None:
            ch = _scan(chunk_text.split("\n"), state, path)
        if memo is not None:
            kept[key] = ch
        base = len(sections) + (open_section is not None)  # sections opened before this chunk

        if ch.rare:  # most chunks say nothing beyond their headers
            if ch.title and not title:
                title = ch.title
            for k, v in ch.metadata:
                metadata.setdefault(k, v)
            if ch.all_done is not None and all_done_line is None:
                all_done_line = ch.all_done + off
            if ch.archive is not None and archive is None:
                archive = ch.archive
            if ch.priorities:
                priorities.extend([(name, line + off) for name, line in ch.priorities])
            if ch.next_candidates:
                next_candidates.extend([(line + off, num, h, a) for line, num, h, a in ch.next_candidates])
            if ch.priority_done:
                priority_done.extend([(p, line + off) for p, line in ch.priority_done])
            if ch.problems:
                problems.extend([msgspec.structs.replace(p, line=p.line + off) if p.line is not None else p
                                 for p in ch.problems])
        if off == 0 and base == 0:
            headers.extend(ch.headers)  # nothing to shift (headers are never changed once made)
        else:
            for h in ch.headers:
                headers.append(Header(h.line + off, h.num, h.title, h.effort, h.form, h.done, h.in_index,
                                       h.section + base, h.priority))
        if ch.marks:
            marks.extend([DoneMark(m.number, m.kind, m.line + off) for m in ch.marks] if off else ch.marks)
        if ch.time_fields:
            time_fields.extend([(line + off, k, v) for line, k, v in ch.time_fields])
        for sec_title, sec_key, line in ch.sections:
            if open_section is not None:
                sections.append(Section(*open_section, line + off - 1))
            open_section = (sec_title, sec_key, line + off)
        state = ch.exit
        off += ch.lines
    if open_section is not None:
        sections.append(Section(*open_section, n))
    if memo is not None:
        memo.chunks = kept

    achievements, body_problems = assemble(headers, sections, n, path)
    problems.extend(body_problems)
    attach_time_fields(achievements, time_fields)
    if time_fields:
        marks.extend(body_marks(achievements, time_fields))
    if priority_done:
        marks.extend(priority_marks(achievements, priority_done))

    handoff_next = None
    handoff_line = None
    # In the handoff, a line that names the achievement after the word "next"
    # wins over one that only mentions both ("Last completed: Achievement 1.1
    # (next steps below)"); the pointer may also come first ("Achievement 2.1 ← NEXT").
    in_h = [c for c in next_candidates if c[2] and c[3]] or [c for c in next_candidates if c[2]]
    pick = in_h[0] if in_h else (next_candidates[-1] if next_candidates else None)
    if pick:
        handoff_line, handoff_next = pick[0], pick[1]

    if not title:
        problems.append(Problem("no-title", "no `# PLAN: <title>` line", "info", path, 1 if n else None))
    not_plan = ""
    if not achievements and not marks and not priorities and all_done_line is None and n:
        not_plan = _not_a_plan(title, path, sections)
    if not achievements and n and not not_plan:
        problems.append(Problem("no-achievements", "no achievements found in the plan", "warning", path))

    return PlanDoc(
        path=path,
        title=title,
        metadata=metadata,
        sections=sections,
        achievements=achievements,
        priorities=priorities,
        handoff_next=handoff_next,
        handoff_line=handoff_line,
        archive_location=archive,
        done_marks=marks,
        all_done_line=all_done_line,
        line_count=n,
        problems=problems,
        not_plan=not_plan,
    )


def _not_a_plan(title: str, path: str, sections: list[Section]) -> str:
    """Why a PLAN_ document with no achievement structure at all is no plan ("" when nothing says so).

    Positive evidence only: its title or its file name calls it a summary, a report, a retrospective
    (`PLAN_X_COMPLETION_SUMMARY.md`, `# Completion Summary: X`). A new plan with no achievements yet
    says none of this, and stays a plan.
    """
    if any("achievement" in s.key or "index" == s.key for s in sections):
        return ""
    m = _NOT_PLAN_WORDS_RE.search(title)
    if m:
        return f"its title calls it a {m.group(0).lower()} and it lists no achievements"
    stem = path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    m = _NOT_PLAN_WORDS_RE.search(stem.replace("_", " ").removesuffix(".md"))
    if m:
        return f"its name calls it a {m.group(0).lower()} and it lists no achievements"
    return ""


def _scan(lines: list[str], state: _State, path: str) -> _Chunk:
    """One pass over a chunk's lines, numbered from 1, starting in `state`."""
    ch = _Chunk()
    ch.lines = len(lines)
    in_fence, fence, in_index, in_handoff, in_archive, current_priority, opened, in_achs = state
    sec_index = -1  # sections opened in this chunk, less one
    headers = ch.headers
    marks = ch.marks
    problems = ch.problems
    next_candidates = ch.next_candidates

    for lineno, line in enumerate(lines, 1):
        if not line:
            continue
        c = line[0]
        if c == " " or c == "\t":
            s = line.lstrip()
            if not s:
                continue
            c = s[0]
        else:
            s = line
        # Fast path: most lines are prose that names no achievement. They can
        # only matter as an archive path or an "all achievements done" line.
        low = "chievement" in s  # searched once: the checks below reuse the answers
        up = "CHIEVEMENT" in s
        if c not in _MARKUP_START and not low and not up and not in_archive:
            continue
        if c == "`" or c == "~":
            if s.startswith("```") or s.startswith("~~~"):
                # A fence closes on a run of the same character at least as
                # long as the one that opened it (CommonMark), so a ```` block
                # can show ``` examples. Unlike CommonMark, a closing run may
                # carry an info string: hand-written plans nest ```bash blocks
                # inside ```markdown ones, and pairing them keeps the text after
                # the outer block out of the fence. A ``` line with another
                # backtick after the run (```x```) is inline code, not a fence.
                run = len(s) - len(s.lstrip(c))
                if c == "~" or "`" not in s[run:]:
                    if not in_fence:
                        in_fence, fence = True, s[:run]
                    elif c == fence[0] and run >= len(fence):
                        in_fence = False
                    continue
        if in_fence or len(line) > MAX_LINE:
            continue
        # Wherever it stands: a `**Status**:` line, a heading, a bullet, prose.
        plural = (up and "CHIEVEMENTS" in s) or (low and "chievements" in s)
        if plural and ch.all_done is None:
            am = _ALL_DONE_RE.search(s)
            if am and _states_all_done(s, am):
                ch.all_done = lineno
        if c == "#":
            level = len(s) - len(s.lstrip("#"))
            htext = s[level:].strip()
            if level == 1:
                if not ch.title:
                    ch.title = htext[5:].strip() if htext.startswith("PLAN:") else htext
                continue
            if level == 2:
                sec_key = section_key(htext)
                ch.sections.append((htext, sec_key, lineno))
                sec_index += 1
                opened = min(opened + 1, 2)
                in_index = "achievement index" in sec_key or sec_key in ("index", "achievements index")
                in_handoff = "handoff" in sec_key
                in_archive = "archive location" in sec_key
                in_achs = "achievement" in sec_key and not in_index and "tracking" not in sec_key \
                    and "progress" not in sec_key and "summary" not in sec_key
                current_priority = None
                continue
            if in_achs and "Achievement" not in htext and "0" <= htext[:1] <= "9":
                nm = _NUMBERED_RE.match(htext)
                if nm:
                    title, effort = _clean_title(nm.group("rest"))
                    done = "✅" in nm.group("rest")
                    headers.append(Header(lineno, nm.group("num"), title, effort, "numbered", done, False,
                                          sec_index, current_priority))
                    if done:
                        marks.append(DoneMark(nm.group("num"), "body", lineno))
                continue
            if "Achievement" in htext:
                if in_handoff:
                    ptr = _next_pointer(htext)  # `### ⏳ Next: Achievement 1.2`
                    if ptr:
                        next_candidates.append((lineno, ptr[0], True, ptr[1]))
                _header_line(htext, lineno, in_index, sec_index, headers, marks, "heading",
                             current_priority, problems, path)
            continue
        if c == "*" and s.startswith("**"):
            if in_index or opened < 2:
                pm = _PRIORITY_RE.match(s)
                if pm:
                    current_priority = pm.group("name").strip()
                    ch.priorities.append((current_priority, lineno))
                    continue
            if opened < 2 and "Achievement" not in s:
                mm = _META_RE.match(s) or _META_INNER_RE.match(s)
                if mm:
                    ch.metadata.append((mm.group("key").strip(), mm.group("value").strip()))
                    continue
        has_ach = low and "Achievement" in s
        if plural and "✅" in s and "Priority" in s:
            pd = _PRIORITY_DONE_RE.search(s)
            if pd and pd.group("a") == pd.group("b") and int(pd.group("b")) > 0:
                ch.priority_done.append((pd.group("p"), lineno))
        if not has_ach and not plural:
            if c == "*" and s.startswith("**"):
                mm = _META_RE.match(s) or _META_INNER_RE.match(s)
                if mm:
                    key = mm.group("key").strip().lower()
                    if key in _TIME_KEYS:
                        ch.time_fields.append((lineno, _TIME_KEYS[key], mm.group("value")))
                    elif key == "archive location" and ch.archive is None:
                        bt = _BACKTICK_RE.search(mm.group("value"))
                        ch.archive = bt.group(1) if bt else mm.group("value").strip() or None
            elif in_archive and ch.archive is None:
                bt = _BACKTICK_RE.search(s)
                if bt:
                    ch.archive = bt.group(1)
            continue
        if not has_ach:
            continue
        if not in_index and not in_handoff and (c == "-" or c == "*" or c == "+") and s[1:2] in (" ", "\t"):
            # A bullet that names an achievement only in passing ("... see Achievement 2.1")
            # matters only as a done mark: skip it unless it is checked or speaks of completion.
            at = s.find("Achievement")
            if at > 16 and "omplete" not in s and "OMPLETE" not in s and "one" not in s \
                    and "ONE" not in s and "[x]" not in s and "[X]" not in s:
                continue
        if in_handoff or (c == "*" and _NEXT_RE.search(s[:24])):
            ptr = _next_pointer(s)
            if ptr:
                next_candidates.append((lineno, ptr[0], in_handoff, ptr[1]))
        _header_line(s, lineno, in_index, sec_index, headers, marks, "line",
                     current_priority, problems, path)

    ch.exit = (in_fence, fence, in_index, in_handoff, in_archive, current_priority, opened, in_achs)
    ch.rare = bool(ch.title or ch.metadata or ch.all_done or ch.archive or ch.priorities or ch.next_candidates
                     or ch.problems or ch.priority_done)

    return ch


def _next_pointer(s: str) -> tuple[str, bool] | None:
    """(achievement number, named after the word "next") for a line that points to the next one."""
    nm = _NEXT_RE.search(s)
    if nm is None:
        return None
    after = _MENTION_RE.search(s, nm.end())
    if after:
        return _first_number(after.group("nums")), True
    na = _NEXT_ACH_RE.search(s)
    if na:
        return na.group("num"), True
    before = _MENTION_RE.search(s)
    if before:
        return _first_number(before.group("nums")), False
    return None


def _first_number(nums: str) -> str:
    """The first achievement number of a mention's numbers (the group starts with one, by its pattern)."""
    m = _NUM_RE.match(nums)
    return m.group(0) if m is not None else nums


def _states_all_done(s: str, m: re.Match[str]) -> bool:
    """Whether an "all achievements done" match is a statement, not a condition or a plan."""
    prefix = s[: m.start()]
    if _NEGATION_RE.search(prefix) or s.lstrip("-*+ \t").startswith("[ ]"):
        return False
    if m.group(0).isupper():
        return True  # `ALL ACHIEVEMENTS DONE` anywhere on the line is a status
    return all(w in _ALL_DONE_PREFIX for w in _WORDS_RE.findall(prefix.lower()))


def _header_line(s: str, lineno: int, in_index: bool, section: int, headers: list[Header],
                 marks: list[DoneMark], where: str, priority: str | None, problems: list[Problem],
                 path: str) -> None:
    """Classify one line naming an achievement: index entry, body header, done mark."""
    m = _HEADER_RE.match(s)
    if m is None and in_index:
        em = _INDEX_EMOJI_RE.match(s)
        if em:
            m = _HEADER_RE.match(em.group("bullet") + s[em.end() :])
    if m is None:
        _mark_line(s, lineno, marks)
        return
    num, bullet_g, checked, pre, pre2, b1, b2, sep, rest = m.group(  # one call: this runs for every header
        "num", "bullet", "check", "pre", "pre2", "b1", "b2", "sep", "rest")
    bullet = bullet_g is not None
    pre_done = bool(pre or pre2)
    title_raw: str | None = None
    form = ""
    if where == "heading":
        if sep == ":" or sep in ("-", "–", "—"):
            title_raw, form = rest, "heading"
    elif b1 and b2 and sep == ":":
        title_raw, form = rest, "bold"  # **Achievement 1.1**: Title
    elif b1 and not b2 and sep == ":" and "**" in rest:
        end = rest.index("**")
        title_raw, form = rest[:end] + " " + rest[end + 2 :], "bold-inner"  # **Achievement 1.1: Title**
    elif not b1 and bullet and sep and (not checked or in_index):
        title_raw, form = rest, "plain"  # - Achievement 1.1: Title

    ticked = checked is not None and checked.strip("[] \t").lower() == "x"
    if checked is not None and not (in_index and title_raw is not None):
        if ticked:
            _mark_line(s, lineno, marks, kind="checked")
        return

    if title_raw is None:
        if in_index and (b1 or bullet) and not pre_done:
            problems.append(Problem("malformed-header", f"achievement {num} in the index without a `: Title`",
                                    "warning", path, lineno))
        elif not bullet and not pre_done and sep is None and (where == "heading" or b2) and \
                rest[:1] not in ("/", "&", ","):
            problems.append(Problem("malformed-header",
                                    f"`Achievement {num}` header without a `:` before its title", "warning",
                                    path, lineno))
        _mark_line(s, lineno, marks, bullet_done=bullet and pre_done)
        return

    title, effort = _clean_title(title_raw)
    done_here = pre_done or "✅" in rest
    if in_index:
        # An index written as a checklist (`- [x] Achievement 1.1: Title`) still lists it.
        done_here = done_here or ticked
        headers.append(Header(lineno, num, title, effort, form, done_here, True, section, priority))
        if done_here:
            marks.append(DoneMark(num, "index", lineno))
        return
    if bullet:
        # A bullet outside the index is a tracking or log line, not a body.
        if pre_done:
            marks.append(DoneMark(num, "log", lineno))
        else:
            _mark_line(s, lineno, marks)
        return
    headers.append(Header(lineno, num, title, effort, form, done_here, False, section, priority))
    if done_here:
        marks.append(DoneMark(num, "body", lineno))


def _mark_line(s: str, lineno: int, marks: list[DoneMark], *, kind: str | None = None,
               bullet_done: bool = False) -> None:
    """Done marks on tracking and log lines that are not headers."""
    if kind is None and ("omplete" in s or "OMPLETE" in s or "one" in s or "ONE" in s or "inished" in s):
        nd = _NAMED_DONE_RE.match(s)
        if nd:
            marks.append(DoneMark(nd.group("num"), "named", lineno))
            return
    if kind is None:
        stripped = s.lstrip("-*+ \t")
        if not (s[:1] in "-*+" and s[1:2] in (" ", "\t")):
            return  # prose, not a tracking line
        if stripped.startswith("[ ]"):
            return  # an unchecked item says: not done
        if stripped[:3] in ("[x]", "[X]"):
            kind = "checked"  # `- [x] **SUBPLAN_F_01**: Achievement 0.1 - ...`: checked names it done
        elif bullet_done:
            kind = "log"  # `- ✅ Achievement 1.2: ...`, `- ✅ **Achievement 0.1 COMPLETE**`
        else:
            low = s.lower()
            if "complete" not in low and "done" not in low:
                return  # cheap test first: most tracking lines say nothing of completion
            cm = _COMPLETE_RE.search(s)
            if cm is None or _NOT_COMPLETE_RE.search(s[max(0, cm.start() - 16) : cm.end()]):
                return
            kind = "tracking"
    for mention in _MENTION_RE.finditer(s):
        for num in _NUM_RE.findall(mention.group("nums")):
            marks.append(DoneMark(num, kind, lineno))


def no_achievements_message(title: str, shown_path: str, not_plan: str = "") -> str:
    """What perfd looked for in a plan where it read no achievement, with an example to copy."""
    if not_plan:
        return f"{shown_path} is not a plan: {not_plan}.\n"
    return (
        f"perfd read no achievements in plan \"{title}\" ({shown_path}).\n"
        "It looks for an index under a `## ... Achievement Index` heading, one line per achievement,\n"
        "and for bodies under an `## ... Achievements` heading, for example:\n\n"
        "    ## 📋 Achievement Index\n\n"
        "    - Achievement 1.1: Set up the project\n"
        "    - Achievement 1.2: Write the parser\n\n"
        "    ## 📋 Achievements\n\n"
        "    **Achievement 1.1**: Set up the project\n\n"
        "    What to do, and how to know it is done.\n\n"
        "(`### Achievement 1.1: Title` and `### 1. Title - 3h` under the achievements heading are read too;\n"
        "docs/PLAN-FORMAT.md lists every form, and `perfd new NAME` starts a plan from a template.)\n"
    )
