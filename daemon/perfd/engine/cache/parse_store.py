"""The persistent parse cache: parsed files in one msgpack file, so a restarted daemon need not parse again.

Each entry is keyed by (kind, path) and holds the file's (mtime_ns, size,
inode, ctime_ns) when it was parsed; the whole file carries the parser's version (a
digest of the parser's own source) and the workspace root. A loaded entry is
used only when its file still has that stat key, and is not within the racy
window (see perfd.engine.cache.cache), exactly as the in-memory cache would.

Safety (perfd.engine.cache.private_file): the file is read only when it is a
regular file of ours, not writable by group or others, no larger than the
bound, and never through a symlink (O_NOFOLLOW); it is written to a private
temporary file (O_EXCL|O_NOFOLLOW, 0600) and renamed into place. Anything else (damaged, foreign, another parser
version, another root, too large) is ignored, and the next save rebuilds it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec

from perfd.engine.cache.cache import StatKey
from perfd.engine.cache.private_file import (Refusal, msgpack_array_header, packed_items, read_private, source_digest,
                                             write_private)

FORMAT = 2  # 2: stat keys hold st_ctime_ns
MAX_BYTES = 256 * 1024 * 1024  # the bound on the file: past it, the least recently used entries are left out
STORED_KINDS = frozenset({"plan", "subplan", "execution", "fix", "approved", "parallel"})
# The modules whose code decides what a parse gives, relative to the engine package.
_PARSER_MODULES = ("plan_parser", "plan_assembly", "docs_parser", "text", "types", "kinds", "cache/parse_store")


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

_version: str | None = None


def parser_sources() -> list[str]:
    """The source files parser_version digests (every one of them must exist)."""
    engine_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [os.path.join(engine_dir, *n.split("/")) + ".py" for n in _PARSER_MODULES]


def parser_version() -> str:
    """A digest of the parser's source and msgspec's version: any change to either invalidates the store."""
    global _version
    if _version is None:
        _version = source_digest(parser_sources())
    return _version


def load(path: str, *, root: str, max_bytes: int = MAX_BYTES) -> tuple[Loaded, Refusal]:
    """The entries stored for `root` at `path`, or ({}, why not)."""
    data, why = read_private(path, max_bytes=max_bytes)
    if why:
        return {}, why
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
    Reads nothing but `entries` (immutable): the daemon calls it in a thread.
    """
    data = pack(entries, root=root, max_bytes=max_bytes)
    write_private(path, data)
    return len(data)


def pack(entries: list[tuple[str, str, StatKey, bytes]], *, root: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The store file's bytes for `entries` (see save)."""
    rows = [Entry(kind, p, key, msgspec.Raw(value)) for kind, p, key, value in entries if kind in STORED_KINDS]
    header = Header(FORMAT, parser_version(), root)
    data = msgspec.msgpack.encode(StoreFile(header, rows))
    while len(data) > max_bytes and rows:
        rows = rows[len(rows) // 4 + 1:]  # keep the most recently used three quarters
        data = msgspec.msgpack.encode(StoreFile(header, rows))
    return data


class Packing:
    """pack() in slices, for a daemon that keeps answering meanwhile: each of `steps` packs a slice of the
    rows (requests may be served between two), then `data` is the file's bytes, pack()'s byte for byte.
    Reads nothing but `entries` (immutable)."""

    def __init__(self, entries: list[tuple[str, str, StatKey, bytes]], *, root: str, max_bytes: int = MAX_BYTES) -> None:
        self.entries, self.root, self.max_bytes = entries, root, max_bytes
        self._parts: list[bytes] = []

    def steps(self, step: int = 2000) -> Iterator[int]:
        """Pack `step` rows a step; yields how many."""
        stored = [e for e in self.entries if e[0] in STORED_KINDS]
        head = msgspec.msgpack.encode(StoreFile(Header(FORMAT, parser_version(), self.root), []))
        self._parts = [head[:-1], msgpack_array_header(len(stored))]  # (the rows are the last field)
        for i in range(0, len(stored), step):
            rows: list[object] = [Entry(kind, p, key, msgspec.Raw(value)) for kind, p, key, value in stored[i:i + step]]
            self._parts.append(packed_items(rows))
            yield len(rows)

    def data(self) -> bytes:
        data = b"".join(self._parts)
        if not self._parts or len(data) > self.max_bytes:
            return pack(self.entries, root=self.root, max_bytes=self.max_bytes)  # (leaves the oldest out)
        return data


class ParseStore:
    """The parse store of the workspace at `root`, as a service the engine's cold start is given."""

    def __init__(self, root: str) -> None:
        self.root = root

    def load(self, path: str) -> tuple[Loaded, Refusal]:
        """The entries stored at `path`, or ({}, why not): see load()."""
        return load(path, root=self.root)

    def save(self, path: str, entries: list[tuple[str, str, StatKey, bytes]]) -> int:
        """Write `entries` to `path`; the bytes written: see save()."""
        return save(path, entries, root=self.root)

    def packing(self, entries: list[tuple[str, str, StatKey, bytes]]) -> Packing:
        """pack() in slices (see Packing)."""
        return Packing(entries, root=self.root)
