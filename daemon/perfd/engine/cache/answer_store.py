"""The persistent answer store: each plan's status line, files and the workspace status, with their inputs.

A memoised answer (see Engine._memoised) is valid while every file and folder
it read has the stat key it had. Those keys outlive the daemon, so a restarted
daemon can take the answers back and validate them with one stat per input,
instead of listing every folder and decoding and deciding every plan again.

Each answer is stored with its inputs, as indices into one table of
(path, stat key) pairs shared by all answers. The file carries perfd's engine
version (a digest of the engine's source: any change to how answers are
worked out invalidates them), the workspace root and a digest of its
configuration. Answers whose newest input was written within RACY_WINDOW_NS
of the save are left out: a later same-tick rewrite could keep such a stat
key (see perfd.engine.cache.cache). Loaded answers are never trusted as they are:
the engine stat-checks every input before the first use.

Safety as for the parse store (perfd.engine.cache.private_file); anything else
(damaged, foreign, another version, root or configuration, too large) is
ignored, and the next save rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from typing import Literal

import msgspec

from perfd.engine.cache.cache import RACY_WINDOW_NS, Inputs, StatKey
from perfd.engine.cache.memo import FilesKey, StatusKey, SummaryKey
from perfd.engine.ownership import PlanRef
from perfd.engine.cache.private_file import (Refusal, msgpack_array_header, packed_items, read_private, source_digest,
                                             write_private)
from perfd.engine.types import PlanSummary, WorkspaceStatus
from perfd.engine.workspace import PlanFiles

FORMAT = 2  # 2: stat keys hold st_ctime_ns
MAX_BYTES = 64 * 1024 * 1024  # far above what 1,500 plans take (about 10 MB): past it, nothing is stored
Kind = Literal["status", "summary", "files"]
AnswerKey = StatusKey | SummaryKey | FilesKey  # the memo keys of the answers stored
AnswerValue = WorkspaceStatus | PlanSummary | PlanFiles


class Answer(msgspec.Struct, array_like=True):
    kind: Kind
    plan: PlanRef | None  # summary and files: the plan
    archive: str | None  # files: the plan's archive location
    inputs: list[int]  # indices into StoreFile.table
    value: msgspec.Raw  # WorkspaceStatus, PlanSummary or PlanFiles, packed


class Header(msgspec.Struct):
    format: int
    engine: str  # engine_version() of the perfd that wrote it
    root: str
    config: str  # config_digest() of the configuration the answers were worked out with


class StoreFile(msgspec.Struct):
    header: Header
    table: list[tuple[str, StatKey | None]]
    answers: list[Answer]


class _HeaderOnly(msgspec.Struct):
    header: Header


class Restored(msgspec.Struct, frozen=True):
    """One answer taken back: its memo key, inputs and value."""

    key: AnswerKey
    inputs: Inputs
    value: AnswerValue


_version: str | None = None
_VALUE_TYPES: dict[str, type] = {"status": WorkspaceStatus, "summary": PlanSummary, "files": PlanFiles}


def engine_sources() -> list[str]:
    """The source files engine_version digests: every module of the engine package and of engine/cache/."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for folder in (os.path.dirname(here), here):
        out += [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".py")]
    return out


def engine_version() -> str:
    """A digest of every engine module's source and msgspec's version."""
    global _version
    if _version is None:
        _version = source_digest(engine_sources())
    return _version


def config_digest(config: object) -> str:
    """A digest of the configuration ("" when it cannot be packed: then nothing is stored)."""
    try:
        return hashlib.blake2b(msgspec.msgpack.encode(config), digest_size=12).hexdigest()
    except (TypeError, ValueError, msgspec.EncodeError):
        return ""


def memo_key(a: Answer) -> AnswerKey | None:
    """The key the engine memoises the answer under (None: not a well-formed answer)."""
    if a.kind == "status":
        return StatusKey()
    if a.plan is None:
        return None
    if a.kind == "summary":
        return SummaryKey(a.plan)
    return FilesKey(a.plan, a.archive)


def load(path: str, *, root: str, config: str, max_bytes: int = MAX_BYTES) -> tuple[list[Restored], Refusal]:
    """The answers stored for `root` and `config` at `path`, or ([], why not)."""
    data, why = read_private(path, max_bytes=max_bytes)
    if why:
        return [], why
    try:
        stored = msgspec.msgpack.decode(data, type=StoreFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        try:
            header = msgspec.msgpack.decode(data, type=_HeaderOnly).header
        except (msgspec.DecodeError, msgspec.ValidationError):
            return [], "damaged"
        return [], "damaged" if header.engine == engine_version() else "other-version"
    header = stored.header
    if header.format != FORMAT or header.engine != engine_version() or not config or header.config != config:
        return [], "other-version"
    if header.root != root:
        return [], "other-root"
    table = stored.table
    out = []
    try:
        for a in stored.answers:
            key = memo_key(a)
            if key is None:
                return [], "damaged"
            value: AnswerValue = msgspec.msgpack.decode(a.value, type=_VALUE_TYPES[a.kind])
            out.append(Restored(key, [table[i] for i in a.inputs], value))
    except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
        return [], "damaged"
    return out, ""


def save(path: str, answers: list[tuple[AnswerKey, Inputs, AnswerValue]], *, root: str, config: str,
         max_bytes: int = MAX_BYTES, now_ns: int | None = None) -> int:
    """Write `answers` ((memo key, inputs, value)) for `root` atomically; returns the bytes written (0: nothing).

    Answers with an input written within the racy window are left out; with no
    configuration digest, or past `max_bytes`, nothing is written.
    """
    packer = Packer(root=root, config=config, max_bytes=max_bytes, now_ns=now_ns)
    packer.add(answers)
    return packer.write(path)


class Packer:
    """save() in steps, for a daemon that keeps answering meanwhile: `add` packs answers (it reads the
    engine's values: on the engine's loop, a slice at a time), `steps` packs the file a slice at a time
    from the packer's own rows alone, and `data` is its bytes (written in a thread)."""

    def __init__(self, *, root: str, config: str, max_bytes: int = MAX_BYTES, now_ns: int | None = None) -> None:
        self.header = Header(FORMAT, engine_version(), root, config)
        self.max_bytes = max_bytes
        self.limit = (time.time_ns() if now_ns is None else now_ns) - RACY_WINDOW_NS
        self.index: dict[tuple[str, StatKey | None], int] = {}
        self.rows: list[Answer] = []
        self._parts: list[bytes] = []  # the file, packed in steps

    def add(self, answers: list[tuple[AnswerKey, Inputs, AnswerValue]]) -> None:
        limit, index = self.limit, self.index
        for key, inputs, value in answers:
            if any(k is not None and k[0] > limit for _p, k in inputs):
                continue
            kind: Kind
            plan: PlanRef | None = None
            archive: str | None = None
            if isinstance(key, StatusKey):
                kind = "status"
            elif isinstance(key, SummaryKey):
                kind, plan = "summary", key.plan
            else:
                kind, plan, archive = "files", key.plan, key.archive
            ids = [index.setdefault(i, len(index)) for i in inputs]
            self.rows.append(Answer(kind, plan, archive, ids, msgspec.Raw(msgspec.msgpack.encode(value))))

    def steps(self, step: int = 2000) -> Iterator[int]:
        """Once every answer is added, pack the file a slice of `step` rows a step (requests may be served
        between two); yields how many. Without them, `data` packs it at once, to the same bytes."""
        table: list[object] = list(self.index)
        rows: list[object] = list(self.rows)
        # (the table and the answers are the last two fields: ... "table" [] "answers" [])
        answers_key = msgspec.msgpack.encode("answers")
        head = msgspec.msgpack.encode(StoreFile(self.header, [], []))
        if not head.endswith(b"\x90" + answers_key + b"\x90"):
            return  # (another layout: `data` packs it at once)
        parts = [head[:-len(answers_key) - 2]]
        for items, key in ((table, b""), (rows, answers_key)):
            parts += [key, msgpack_array_header(len(items))]
            for i in range(0, len(items), step):
                parts.append(packed_items(items[i:i + step]))
                yield len(items[i:i + step])
        self._parts = parts

    def data(self) -> bytes:
        """The file's bytes (b"": nothing to write, see save)."""
        if not self.header.config:
            return b""
        if self._parts:
            data = b"".join(self._parts)
        else:
            data = msgspec.msgpack.encode(StoreFile(self.header, list(self.index), self.rows))
        return b"" if len(data) > self.max_bytes else data

    def write(self, path: str) -> int:
        """Write what was added to `path` atomically; the bytes written (0: nothing, see save)."""
        data = self.data()
        if data:
            write_private(path, data)
        return len(data)


class AnswerStore:
    """The answer store of the workspace at `root` with `config`, as a service the engine's cold start is given."""

    def __init__(self, root: str, config: object) -> None:
        self.root = root
        self.config = config

    def load(self, path: str) -> tuple[list[Restored], Refusal]:
        """The answers stored at `path` for this root and configuration, or ([], why not): see load()."""
        return load(path, root=self.root, config=config_digest(self.config))

    def save(self, path: str, answers: list[tuple[AnswerKey, Inputs, AnswerValue]]) -> int:
        """Write `answers` to `path`; the bytes written (0: nothing): see save()."""
        return save(path, answers, root=self.root, config=config_digest(self.config))

    def packer(self) -> Packer:
        """A save() in steps (see Packer)."""
        return Packer(root=self.root, config=config_digest(self.config))
