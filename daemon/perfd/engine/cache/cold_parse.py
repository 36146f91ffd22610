"""The engine's cold start: parsing on every core, and the two stores (parsed files, decided answers).

A collaborator the Engine makes and holds (Engine.cold): it is given the
cache, the memos, the worker pool, the two stores, and the few answers it
needs of the engine (a narrow PlanAnswers), and shares nothing else with it.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

import msgspec

from perfd.engine.cache.answer_store import AnswerKey, AnswerStore, AnswerValue, Packer
from perfd.engine.cache.parse_store import Loaded, Packing, ParseStore
from perfd.engine.cache.cache import Inputs, StatCache, StatKey
from perfd.engine.cache.memo import Answers, FilesKey, Memo, Memos, StatusKey, SummaryKey
from perfd.engine.cache.parse_pool import (LISTED_DEC, PARSED_DEC, FilesAnswer, Listed, Parsed, PlanHead, PlanPart,
                                           SummaryAnswer, WorkerPool)
from perfd.engine.types import PlanSummary, WorkspaceStatus
from perfd.engine.workspace import NAMES, PlanFiles, PlanRef, Workspace

K = TypeVar("K")
V = TypeVar("V")

# More cold plans than this, and a status parses them over worker processes.
PARALLEL_MIN_PLANS = 40
# StatCache entries a plan takes (its files and folder listings), to size the cache to the workspace.
ENTRIES_PER_PLAN = 64


class PlanAnswers(Protocol):
    """What the cold start needs of the engine: a plan's memoised status line and files."""

    def plan_summary(self, plan: PlanRef) -> PlanSummary: ...

    def plan_files(self, plan: PlanRef) -> PlanFiles: ...


class ColdStart:
    """Parse what a status needs over worker processes; take what workers worked out; load and save
    the two stores."""

    def __init__(self, *, config: dict[str, object], cache: StatCache, workspace: Workspace,
                 memos: Memos, answers: Answers, pool: WorkerPool, plans: PlanAnswers,
                 parse_store: ParseStore, answer_store: AnswerStore, capacity_set: bool) -> None:
        self.config = config
        self.cache = cache
        self.workspace = workspace
        self.memos = memos
        self.answers = answers
        self.pool = pool
        self.plans = plans
        self.parse_store = parse_store
        self.answer_store = answer_store
        self.capacity_set = capacity_set  # [cache] capacity was set: fit_capacity leaves the cache's alone
        self.parse_store_refusal = ""  # why the parse store was not used ("" when it was, or not read yet)
        self._held_later: list[tuple[msgspec.Raw, msgspec.Raw]] = []  # packed by parse workers: see take_held
        self._interned: dict[str, str] = {}

    # -- cold parse on every core ----------------------------------------------------

    def cold_plan_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        """(kind, path) of the PLAN files that a status would have to parse now: not those of plans whose
        status line is memoised (worked out by a worker, or restored), which a status takes as it is."""
        memo, fresh = self.memos.summary, self.cache.fresh
        return [("plan", p.path) for p in plans if SummaryKey(p) not in memo and not fresh("plan", p.path)]

    def cold_work_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        """(kind, path) of the SUBPLAN, EXECUTION_TASK and parallel.json files a status would parse now."""
        out: list[tuple[str, str]] = []
        fresh = self.cache.fresh
        for plan in plans:
            files = self.plans.plan_files(plan)
            out += [("subplan", r.path) for r in files.subplans if not fresh("subplan", r.path)]
            out += [("execution", r.path) for r in files.executions if not fresh("execution", r.path)]
            if files.parallel and not fresh("parallel", files.parallel):
                out.append(("parallel", files.parallel))
        return out

    def store_parsed(self, batch: Iterable[Parsed]) -> int:
        """Hold files parsed by workers (unreadable ones are left for the next lookup to report)."""
        n = 0
        for p in batch:
            if p.key is not None:
                self.cache.put(p.kind, p.path, p.key, bytes(p.value), racy_digest=p.racy)
                n += 1
        return n

    # -- whole plans worked out by parse workers (see parse_pool.decide_many) -------------------

    def packed_config(self) -> bytes | None:
        """The configuration as a plan job carries it to a worker (None: it cannot be packed)."""
        try:
            return msgspec.msgpack.encode(self.config)
        except (TypeError, ValueError, msgspec.EncodeError):
            return None

    def plan_part(self, plan: PlanRef) -> PlanPart:
        """(In a parse worker) `plan` worked out from nothing: its status line, as status() would decide it,
        with every file parsed, folder listed and answer memoised on the way.

        The part holds what this plan read: the per-plan memos start empty, and the
        cache's entries are those of the paths it looked up (a folder shared by loose
        plans stays listed from one plan to the next).
        """
        cache, memos = self.cache, self.memos
        memos.summary.clear()
        memos.files.clear()
        with cache.recording() as rec:
            self.plans.plan_summary(plan)
        read = [path for path, _key in rec.inputs]
        parsed: list[Parsed] = []
        listed: list[Listed] = []
        for kind, path, key, racy, value in cache.held(read):
            if cache.held_packed(kind):
                if not isinstance(value, bytes):
                    return PlanPart(plan)  # held unpacked (a name that is not UTF-8): the caller works it out
                parsed.append(Parsed(kind, path, key, racy, msgspec.Raw(value)))
            elif kind == NAMES and isinstance(value, tuple):
                names, outside = value
                listed.append(Listed(path, key, racy, names, outside))
            # (the shared folders' listings, which the caller listed to find the plans, are not sent back)
        files = [FilesAnswer(k.archive, e.inputs, e.value) for k, e in memos.files.items()]
        summary = None
        for _k, e in memos.summary.items():
            summary = SummaryAnswer(e.inputs, e.value)
        return PlanPart(plan, parsed, listed, cache.links(), files, summary)  # (links: a few, usually none)

    def take_parts(self, parts: Iterable[PlanHead], *, stamped: float) -> None:
        """Hold what parse workers worked out (see plan_part): each plan's files and status line, memoised
        as of `stamped` (when the work was handed out); its parsed files and folder listings stay
        packed until take_held.

        As valid as if worked out here: every later use checks their stat keys (and
        no watcher vouches for them, so the first use stat-checks each answer).
        A bare part adds nothing: its plan is worked out here when asked.
        """
        cache, memos = self.cache, self.memos
        one = self._interned  # one string per path, however many entries and answers name it
        for part in parts:
            if part.links:
                cache.note_links(part.links)
            for a in part.files:
                self._take_answer(memos.files, FilesKey(part.plan, a.archive), a.inputs, a.value, stamped, one)
            if part.summary is not None:
                self._take_answer(memos.summary, SummaryKey(part.plan), part.summary.inputs,
                                  part.summary.value, stamped, one)
            self._held_later.append((part.parsed, part.listed))

    def take_held(self) -> int:
        """Hold the parsed files and folder listings that take_parts left packed (a request that needed one
        meanwhile read it itself). Returns how many files were held."""
        return sum(self.taking_held())

    def taking_held(self) -> Iterator[int]:
        """take_held one worker's batch at a time, yielding how many files each held: between two, the
        caller may serve requests (what is not held yet they read themselves, as before take_held)."""
        cache = self.cache
        one = self._interned
        held, self._held_later, self._interned = self._held_later, [], {}
        for parsed, listed in held:
            try:
                files, folders = PARSED_DEC.decode(parsed), LISTED_DEC.decode(listed)
            except msgspec.DecodeError:
                continue  # (a worker's answer cut short: those files are read here when asked)
            n = 0
            for p in files:
                if p.key is not None:
                    cache.put(p.kind, one.setdefault(p.path, p.path), p.key, bytes(p.value), racy_digest=p.racy)
                    n += 1
            for f in folders:
                cache.put_folder(NAMES, one.setdefault(f.path, f.path), f.key, (f.names, f.outside),
                                 racy_digest=f.racy)
            yield n

    def _take_answer(self, memo: Memo[K, V], key: K, inputs: Inputs, value: V, stamped: float,
                     one: dict[str, str]) -> None:
        self.answers.take(memo, key, [(one.setdefault(path, path), k) for path, k in inputs], value, stamped,
                          worked_out=True)

    def likely_large(self) -> bool:
        """Whether the plans folder holds more than PARALLEL_MIN_PLANS entries (one listing, nothing read):
        a cold status of it will likely want worker processes."""
        try:
            with os.scandir(self.workspace.plans_dir) as entries:
                return sum(1 for _ in itertools.islice(entries, PARALLEL_MIN_PLANS + 1)) > PARALLEL_MIN_PLANS
        except OSError:
            return False

    def use_workers(self, cold_plans: int) -> bool:
        """Whether parsing this many cold plans (with their files) is worth worker processes."""
        return self.pool.size > 1 and cold_plans > PARALLEL_MIN_PLANS

    def warm(self, plans: list[PlanRef] | None = None) -> int:
        """Parse what a status needs over worker processes, when more than a few dozen plans are cold.

        Returns how many files the workers parsed (0: few enough to parse here, lazily).
        """
        if self.pool.size <= 1:
            return 0
        plans = self.workspace.plans() if plans is None else plans
        self.fit_capacity(len(plans))
        cold = self.cold_plan_files(plans)
        if not self.use_workers(len(cold)):
            return 0
        n = 0
        try:
            for batch in self.pool.parse_many(cold, keep=True):  # the same workers, twice
                n += self.store_parsed(batch)
            for batch in self.pool.parse_many(self.cold_work_files(plans)):
                n += self.store_parsed(batch)
        finally:
            self.pool.stop_idle()
        return n

    def load_parsed(self, path: str, *, lazy: bool = False) -> str:
        """Take the persistent parse store at `path` (see perfd.engine.cache.parse_store): files whose stat key
        still holds are not parsed again. Returns why nothing was taken ("" when it was).

        lazy: read it only when a file is first looked for (the reason is then in parse_store_refusal).
        """
        def load() -> Loaded:
            loaded, self.parse_store_refusal = self.parse_store.load(path)
            return loaded

        self.cache.load_persisted(load, lazy=lazy)
        return self.parse_store_refusal

    def save_parsed(self, path: str) -> int:
        """Write what the cache holds parsed to the persistent store at `path`; returns its size in bytes.

        Entries of the store read at start that no lookup has taken yet are kept (least recently used);
        a store never read (a restart answered from stored answers alone) is read first, for them.
        """
        return self.parse_store.save(path, self.cache.to_persist())

    def parse_packing(self, entries: list[tuple[str, str, StatKey, bytes]]) -> Packing:
        """save_parsed in slices: the store file's bytes for `entries` (StatCache.to_persist, taken earlier),
        packed a slice at a time (see parse_store.Packing)."""
        return self.parse_store.packing(entries)

    def load_answers(self, path: str) -> tuple[int, str]:
        """Take the answers stored at `path` (see perfd.engine.cache.answer_store) back into the memos.

        Each is stat-checked, input by input, before its first use. Returns how
        many were taken, and why none were ("" when some were).
        """
        restored, why = self.answer_store.load(path)
        now = time.monotonic()
        memos, take = self.memos, self.answers.take
        plans = 0
        for r in restored:
            key, value = r.key, r.value
            if isinstance(key, SummaryKey) and isinstance(value, PlanSummary):
                take(memos.summary, key, r.inputs, value, now)
                plans += 1
            elif isinstance(key, FilesKey) and isinstance(value, PlanFiles):
                take(memos.files, key, r.inputs, value, now)
            elif isinstance(key, StatusKey) and isinstance(value, WorkspaceStatus):
                take(memos.status, key, r.inputs, value, now)
        self.fit_capacity(plans)
        return len(restored), why

    def answers_to_store(self) -> list[tuple[AnswerKey, Inputs, AnswerValue]]:
        """The memoised status, plan summaries and plan files, with their inputs: what save_answers writes."""
        memos = self.memos
        out: list[tuple[AnswerKey, Inputs, AnswerValue]] = []
        out += [(k, e.inputs, e.value) for k, e in memos.status.items()]
        out += [(k, e.inputs, e.value) for k, e in memos.summary.items()]
        out += [(k, e.inputs, e.value) for k, e in memos.files.items()]
        return out

    def save_answers(self, path: str) -> int:
        """Write the memoised status, plan summaries and plan files to `path`; returns the bytes written."""
        return self.answer_store.save(path, self.answers_to_store())

    def answer_packer(self) -> Packer:
        """save_answers in steps, for a daemon that keeps answering meanwhile (see answer_store.Packer)."""
        return self.answer_store.packer()

    def fit_capacity(self, plans: int) -> None:
        """Unless [cache] capacity says otherwise, hold the whole workspace (a plan is a few dozen entries)."""
        self.memos.fit(plans)
        if not self.capacity_set:
            self.cache.capacity = max(self.cache.capacity, ENTRIES_PER_PLAN * plans)

