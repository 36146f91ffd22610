"""Names shown safely: one escaping for every name perfd prints, and JSON that is always valid.

File names come from the file system, and file content (a plan's title) from
whoever wrote it. A name that is not UTF-8 reaches Python as lone surrogates
(os.fsdecode's surrogateescape) that no UTF-8 encoder accepts; a name holding a
newline forges a row in a table; an ANSI or bidi control sequence rewrites
the terminal. `shown` escapes all of them, the same way everywhere:

- a byte that was not UTF-8 (a lone surrogate U+DC80..U+DCFF) -> `\\xNN`;
- other lone surrogates -> `\\uNNNN`;
- C0 and C1 controls and DEL -> `\\n`, `\\t`, `\\r`, `\\e` or `\\xNN`;
- bidi overrides and isolates (U+202A..U+202E, U+2066..U+2069) -> `\\uNNNN`;
- a backslash stays a backslash (names are shown, not parsed back).

`json_safe` applies it to the strings of a value that msgspec cannot encode
(lone surrogates), so a JSON answer is produced whatever the names are.

One rule per kind of output, and every writer of that kind uses it:

- a terminal line: `shown`; several lines (hints): `shown_lines`;
- a model's answer on a terminal: `answer_text` (keeps newlines and tabs, escapes every other control);
- Prometheus text: `prometheus_label` for a label value (the format's escapes, after `shown`);
- Markdown: `markdown_text` (no HTML, link, image, comment or emphasis survives as markup);
- CSV: `csv_cell` (a formula trigger, even after whitespace or in its full-width form, is quoted away).
"""

from __future__ import annotations

import re
from typing import Protocol

import msgspec

_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    named = _NAMED.get(ch)
    if named is not None:
        return named
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return "\\x%02x" % (o - 0xDC00)
    return "\\x%02x" % o if o < 0x100 else "\\u%04x" % o


def shown(text: str) -> str:
    """`text` as it may be printed on one line of a terminal (see the module's rules)."""
    if _UNSAFE_RE.search(text) is None:  # the common case: nothing to do
        return text
    return _UNSAFE_RE.sub(_escape, text)


def shown_lines(text: str, *, indent: str = "") -> str:
    """`text` of several lines, each line `shown`, the lines after the first indented: a multi-line hint
    prints as lines, and still no control character reaches the terminal."""
    lines = [shown(line) for line in text.strip("\n").split("\n")]
    return ("\n" + indent).join(lines)


def prometheus_label(text: str) -> str:
    """A label value for the Prometheus text format, between its double quotes. The format has three escapes
    (backslash, double quote, line feed); every other unsafe character (a CR, ESC, bidi control, a byte that
    was not UTF-8) is shown as `shown` shows it, its backslash escaped, so it reads back as that text."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    if _UNSAFE_RE.search(out) is None:
        return out
    return _UNSAFE_RE.sub(lambda m: "\\" + _escape(m), out)


# A model's answer on a terminal: lines and tabs are its layout; every other control is escaped.
_ANSWER_ASCII_CONTROLS = bytes(c for c in range(0x20) if c not in (0x09, 0x0A)) + b"\x7f"
_ANSWER_UNSAFE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def answer_text(text: str) -> str:
    """A model's answer (or any long text) as it may reach a terminal: newlines and tabs kept, every other
    C0/C1 control, DEL, bidi control and lone surrogate escaped as `shown` escapes it. Piped output and
    --json carry the answer as it is; only a terminal needs this."""
    if len(text) > 256 and text.isascii():  # a long ASCII answer: a byte scan is a third of the regex's time
        if len(text.encode("ascii").translate(None, _ANSWER_ASCII_CONTROLS)) == len(text):
            return text
    elif _ANSWER_UNSAFE_RE.search(text) is None:
        return text
    return _ANSWER_UNSAFE_RE.sub(_escape, text)


class _TextStream(Protocol):
    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class TerminalText:
    """A text stream in front of a terminal: every write goes through `answer_text`."""

    def __init__(self, stream: _TextStream) -> None:
        self.stream = stream

    def write(self, text: str, /) -> int:
        return self.stream.write(answer_text(text))

    def flush(self) -> None:
        self.stream.flush()


# Markdown: the characters that can open inline markup are backslash-escaped (CommonMark allows it for any
# ASCII punctuation): HTML, comments and autolinks need <, entities &, links and images [ ], code `,
# emphasis and strikethrough * _ ~, a table cell ends at |. A character that only means something at the
# start of a line (# - + = > 1.) is escaped there. What is left is literal text.
_MD_INLINE_RE = re.compile(r"[\\`*_\[\]<>&|~!]")
_MD_LINE_START_RE = re.compile(r"^([#+=-]|\d+(?=[.)]))")


def markdown_text(text: str) -> str:
    """`text` as literal Markdown inline text (one line: a table cell, a phrase after other text): `shown`,
    then every character that could open markup escaped. A reader renders exactly the shown text."""
    out = _MD_INLINE_RE.sub(lambda m: "\\" + m.group(0), shown(text))
    return _MD_LINE_START_RE.sub(lambda m: m.group(0) + "\\" if m.group(0)[0].isdigit() else "\\" + m.group(0),
                                 out, count=1)


_CSV_TRIGGERS = ("=", "+", "-", "@")


def csv_cell(text: str) -> str:
    """A CSV cell that no spreadsheet takes for a formula: `shown` (no tab, CR or line feed survives), and a
    leading apostrophe when the cell, read as a spreadsheet would (NFKC: full-width ＝ is =, leading
    whitespace skipped), starts with = + - or @."""
    cell = shown(text)
    import unicodedata  # here: the thin client imports this module and never writes CSV

    if unicodedata.normalize("NFKC", cell).lstrip().startswith(_CSV_TRIGGERS):
        return "'" + cell
    return cell


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def json_safe(value: object) -> object:
    """Builtins of `value` with every lone surrogate escaped as `shown` does (for msgspec.json)."""
    if isinstance(value, str):
        return _SURROGATE_RE.sub(_escape, value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return json_safe(msgspec.to_builtins(value))
    return value


def encode_json(value: object, encoder: msgspec.json.Encoder | None = None) -> bytes:
    """JSON bytes of `value`; names that are not UTF-8 escaped instead of failing (always valid JSON)."""
    enc = encoder or _ENCODER
    try:
        return enc.encode(value)
    except UnicodeEncodeError:
        return enc.encode(json_safe(msgspec.to_builtins(value)))


_ENCODER = msgspec.json.Encoder()
