"""Turning file bytes into text that the parsers can trust.

Parsing is total: whatever the bytes (binary, invalid UTF-8, a BOM, CRLF, a
5 MB single line), the caller gets text plus problems, never an exception.
"""

from __future__ import annotations

from perfd.engine.types import Problem
from perfd.fsutil import read_regular

# Plans are hand-written markdown; anything past this is not a plan, and
# reading it whole would stall the daemon's event loop for everyone.
MAX_BYTES = 32 * 1024 * 1024
# Header and marker regexes only look at lines up to this length: no real
# header is longer, and it bounds regex work on pathological single-line files.
MAX_LINE = 4096

_BOM = b"\xef\xbb\xbf"


def decode(data: bytes, path: str) -> tuple[str, list[Problem]]:
    """Text of a markdown file, with problems for anything that was not clean."""
    problems: list[Problem] = []
    if len(data) > MAX_BYTES:
        problems.append(
            Problem(
                "file-too-large",
                f"file is {len(data)} bytes; perfd reads plan files up to {MAX_BYTES} bytes",
                "error",
                path,
            )
        )
        return "", problems
    if b"\x00" in data[:8192]:
        problems.append(Problem("binary-file", "file looks binary (NUL bytes); not parsed", "error", path))
        return "", problems
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Lines as the parsers will see them: CRLF, CR and LF each end one.
        line = (data.count(b"\n", 0, exc.start) + data.count(b"\r", 0, exc.start)
                - data.count(b"\r\n", 0, exc.start) + 1)
        problems.append(
            Problem(
                "invalid-utf8",
                f"invalid UTF-8 at byte {exc.start}; undecodable bytes replaced with U+FFFD",
                "warning",
                path,
                line,
            )
        )
        text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, problems


def read_bytes(path: str) -> bytes:
    """A file's bytes, at most MAX_BYTES + 1 of them (decode reports a larger file), refusing
    (OSError) anything that is not a regular file, such as a FIFO named like a plan."""
    return read_regular(path, limit=MAX_BYTES)
