"""LSP's `character`: counted in the units the client and server agreed on at initialize.

Python indexes a line by code points; LSP counts UTF-16 code units unless the
client offered another encoding (`general.positionEncodings`; Neovim offers
UTF-8 first, and pygls takes the client's first choice it knows). An emoji
such as 📋, in every plan's headers, is one code point, two UTF-16 units and
four UTF-8 bytes: a column taken from the wrong count lands on the wrong
character. Every column a feature reads or writes goes through one Units.
"""

from __future__ import annotations


class Units:
    """Columns in one encoding ("utf-8", "utf-16" or "utf-32"; anything else is UTF-16, LSP's default)."""

    __slots__ = ("encoding", "_size")

    def __init__(self, encoding: str | None = "utf-16") -> None:
        encoding = getattr(encoding, "value", encoding)  # lsprotocol's PositionEncodingKind, or its string
        self.encoding = encoding if encoding in ("utf-8", "utf-32") else "utf-16"
        self._size = {"utf-8": _utf8, "utf-32": len}.get(self.encoding, _utf16)

    def __repr__(self) -> str:
        return f"Units({self.encoding!r})"

    def width(self, text: str) -> int:
        """The length of `text` in these units."""
        return len(text) if text.isascii() else self._size(text)

    def column(self, line: str, index: int) -> int:
        """The column, in these units, of code point `index` of `line`."""
        return index if line.isascii() else self._size(line[:index])

    def index(self, line: str, column: int) -> int:
        """The code point of `line` at `column` (a column past the end is the end; one inside a
        character, such as half of a UTF-16 surrogate pair, is that character)."""
        if column <= 0:
            return 0
        if line.isascii():
            return min(column, len(line))
        size = self._size
        seen = 0
        for i, ch in enumerate(line):
            seen += size(ch)
            if seen > column:
                return i
        return len(line)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


UTF16 = Units()
