"""A prompt that stands on its own: the text of every file it refers to, inlined, within a token budget.

`generate` prints prompts for agents that open files themselves: they name
paths. A chat-completions model cannot open a file, so what `run` sends (and
`generate --inline` prints) carries their content instead: the files the
state's template names, in the order it first names them, each under its
workspace-relative name as a heading.

The budget is in estimated tokens (UTF-8 bytes / 4: no tokenizer to download;
once a model's server has counted enough prompts, the bytes per token its
counts show: perfd.app.calibration). What does not fit is
cut at a line boundary with a marked line, and the prompt ends saying what was
left out. The cut depends only on the content and the budget, so the same files
and model give the same prompt, and so the same response-cache key; a changed
file gives a new prompt, hence a new call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import msgspec

from perfd.engine.engine import Engine
from perfd.engine.errors import UserError
from perfd.engine.text import decode
from perfd.engine.types import AchievementStatus, GenerateResult
from perfd.engine.workspace import display_path
from perfd.settings.resolve import Settings
from perfd.settings.schema import DEFAULT_CONTEXT_TOKENS

BYTES_PER_TOKEN = 4
# Room kept for the closing "left out" note, so writing it never breaks the budget.
NOTE_RESERVE = 200
# A file is cut only when at least this much of it fits; below, it is left out whole.
MIN_CUT_TOKENS = 64
CUT_MARK = "[perfd: cut here for the token budget]"

_PLACEHOLDER_RE = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}")


class Source(msgspec.Struct, frozen=True):
    """One file the prompt refers to: its heading and its text (a plan's section: those lines only)."""

    heading: str
    text: str


class Inlined(msgspec.Struct, frozen=True, kw_only=True):
    """The self-contained prompt, its token estimate and budget, and what it holds or left out."""

    prompt: str
    tokens: int
    budget: int
    bytes_per_token: float = BYTES_PER_TOKEN
    files: list[str]  # headings of the files inlined whole
    cut: list[str] = []  # "NAME (lines A-B of N left out)"
    left_out: list[str] = []  # headings of the files left out whole


def estimate_tokens(text: str, bytes_per_token: float = BYTES_PER_TOKEN) -> int:
    """Tokens `text` is taken to cost: its UTF-8 bytes / `bytes_per_token`, rounded up (no tokenizer)."""
    return -int(-len(text.encode("utf-8", "surrogatepass")) // bytes_per_token)


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text` (CommonMark: it cannot close early)."""
    if "```" not in text:  # most files: no scan
        return "```"
    longest = max(len(m) for m in re.findall(r"`{3,}", text))
    return "`" * (longest + 1)


def _one_line(name: str) -> str:
    """A file name as a heading: a newline in it (names may hold anything) cannot start a heading of its own."""
    return name.replace("\r", "\\r").replace("\n", "\\n")


def _block(heading: str, text: str) -> str:
    heading = _one_line(heading)
    fence = _fence(text)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"### {heading}\n\n{fence}\n{body}{fence}\n"


def _cut(heading: str, text: str, room: int, bpt: float) -> tuple[str, str] | None:
    """The block of `text` cut at a line boundary to fit `room` tokens, and what it left out; None when
    not even MIN_CUT_TOKENS of it fit."""
    lines = text.splitlines(keepends=True)
    overhead = estimate_tokens(_block(heading, "") + CUT_MARK + "\n", bpt) + 8
    allowed = int((room - overhead) * bpt)
    if allowed < MIN_CUT_TOKENS * bpt:
        return None
    used = kept = 0
    for line in lines:
        size = len(line.encode("utf-8", "surrogatepass"))
        if used + size > allowed:
            break
        used += size
        kept += 1
    if kept == 0:
        return None
    head = "".join(lines[:kept])
    if not head.endswith("\n"):
        head += "\n"
    note = f"lines {kept + 1}-{len(lines)} of {len(lines)} left out"
    return _block(heading, head + CUT_MARK + f" ({note})\n"), f"{_one_line(heading)} ({note})"


def inline(prompt: str, sources: Sequence[Source], budget: int, bytes_per_token: float = BYTES_PER_TOKEN) -> Inlined:
    """`prompt` followed by every source, in order, within `budget` estimated tokens (see the module)."""
    bpt = bytes_per_token
    if not sources:
        return Inlined(prompt=prompt, tokens=estimate_tokens(prompt, bpt), budget=budget, files=[],
                       bytes_per_token=bpt)
    head = (prompt.rstrip("\n") + "\n\n## The files named above\n\n"
            "Their content follows, each under its name: you need not (and cannot) open them.\n\n")
    parts = [head]
    room = budget - estimate_tokens(head, bpt) - NOTE_RESERVE
    files: list[str] = []
    cut: list[str] = []
    left: list[str] = []
    for src in sources:
        block = _block(src.heading, src.text)
        cost = estimate_tokens(block, bpt)
        if not cut and not left and cost <= room:
            parts.append(block + "\n")
            room -= cost
            files.append(src.heading)
            continue
        if not cut and not left:
            got = _cut(src.heading, src.text, room, bpt)
            if got is not None:
                parts.append(got[0] + "\n")
                cut.append(got[1])
                room = 0
                continue
        left.append(src.heading)
    if cut or left:
        what = [*cut, *(f"{_one_line(h)} (whole file)" for h in left)]
        parts.append(f"## Left out for the token budget ({budget} tokens)\n\n"
                     + "".join(f"- {w}\n" for w in what))
    text = "".join(parts).rstrip("\n") + "\n"
    return Inlined(prompt=text, tokens=estimate_tokens(text, bpt), budget=budget, files=files, cut=cut, left_out=left,
                   bytes_per_token=bpt)


# --- which files a state's prompt refers to ---------------------------------------------------------


def _section(engine: Engine, read: Callable[[str], str], plan_path: str,
             a: AchievementStatus) -> Source | None:
    first, last = (a.body_line, a.body_end) if a.body_line else (a.index_line, a.index_line)
    if first is None:
        return None
    lines = read(plan_path).splitlines(keepends=True)
    last = min(last or len(lines), len(lines))
    return Source(f"{display_path(engine.root, plan_path)}, lines {first}-{last} "
                  f"(achievement {a.number}'s section)", "".join(lines[first - 1:last]))


def referenced(engine: Engine, result: GenerateResult) -> list[Source]:
    """The files `result`'s template names, in the order it first names them (each once); a file that
    cannot be read, or that leads out of the workspace, is left out (the engine reports it already)."""
    if result.achievement is None or result.state in ("complete", "plan_complete"):
        return []
    st = engine.plan_status(result.plan_path)
    a = next((x for x in st.achievements if x.number == result.achievement), None)
    if a is None:
        return []
    template = engine.templates.get(result.state)[0]

    def read(path: str) -> str:
        real = engine.check_inside(path)
        return engine.cache.file("context", real, lambda data, p: decode(data, p)[0])

    paths: dict[str, list[str]] = {
        "active_execution": [a.active_execution] if a.active_execution else [],
        "subplan": [a.subplan] if a.subplan else [],
        "subplan_name": [a.subplan] if a.subplan else [],
        "executions": list(a.executions),
        "fix": [a.fix] if a.fix else [],
    }
    out: list[Source] = []
    seen: set[str] = set()
    for m in _PLACEHOLDER_RE.finditer(template):
        name = m.group(1)
        if name in ("plan_path", "body_lines") and "\0section" not in seen:
            seen.add("\0section")
            try:
                sec = _section(engine, read, result.plan_path, a)
            except (OSError, UserError):
                sec = None
            if sec is not None:
                out.append(sec)
        for path in paths.get(name, ()):
            if path not in seen:
                seen.add(path)
                try:
                    out.append(Source(display_path(engine.root, path), read(path)))
                except (OSError, UserError):
                    continue
    return out


def budget_of(settings: Settings | None) -> int:
    """`[llm] context_tokens` of the settings in force (the default without one): the budget `generate
    --inline` uses, as `run` does with the same model."""
    value = settings.table("llm").get("context_tokens") if settings is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else DEFAULT_CONTEXT_TOKENS


def self_contained(engine: Engine, result: GenerateResult, budget: int,
                   bytes_per_token: float = BYTES_PER_TOKEN) -> Inlined:
    """`result`'s prompt with the content of every file it refers to, within `budget` tokens."""
    return inline(result.prompt, referenced(engine, result), budget, bytes_per_token)
