"""The engine's cold parse on every core and its two stores (parsed files, decided answers).

A part of perfd.engine.engine.Engine (which inherits it), kept in its own module so that each
file reads in one go; the attributes below are the engine's, set in Engine.__init__.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from perfd.engine import answer_store, parse_store
from perfd.engine.cache import StatCache
from perfd.engine.parse_pool import Parsed, parse_many, stop_idle
from perfd.engine.workspace import PlanFiles, PlanRef, Workspace

if TYPE_CHECKING:
    from perfd.engine.types import PlanDoc

# More cold plans than this, and a status parses them over worker processes.
PARALLEL_MIN_PLANS = 40
# StatCache entries a plan takes (its files and folder listings), to size the cache to the workspace.
ENTRIES_PER_PLAN = 64


class ColdParse:
    # The engine's, set in Engine.__init__ (declared here for the type checker).
    root: str
    config: dict[str, Any]
    cache: StatCache[Any]
    workspace: Workspace
    parse_workers: int
    parse_store_refusal: str
    _memo: dict[tuple[Any, ...], Any]
    _summary_memo: dict[tuple[Any, ...], Any]
    _files_memo: dict[tuple[Any, ...], Any]
    _room: int
    _capacity_set: bool

    if TYPE_CHECKING:
        def plan_doc(self, plan: PlanRef) -> PlanDoc: ...

        def _files(self, plan: PlanRef, doc: PlanDoc) -> PlanFiles: ...
    # -- cold parse on every core ----------------------------------------------------

    def cold_plan_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        """(kind, path) of the PLAN files that a status would have to parse now."""
        return [("plan", p.path) for p in plans if not self.cache.fresh("plan", p.path)]

    def cold_work_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        """(kind, path) of the SUBPLAN, EXECUTION_TASK and parallel.json files a status would parse now."""
        out: list[tuple[str, str]] = []
        fresh = self.cache.fresh
        for plan in plans:
            files = self._files(plan, self.plan_doc(plan))
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

    def use_workers(self, cold_plans: int) -> bool:
        """Whether parsing this many cold plans (with their files) is worth worker processes."""
        return self.parse_workers > 1 and cold_plans > PARALLEL_MIN_PLANS

    def warm(self, plans: list[PlanRef] | None = None) -> int:
        """Parse what a status needs over worker processes, when more than a few dozen plans are cold.

        Returns how many files the workers parsed (0: few enough to parse here, lazily).
        """
        if self.parse_workers <= 1:
            return 0
        plans = self.workspace.plans() if plans is None else plans
        self.fit_capacity(len(plans))
        cold = self.cold_plan_files(plans)
        if not self.use_workers(len(cold)):
            return 0
        n = 0
        try:
            for batch in parse_many(cold, workers=self.parse_workers, keep=True):  # the same workers, twice
                n += self.store_parsed(batch)
            for batch in parse_many(self.cold_work_files(plans), workers=self.parse_workers):
                n += self.store_parsed(batch)
        finally:
            stop_idle()
        return n

    def load_parsed(self, path: str, *, lazy: bool = False) -> str:
        """Take the persistent parse store at `path` (see perfd.engine.parse_store): files whose stat key
        still holds are not parsed again. Returns why nothing was taken ("" when it was).

        lazy: read it only when a file is first looked for (the reason is then in parse_store_refusal).
        """
        def load() -> parse_store.Loaded:
            loaded, self.parse_store_refusal = parse_store.load(path, root=self.root)
            return loaded

        self.cache.persisted_loader = load
        if not lazy:
            self.cache.take_persisted()
        return self.parse_store_refusal

    def save_parsed(self, path: str) -> int:
        """Write what the cache holds parsed to the persistent store at `path`; returns its size in bytes.

        Entries of the store read at start that no lookup has taken yet are kept (least recently used);
        a store never read (a restart answered from stored answers alone) is read first, for them.
        """
        cache = self.cache
        cache.take_persisted()
        held = cache.packed_values()
        in_cache = {(k, p) for k, p, _key, _v in held}
        kept = [(k, p, key, v) for (k, p), (key, v) in cache.persisted.items() if (k, p) not in in_cache]
        return parse_store.save(path, kept + held, root=self.root)

    def load_answers(self, path: str) -> tuple[int, str]:
        """Take the answers stored at `path` (see perfd.engine.answer_store) back into the memos.

        Each is stat-checked, input by input, before its first use. Returns how
        many were taken, and why none were ("" when some were).
        """
        restored, why = answer_store.load(path, root=self.root, config=answer_store.config_digest(self.config))
        now = time.monotonic()
        stores = {"status": self._memo, "summary": self._summary_memo, "files": self._files_memo}
        plans = 0
        for r in restored:
            kind = str(r.key[0])
            plans += kind == "summary"
            stores[kind][r.key] = (r.inputs, now, r.value, None, frozenset([i[0] for i in r.inputs]))
        self.fit_capacity(plans)
        return len(restored), why

    def save_answers(self, path: str) -> int:
        """Write the memoised status, plan summaries and plan files to `path`; returns the bytes written."""
        answers: list[tuple[tuple[Any, ...], answer_store.Inputs, object]] = []
        for memo in (self._memo, self._summary_memo, self._files_memo):
            for key, (inputs, _t, value, _o, _p) in memo.items():
                if key[0] in ("status", "summary", "files"):
                    answers.append((key, inputs, value))
        return answer_store.save(path, answers, root=self.root, config=answer_store.config_digest(self.config))

    def fit_capacity(self, plans: int) -> None:
        """Unless [cache] capacity says otherwise, hold the whole workspace (a plan is a few dozen entries)."""
        self._room = max(self._room, 2 * plans)
        if not self._capacity_set:
            self.cache.capacity = max(self.cache.capacity, ENTRIES_PER_PLAN * plans)

