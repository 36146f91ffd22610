"""Text laid out in columns for a terminal: widths measured as the terminal shows them, names escaped."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def display_width(text: str) -> int:
    """Columns a terminal gives `text`: wide characters (CJK, most emoji) two, combining marks and
    variation selectors none, everything else one."""
    if text.isascii():  # the common case, and a status of 1,500 plans measures 24,000 cells
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def pad(text: str, width: int, *, right: bool = False) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if right else text + fill


def table(rows: Sequence[Sequence[str]], *, right_from: int | None = None) -> list[str]:
    """Rows as aligned lines (two spaces between columns, trailing blanks stripped); cells from
    column `right_from` on are right-aligned (numbers)."""
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(pad(c, w, right=right_from is not None and i >= right_from)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def printable(text: str) -> str:
    """A name as a terminal may show it: control and format characters escaped, never interpreted.

    The one rule is perfd.safetext.shown (the same escapes in every command's output).
    """
    from perfd.safetext import shown

    return shown(text)
