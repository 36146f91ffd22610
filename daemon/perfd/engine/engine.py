"""The engine: one workspace, one cache, answers from memory.

Pure and synchronous: it knows nothing of sockets, LSP or the CLI. Every
answer re-validates its inputs by stat through the StatCache, so a warm call
costs a few stats and dictionary lookups, and a file changed on disk is seen
at once whether or not a watcher told us.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from perfd.config import ConfigError, load_config, table
from perfd.engine.cache.cold_parse import PARALLEL_MIN_PLANS as PARALLEL_MIN_PLANS  # (tests size workspaces by it)
from perfd.engine.cache.cold_parse import ColdParse
from perfd.engine.cache.cache import DEFAULT_CAPACITY, DEFAULT_TTL_S, RACY_WINDOW_NS, StatCache, StatKey
from perfd.engine.docs_parser import parse_parallel
from perfd.engine.errors import UserError
from perfd.engine.kinds import UNPACK, pack, parse_approved, parse_execution, parse_fix, parse_subplan
from perfd.engine.cache.parse_pool import WorkerPool, workers_wanted
from perfd.engine.plan_parser import PlanMemo, parse_plan, parse_plan_text
from perfd.engine.prompts import PromptContext, Templates, build_prompt
from perfd.engine.state import Inputs, decide
from perfd.engine.text import decode
from perfd.engine.workspace import DEFAULT_PLANS_DIR, PlanFiles, PlanRef, Workspace, display_path
from perfd.engine.types import (
    CacheStats,
    FeedbackDoc,
    GenerateResult,
    ParallelGraph,
    PlanDoc,
    PlanStateName,
    PlanStatus,
    PlanSummary,
    Problem,
    WorkDoc,
    WorkspaceStatus,
)


def outside_problem(root: str, path: str, shown_on: str | None) -> Problem:
    """A file perfd would read that is a symlink out of the workspace: skipped, and said so."""
    return Problem("outside-workspace", f"{display_path(root, path)} is a symlink to a file outside the workspace; "
                   "skipped (perfd reads only files inside the workspace)", "warning", shown_on)


def _template(data: bytes, path: str) -> str:
    return decode(data, path)[0]



_Inputs = list[tuple[str, StatKey | None]]
# key -> (inputs, when stored, value, the inputs no watcher vouches for (templates, links; None: not worked
# out), the inputs' paths as a set: what changed() looks up, so an event costs what it touches)
_Memo = dict[tuple[Any, ...], tuple[_Inputs, float, Any, _Inputs | None, frozenset[str]]]


class Engine(ColdParse):
    """Plan state and prompts for the workspace at `root`."""

    def __init__(self, root: str, *, config: dict[str, Any] | None = None, pool: WorkerPool | None = None) -> None:
        self.root = os.path.realpath(root)
        self.config_problems: list[Problem] = []
        if config is None:
            try:
                config = load_config(self.root)
            except ConfigError as exc:
                self.config_problems.append(Problem("config-invalid", str(exc), "error"))
                config = {}
        self.config = config
        cache_cfg = table(config, "cache")
        ws_cfg = table(config, "workspace")
        try:
            capacity = int(cache_cfg.get("capacity", DEFAULT_CAPACITY))
            ttl_s = float(cache_cfg.get("ttl_s", DEFAULT_TTL_S))
            if capacity < 1 or ttl_s <= 0:
                raise ValueError
        except (TypeError, ValueError):
            self.config_problems.append(Problem("config-invalid",
                                                "[cache] capacity must be a positive integer and ttl_s a positive number",
                                                "error"))
            capacity, ttl_s = DEFAULT_CAPACITY, DEFAULT_TTL_S
        # Parsed files are held packed: a quarter of the memory of their objects (see perfd.engine.kinds).
        self.cache = StatCache(capacity=capacity, ttl_s=ttl_s, packed=UNPACK, pack=pack)
        plans_dir = ws_cfg.get("plans_dir", DEFAULT_PLANS_DIR)
        self.workspace = Workspace(self.root, self.cache,
                                   plans_dir=plans_dir if isinstance(plans_dir, str) else DEFAULT_PLANS_DIR)
        self.templates = Templates(self.root, lambda p: self.cache.file("template", p, _template),
                                   outside=lambda p: outside_problem(self.root, p, None))
        self.started = time.time()
        # Whole answers, valid while every file and folder they read has the
        # stat key it had: a warm call is one stat per input and no parsing.
        self._memo: _Memo = {}
        # Statuses of editors' buffers (plan_status_with), apart: every edit makes a
        # new one, and each holds a whole parse, so only the latest few are kept.
        self._buffer_memo: _Memo = {}
        self._summary_memo: _Memo = {}  # each plan's line of a status
        self._files_memo: _Memo = {}  # each plan's files
        self._room = 256  # entries kept in the per-plan memos (fit_capacity makes room for every plan)
        self.memo_hits = 0
        self.memo_misses = 0  # answers computed (for the answer level's hit rate in perfd stats)
        self._held_later: list[tuple[msgspec.Raw, msgspec.Raw]] = []  # packed by parse workers: see take_held
        self._interned: dict[str, str] = {}
        self.memo_stat_checks = 0  # memoised answers validated by stat (no watcher vouching for them)
        self.asked_at: float | None = None  # while answering a request: when it arrived (see answering())
        self.trust_restarts = 0
        self._capacity_set = "capacity" in cache_cfg
        self.parse_store_refusal = ""  # why the parse store was not used ("" when it was, or not read yet)
        # The worker processes of a cold parse: this engine's, stopped by close().
        self.pool = pool if pool is not None else WorkerPool(workers_wanted(cache_cfg.get("parse_workers")))

    def close(self) -> None:
        """Stop the worker processes left running (the engine stays usable: it starts new ones)."""
        self.pool.close()

    @property
    def parse_workers(self) -> int:
        """How many worker processes a cold parse uses (at most)."""
        return self.pool.size

    @parse_workers.setter
    def parse_workers(self, n: int) -> None:
        self.pool.size = n

    def _memoised(self, key: tuple[Any, ...], compute: Any, *, store: _Memo | None = None,
                  capacity: int = 256) -> Any:
        """compute(), or its memoised value while every file and folder it read is unchanged.

        Calls nest: a memoised answer computed (or found) while an outer one is
        being computed adds its inputs to the outer one's.
        """
        memo = self._memo if store is None else store
        cache = self.cache
        hit = memo.get(key)
        if hit is not None:
            inputs, stored, value, outside, paths = hit
            if time.monotonic() - stored <= cache.ttl_s:
                if self.asked_at is not None and stored >= self.asked_at:
                    # Worked out since the request arrived (by the warm-up it waited for): as fresh
                    # as working it out for this request would be.
                    self.memo_hits += 1
                    cache.note(inputs)
                    return value
                if outside is not None and cache.watched_since(stored):
                    # A healthy watcher vouches for the rest: only these few are stat'ed.
                    if _unchanged(outside):
                        self.memo_hits += 1
                        cache.note(inputs)
                        return value
                else:
                    self.memo_stat_checks += 1
                    if _unchanged(inputs):
                        self.memo_hits += 1
                        if cache.trusting:  # checked now: vouched for from here on
                            memo[key] = (inputs, time.monotonic(), value, self._unvouched(inputs), paths)
                        cache.note(inputs)
                        return value
            del memo[key]
        self.memo_misses += 1
        start_ns = time.time_ns()
        # Stamped when the computation starts, the conservative side: a watcher that came up
        # while it ran must not vouch for inputs read before it watched.
        started = time.monotonic()
        with cache.recording() as rec:
            value = compute()
        inputs = list(dict.fromkeys(rec.inputs))
        newest = rec.newest_mtime_ns
        outside = self._unvouched(inputs) if cache.trusting else None
        # Inputs written within the racy window are re-verified by content in the StatCache;
        # memoising on their stat alone would skip that check (a watcher's events do not).
        if start_ns - newest >= RACY_WINDOW_NS or outside == []:
            if len(memo) >= capacity:
                memo.pop(next(iter(memo)))
            memo[key] = (inputs, started, value, outside, frozenset([i[0] for i in inputs]))
        return value

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

    def _unvouched(self, inputs: _Inputs) -> _Inputs:
        """The inputs a healthy watcher of the plans folder does not vouch for: outside it, or behind a symlink."""
        watched = self.cache.watched
        return [item for item in inputs if not watched(item[0])]

    def trust_watcher(self, on: bool) -> None:
        """A watcher of the plans folder is healthy (on) or not (off): see StatCache.trust.

        While on, warm answers cost what changed: nothing is stat'ed that the
        watcher vouches for, and changed() drops exactly what its events touch.
        Each time it comes on, every input is stat-checked once more (what
        changed while nobody watched was never reported).
        """
        self.cache.trust(os.path.realpath(self.workspace.plans_dir) if on else None)
        self.trust_restarts += on

    def cache_stats(self) -> CacheStats:
        """The cache's numbers, with how answers were validated (watcher or stat)."""
        return msgspec.structs.replace(self.cache.stats(), trusting=self.cache.trusting,
                                       answers_stat_checked=self.memo_stat_checks,
                                       trust_restarts=self.trust_restarts)

    # -- reading, through the cache ---------------------------------------------

    def plan_doc(self, plan: PlanRef) -> PlanDoc:
        try:
            return self.cache.file("plan", plan.path, parse_plan)
        except OSError as exc:
            return PlanDoc(path=plan.path, problems=[Problem("unreadable", f"cannot read: {exc.strerror}", "error",
                                                              plan.path)])

    def parse_text(self, path: str, text: str, *, memo: PlanMemo | None = None) -> PlanDoc:
        """Parse an editor's buffer (not the file on disk); not cached by stat.

        With a memo from the buffer's previous parse, only the chunks an edit
        touched are read again.
        """
        return parse_plan_text(text, path, memo=memo)

    def _files(self, plan: PlanRef, doc: PlanDoc) -> PlanFiles:
        """The plan's files (memoised on the folder listings they come from)."""
        files: PlanFiles = self._memoised(("files", plan, doc.archive_location),
                                          lambda: self.workspace.files(plan, doc.archive_location),
                                          store=self._files_memo, capacity=self._room)
        return files

    def _inputs(self, plan: PlanRef, doc: PlanDoc) -> Inputs:
        files = self._files(plan, doc)
        problems: list[Problem] = [outside_problem(self.root, p, plan.path) for p in files.outside]
        subplans = []
        for ref in files.subplans:
            w = self._work("subplan", ref.path, problems)
            if w is not None:
                subplans.append((ref, w))
        executions = []
        for ref in files.executions:
            w = self._work("execution", ref.path, problems)
            if w is not None:
                executions.append((ref, w))
        # Review files are read only when their <NN> alone cannot name the achievement.
        numbers = {a.number.replace(".", "") for a in doc.achievements}
        counts: dict[str, int] = {}
        for a in doc.achievements:
            nn = a.number.replace(".", "")
            counts[nn] = counts.get(nn, 0) + 1
        titles: dict[str, FeedbackDoc] = {}
        for ref in files.approved + files.fixes:
            if ref.nn not in numbers or counts.get(ref.nn, 0) > 1:
                fb = self._feedback(ref.path, "fix" if os.path.basename(ref.path).startswith("FIX") else "approved")
                if fb is not None:
                    titles[ref.path] = fb
        parallel: ParallelGraph | None = None
        if files.parallel:
            try:
                parallel = self.cache.file("parallel", files.parallel, parse_parallel)
            except OSError as exc:
                problems.append(Problem("unreadable", f"cannot read: {exc.strerror}", "error", files.parallel))
        if problems:
            doc = msgspec.structs.replace(doc, problems=doc.problems + problems)
        return Inputs(plan.name, doc, files, subplans, executions, titles, parallel)

    def _work(self, kind: str, path: str, problems: list[Problem]) -> WorkDoc | None:
        try:
            return self.cache.file(kind, path, parse_subplan if kind == "subplan" else parse_execution)
        except OSError as exc:
            # Deleted between the folder listing and the read: the next call sees the new listing.
            problems.append(Problem("unreadable", f"cannot read: {exc.strerror}", "warning", path))
            return None

    def _feedback(self, path: str, kind: str) -> FeedbackDoc | None:
        try:
            return self.cache.file(kind, path, parse_fix if kind == "fix" else parse_approved)
        except OSError:
            return None

    # -- answers ------------------------------------------------------------------

    def resolve(self, ref: str, *, cwd: str | None = None) -> PlanRef:
        return self.workspace.resolve(ref, cwd=cwd)

    def plan_status(self, ref: str | PlanRef, *, cwd: str | None = None, trust_plan: bool = False) -> PlanStatus:
        plan = ref if isinstance(ref, PlanRef) else self.resolve(ref, cwd=cwd)
        doc = self.plan_doc(plan)
        return decide(self._inputs(plan, doc), trust_plan=trust_plan)

    def plan_for_path(self, path: str) -> PlanRef | None:
        """The plan that owns `path` (a file or a folder), or None: the one ownership rule.

        Its PLAN file, anything in its feature folder (deepest folder wins), or, in a
        folder shared by loose PLAN files, the files carrying its name. See
        Workspace.plan_for_path for the whole rule.
        """
        return self.workspace.plan_for_path(path)

    def plans_affected_by(self, paths: Iterable[str]) -> dict[str, tuple[PlanRef, list[str]]]:
        """plan path -> (plan, the changed paths that touch it): what a watcher recomputes.

        Built on plan_for_path; a changed folder also touches the plans inside it.
        """
        return self.workspace.plans_affected_by(paths)

    def default_plan(self, cwd: str) -> str:
        """The PLAN file's path when no plan is named: the plan owning `cwd`, else the only plan.

        Otherwise a UserError "which plan? name one with @NAME" listing the plans.
        """
        return self.workspace.default_plan(cwd)

    def plan_status_with(self, plan: PlanRef, doc: PlanDoc, *, trust_plan: bool = False) -> PlanStatus:
        """The plan's status with `doc` (an editor's unsaved buffer) in place of the file on disk.

        Memoised per parse of the buffer: after an edit, diagnostics, code lenses and
        hovers all ask for the same buffer's status. The entry holds `doc` itself, so
        its id cannot be reused while the entry lives.
        """
        key = ("with", plan.path, id(doc), trust_plan)
        got = self._memoised(key, lambda: (doc, decide(self._inputs(plan, doc), trust_plan=trust_plan)),
                             store=self._buffer_memo, capacity=8)
        return got[1]  # type: ignore[no-any-return]

    def status(self) -> WorkspaceStatus:
        return self._memoised(("status",), self._status)  # type: ignore[no-any-return]

    def _status(self) -> WorkspaceStatus:
        summaries = []
        plans = self.workspace.plans()
        self.fit_capacity(len(plans))
        self.warm(plans)
        # One memoised summary per plan: after a change, a status recomputes the plans it touched.
        for plan in plans:
            summaries.append(self._memoised(("summary", plan), lambda p=plan: self._summary(p),
                                            store=self._summary_memo, capacity=self._room))
        return WorkspaceStatus(root=self.root, plans=summaries,
                               problems=list(self.config_problems) + self.workspace.problems,
                               plans_dir=self.workspace.plans_dir)

    def _summary(self, plan: PlanRef) -> PlanSummary:
        st = self.plan_status(plan)
        return PlanSummary(
            plan=st.plan, path=st.path, title=st.title, state=st.state, next=st.next, done=st.done,
            total=st.total, source=st.source, pending_fixes=st.pending_fixes, parallel_options=st.parallel_options,
            problem_count=sum(1 for p in st.problems if p.severity != "info"), group=plan.group,
        )

    def generate(self, ref: str | PlanRef, *, achievement: str | None = None, cwd: str | None = None,
                 trust_plan: bool = False) -> GenerateResult:
        """The prompt for the next step (achievement None) or for one achievement."""
        key = ("generate", ref, cwd if isinstance(ref, str) and not ref.startswith("@") else None,
               achievement, trust_plan)
        return self._memoised(key, lambda: self._generate(ref, achievement, cwd, trust_plan))  # type: ignore[no-any-return]

    def _generate(self, ref: str | PlanRef, achievement: str | None, cwd: str | None,
                  trust_plan: bool) -> GenerateResult:
        plan = ref if isinstance(ref, PlanRef) else self.resolve(ref, cwd=cwd)
        st = self.plan_status(plan, trust_plan=trust_plan)
        number = achievement if achievement is not None else st.next
        ach = None
        if number is not None:
            ach = next((a for a in st.achievements if a.number == number), None)
            if ach is None:
                raise UserError(f"plan @{st.plan} has no achievement {number}",
                                hint="achievements: " + ", ".join(a.number for a in st.achievements),
                                code="unknown-achievement", candidates=[a.number for a in st.achievements])
        state_name: PlanStateName
        if ach is not None and ach.state == "complete" and achievement is not None:
            state_name = "complete"
        else:
            state_name = ach.state if ach is not None else st.state
        fix_doc = self._feedback(ach.fix, "fix") if ach is not None and ach.fix else None
        active_doc = None
        if ach is not None and ach.active_execution:
            active_doc = self._work("execution", ach.active_execution, [])
        ctx = PromptContext(self.root, st, ach if state_name != "complete" else None, os.path.dirname(plan.path),
                            fix_doc, active_doc)
        if state_name == "complete" and ach is not None:
            prompt = (f"Achievement {ach.number} ({ach.title}) of plan \"{st.title or st.plan}\" is complete "
                      f"({os.path.relpath(ach.approved, self.root) if ach.approved else 'plan marks'}); "
                      f"nothing to do.\n")
            tmpl_problems: list[Problem] = []
        else:
            prompt, tmpl_problems = build_prompt(self.templates, ctx)
        if ach is None and st.state != "plan_complete":
            # Nothing actionable (everything left awaits review or waits on dependencies).
            prompt = (f"Nothing to do next in plan \"{st.title or st.plan}\": "
                      + (f"awaiting review: {', '.join(st.awaiting_review)}" if st.awaiting_review
                         else "every incomplete achievement waits on a dependency") + ".\n")
        write_path = ctx.write_path() if state_name != "complete" else None
        return GenerateResult(
            plan=st.plan,
            plan_path=st.path,
            achievement=ach.number if ach is not None else None,
            state=state_name if ach is not None else st.state,
            source=st.source,
            prompt=prompt,
            parallel_options=st.parallel_options,
            problems=list(self.config_problems) + st.problems + tmpl_problems,
            write_path=write_path,
        )

    def changed(self, paths: list[str]) -> int:
        """Files changed on disk (a watcher says so): drop exactly their entries.

        A file's own parse, its folder's listing, and the memoised answers that
        read either; a path that is a folder now, or was listed as one before it
        went (moved or deleted whole), also drops everything under it.
        Everything else stays warm.
        """
        doomed: set[str] = set()
        folders: set[str] = set()
        for p in paths:
            doomed.add(p)
            doomed.add(os.path.dirname(p))
            # A folder (now, or listed before it went): what lies under it goes too. Anything read
            # under a folder was found through its listing, so a path never listed holds nothing read.
            if os.path.isdir(p) or self.cache.listed(p):
                folders.add(p.rstrip(os.sep))
        n = 0
        for p in doomed:
            n += self.cache.invalidate(p)
        if folders:
            n += self.cache.invalidate_where(lambda path: _under(path, folders))

        def touched(paths: frozenset[str]) -> bool:
            if not paths.isdisjoint(doomed):  # a few hash lookups, whatever the answer's size
                return True
            return bool(folders) and any(_under(p, folders) for p in paths)

        for memo in (self._memo, self._buffer_memo, self._summary_memo, self._files_memo):
            for key in [k for k, (_i, _t, _v, _o, paths) in memo.items() if touched(paths)]:
                del memo[key]
        return n

    def invalidate(self, path: str | None = None) -> int:
        self._memo.clear()
        self._buffer_memo.clear()
        self._summary_memo.clear()
        self._files_memo.clear()
        if path is None:
            return self.cache.clear()
        real = os.path.realpath(path)
        if os.path.isdir(real):
            return self.cache.invalidate_under(real)
        return self.cache.invalidate(real) + self.cache.invalidate(path)


def _under(path: str, folders: set[str]) -> bool:
    """Whether `path` lies inside one of `folders` (a walk up its parents: a few set lookups)."""
    d = os.path.dirname(path)
    while True:
        if d in folders:
            return True
        up = os.path.dirname(d)
        if up == d:
            return False
        d = up


def _unchanged(inputs: list[tuple[str, StatKey | None]]) -> bool:
    stat = os.stat
    for path, key in inputs:
        try:
            st = stat(path)
        except OSError:
            if key is not None:
                return False
            continue
        if key is None or (st.st_mtime_ns, st.st_size, st.st_ino) != key:
            return False
    return True
