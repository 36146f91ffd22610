"""Whole answers, memoised on the files and folders they read.

An answer (a workspace status, a plan's status line, a plan's files, a prompt)
is valid while every input it read has the stat key it had: a warm call is one
stat per input and no parsing, or, while a healthy watcher vouches for the
inputs under the plans folder, a stat of the few it does not vouch for.

`Memo` holds the answers of one kind (typed keys, one eviction path); `Answers`
is the one way an answer is looked up or worked out (`recall`), with the
counters that perfd stats reports.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, ItemsView, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import msgspec

from perfd.engine.cache.cache import RACY_WINDOW_NS, Inputs, StatCache, stat_key
from perfd.engine.ownership import PlanRef
from perfd.engine.types import GenerateResult, PlanDoc, PlanStatus, PlanSummary, WorkspaceStatus
from perfd.engine.workspace import PlanFiles

K = TypeVar("K")
V = TypeVar("V")


# -- keys: one small frozen type per kind of answer ---------------------------------------


class StatusKey(msgspec.Struct, frozen=True):
    """The workspace's status (one answer)."""


class SummaryKey(msgspec.Struct, frozen=True):
    """A plan's line of a status."""

    plan: PlanRef


class FilesKey(msgspec.Struct, frozen=True):
    """A plan's files, found with its archive location."""

    plan: PlanRef
    archive: str | None


class GenerateKey(msgspec.Struct, frozen=True):
    """A prompt: for a plan (or a reference to one, resolved from `cwd`), one achievement or the next."""

    plan: str | PlanRef
    cwd: str | None
    achievement: str | None
    trust_plan: bool


class BufferKey(msgspec.Struct, frozen=True):
    """A plan's status with an editor's buffer (one parse of it, by id) in place of the file."""

    path: str
    doc: int
    trust_plan: bool


# -- entries and the memo ----------------------------------------------------------------


class Entry(Generic[V]):
    """One memoised answer and what it read."""

    __slots__ = ("inputs", "stored", "value", "outside", "paths")

    def __init__(self, inputs: Inputs, stored: float, value: V, outside: Inputs | None) -> None:
        self.inputs = inputs
        self.stored = stored  # when its computation started (time.monotonic()), or when last checked
        self.value = value
        # The inputs no watcher vouches for (templates, links); None: not worked out (no watcher then).
        self.outside = outside
        # The inputs' paths as a set: what Memo.drop_touching looks up, so that an event costs what it touches.
        self.paths = frozenset([i[0] for i in inputs])


class Memo(Generic[K, V]):
    """Answers of one kind by key; when full, the oldest stored goes first."""

    __slots__ = ("capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: dict[K, Entry[V]] = {}

    def get(self, key: K) -> Entry[V] | None:
        return self._entries.get(key)

    def put(self, key: K, entry: Entry[V]) -> None:
        """Hold `entry` under `key` (in place of the one held; else making room first: the one eviction)."""
        entries = self._entries
        if key not in entries:
            while len(entries) >= self.capacity:
                del entries[next(iter(entries))]
        entries[key] = entry

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)

    def drop_touching(self, touched: Callable[[frozenset[str]], bool]) -> int:
        """Drop every answer whose inputs' paths `touched` says were touched; returns how many."""
        doomed = [k for k, e in self._entries.items() if touched(e.paths)]
        for k in doomed:
            del self._entries[k]
        return len(doomed)

    def clear(self) -> None:
        self._entries.clear()

    def items(self) -> ItemsView[K, Entry[V]]:
        return self._entries.items()

    def __contains__(self, key: K) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


PER_PLAN_ROOM = 256  # entries kept in the per-plan memos at first (fit() makes room for every plan)


class Memos:
    """The engine's memos, one per kind of answer."""

    def __init__(self) -> None:
        self.status: Memo[StatusKey, WorkspaceStatus] = Memo(1)
        self.generate: Memo[GenerateKey, GenerateResult] = Memo(256)
        # Statuses of editors' buffers, apart: every edit makes a new one, and each holds a
        # whole parse, so only the latest few are kept.
        self.buffer: Memo[BufferKey, tuple[PlanDoc, PlanStatus]] = Memo(8)
        self.summary: Memo[SummaryKey, PlanSummary] = Memo(PER_PLAN_ROOM)  # each plan's line of a status
        self.files: Memo[FilesKey, PlanFiles] = Memo(PER_PLAN_ROOM)  # each plan's files

    def fit(self, plans: int) -> None:
        """Room in the per-plan memos for `plans` plans (twice over: plans come and go)."""
        room = max(self.summary.capacity, 2 * plans)
        self.summary.capacity = self.files.capacity = room

    def drop_touching(self, touched: Callable[[frozenset[str]], bool]) -> None:
        """Drop every answer that read a path `touched` says was touched."""
        self.status.drop_touching(touched)
        self.generate.drop_touching(touched)
        self.buffer.drop_touching(touched)
        self.summary.drop_touching(touched)
        self.files.drop_touching(touched)

    def inputs(self) -> Iterator[Inputs]:
        """What every memoised answer read (what a verification pass stats)."""
        for memo in (self.status, self.generate, self.buffer, self.summary, self.files):
            for _key, entry in memo.items():
                yield entry.inputs

    def clear(self) -> None:
        self.status.clear()
        self.generate.clear()
        self.buffer.clear()
        self.summary.clear()
        self.files.clear()


# -- looking answers up -----------------------------------------------------------------------


class Answers:
    """Answers memoised on what they read through `cache`: the one lookup (recall) and its counters."""

    def __init__(self, cache: StatCache) -> None:
        self.cache = cache
        self.hits = 0
        self.misses = 0  # answers computed (for the answer level's hit rate in perfd stats)
        self.stat_checks = 0  # memoised answers validated by stat (no watcher vouching for them)
        self.asked_at: float | None = None  # while answering a request: when it arrived (see answering())

    def recall(self, memo: Memo[K, V], key: K, compute: Callable[[], V]) -> V:
        """compute(), or its memoised value while every file and folder it read is unchanged.

        Calls nest: a memoised answer computed (or found) while an outer one is
        being computed adds its inputs to the outer one's.
        """
        cache = self.cache
        # Read-your-writes: the watcher's pending events (every change made before this call) are taken
        # before a memoised answer is trusted on its word.
        cache.sync_for_answer()
        hit = memo.get(key)
        if hit is not None:
            stored = hit.stored
            if time.monotonic() - stored <= cache.ttl_s:
                if self.asked_at is not None and stored >= self.asked_at:
                    # Worked out since the request arrived (by the warm-up it waited for): as fresh
                    # as working it out for this request would be.
                    self.hits += 1
                    cache.note(hit.inputs)
                    return hit.value
                outside = hit.outside
                if outside is not None and cache.watched_since(stored):
                    # A healthy watcher vouches for the rest: only these few are stat'ed.
                    if _unchanged(outside):
                        self.hits += 1
                        cache.note(hit.inputs)
                        return hit.value
                else:
                    self.stat_checks += 1
                    if _unchanged(hit.inputs):
                        self.hits += 1
                        if cache.trusting:  # checked now: vouched for from here on
                            hit.stored, hit.outside = time.monotonic(), self.unvouched(hit.inputs)
                        cache.note(hit.inputs)
                        return hit.value
            memo.drop(key)
        self.misses += 1
        start_ns = time.time_ns()
        # Stamped when the computation starts, the conservative side: a watcher that came up
        # while it ran must not vouch for inputs read before it watched.
        started = time.monotonic()
        with cache.recording() as rec:
            value = compute()
        inputs = list(dict.fromkeys(rec.inputs))
        outside = self.unvouched(inputs) if cache.trusting else None
        # Inputs written within the racy window are re-verified by content in the StatCache;
        # memoising on their stat alone would skip that check (a watcher's events do not).
        if start_ns - rec.newest_mtime_ns >= RACY_WINDOW_NS or outside == []:
            memo.put(key, Entry(inputs, started, value, outside))
        return value

    def take(self, memo: Memo[K, V], key: K, inputs: Inputs, value: V, stamped: float, *,
             worked_out: bool = False) -> None:
        """Hold an answer worked out elsewhere (a worker, a store) as of `stamped`: no watcher vouches
        for it, so its first use stat-checks every input. `worked_out`: counted as computed (a worker
        worked it out for this engine), not as found (restored from a store)."""
        memo.put(key, Entry(inputs, stamped, value, None))
        self.misses += worked_out

    @contextmanager
    def answering(self, asked_at: float) -> Iterator[None]:
        """While answering a request that arrived at `asked_at` (time.monotonic()).

        A memoised answer whose computation started since (every file and folder it
        read was read after the request arrived) is taken without checking its inputs
        again, as an answer worked out for this request would be; older ones are
        checked as always.
        """
        outer, self.asked_at = self.asked_at, asked_at
        try:
            yield
        finally:
            self.asked_at = outer

    def unvouched(self, inputs: Inputs) -> Inputs:
        """The inputs a trusted watcher does not vouch for: outside its folders, in one it could not watch,
        or behind a symlink."""
        watched = self.cache.watched
        return [item for item in inputs if not watched(item[0])]


def _unchanged(inputs: Inputs) -> bool:
    stat = os.stat
    for path, key in inputs:
        try:
            st = stat(path)
        except OSError:
            if key is not None:
                return False
            continue
        if key is None or stat_key(st) != key:
            return False
    return True
