"""The persistent parse cache: parsed files in one msgpack file, so a restarted daemon need not parse again.

Each entry is keyed by (kind, path) and holds the file's (mtime_ns, size,
inode) when it was parsed; the whole file carries the parser's version (a
digest of the parser's own source) and the workspace root. A loaded entry is
used only when its file still has that stat key, and is not within the racy
window (see perfd.engine.cache), exactly as the in-memory cache would.

Safety: the file is read only when it is a regular file of ours, not writable
by group or others, no larger than the bound, and never through a symlink
(O_NOFOLLOW); it is written to a private temporary file (O_EXCL|O_NOFOLLOW,
0600) and renamed into place. Anything else (damaged, foreign, another parser
version, another root, too large) is ignored, and the next save rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Literal

import msgspec

from perfd.engine.cache import StatKey

FORMAT = 1
MAX_BYTES = 256 * 1024 * 1024  # the bound on the file: past it, the least recently used entries are left out
STORED_KINDS = frozenset({"plan", "subplan", "execution", "fix", "approved", "parallel"})
_PARSER_MODULES = ("plan_parser", "plan_assembly", "docs_parser", "text", "types", "kinds", "parse_store")


class Entry(msgspec.Struct, array_like=True):
    kind: str
    path: str
    key: StatKey
    value: msgspec.Raw  # the parsed value, packed (msgpack) as the cache holds it: never unpacked here


class Header(msgspec.Struct):
    format: int
    parser: str  # parser_version() of the perfd that wrote it
    root: str


class StoreFile(msgspec.Struct):
    header: Header
    entries: list[Entry]


class _HeaderOnly(msgspec.Struct):
    header: Header


Loaded = dict[tuple[str, str], tuple[StatKey, bytes]]  # (kind, path) -> (stat key, packed value)
Refusal = Literal["", "missing", "symlink", "foreign", "writable-by-others", "not-a-file", "too-large",
                  "damaged", "other-version", "other-root"]

_version: str | None = None


def parser_version() -> str:
    """A digest of the parser's source and msgspec's version: any change to either invalidates the store."""
    global _version
    if _version is None:
        h = hashlib.blake2b(digest_size=12)
        h.update(msgspec.__version__.encode())
        here = os.path.dirname(os.path.abspath(__file__))
        for name in _PARSER_MODULES:
            try:
                with open(os.path.join(here, name + ".py"), "rb") as f:
                    h.update(f.read())
            except OSError:
                h.update(b"missing " + name.encode())
        _version = h.hexdigest()
    return _version


def load(path: str, *, root: str, max_bytes: int = MAX_BYTES) -> tuple[Loaded, Refusal]:
    """The entries stored for `root` at `path`, or ({}, why not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}, "missing"
    except OSError:
        return {}, "symlink" if os.path.islink(path) else "not-a-file"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return {}, "not-a-file"
        if st.st_uid != os.getuid():
            return {}, "foreign"
        if st.st_mode & 0o022:
            return {}, "writable-by-others"
        if st.st_size > max_bytes:
            return {}, "too-large"
        chunks = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    try:
        stored = msgspec.msgpack.decode(data, type=StoreFile)  # one pass: the header is checked after
    except (msgspec.DecodeError, msgspec.ValidationError):
        try:
            header = msgspec.msgpack.decode(data, type=_HeaderOnly).header
        except (msgspec.DecodeError, msgspec.ValidationError):
            return {}, "damaged"
        return {}, "damaged" if header.parser == parser_version() else "other-version"
    header = stored.header
    if header.format != FORMAT or header.parser != parser_version():
        return {}, "other-version"
    if header.root != root:
        return {}, "other-root"
    prefix = root.rstrip(os.sep) + os.sep
    out: Loaded = {}
    for e in stored.entries:
        if e.kind in STORED_KINDS and e.path.startswith(prefix):
            out[(e.kind, e.path)] = (e.key, bytes(e.value))
    return out, ""


def save(path: str, entries: list[tuple[str, str, StatKey, bytes]], *, root: str, max_bytes: int = MAX_BYTES) -> int:
    """Write `entries` ((kind, path, stat key, packed value), most recently used last) for `root`, atomically.

    Returns the bytes written. Past `max_bytes`, the least recently used
    entries are left out. OSError when the folder cannot take the file.
    """
    rows = [Entry(kind, p, key, msgspec.Raw(value)) for kind, p, key, value in entries if kind in STORED_KINDS]
    header = Header(FORMAT, parser_version(), root)
    data = msgspec.msgpack.encode(StoreFile(header, rows))
    while len(data) > max_bytes and rows:
        rows = rows[len(rows) // 4 + 1:]  # keep the most recently used three quarters
        data = msgspec.msgpack.encode(StoreFile(header, rows))
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)  # a leftover of a killed writer with our pid
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    return len(data)
