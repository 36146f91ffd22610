"""The engine: one workspace, one cache, answers from memory.

Pure and synchronous: it knows nothing of sockets, LSP or the CLI. Every
answer re-validates its inputs by stat through the StatCache, so a warm call
costs a few stats and dictionary lookups, and a file changed on disk is seen
at once whether or not a watcher told us.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import msgspec

from perfd.config import ConfigError, table
from perfd.settings.resolve import Settings
from perfd.settings.schema import CacheSettings, WorkspaceSettings
from perfd.settings.resolve import load as load_settings
from perfd.engine.cache.cold_parse import PARALLEL_MIN_PLANS as PARALLEL_MIN_PLANS  # (tests size workspaces by it)
from perfd.engine.cache.answer_store import AnswerKey, AnswerStore, AnswerValue, Packer
from perfd.engine.cache.cold_parse import ColdStart
from perfd.engine.cache.cache import Inputs as ReadInputs, StatCache, StatKey, stat_key
from perfd.engine.cache.memo import (Answers, BufferKey, FilesKey, GenerateKey, Memos, StatusKey, SummaryKey)
from perfd.engine.cache.parse_pool import PlanHead, Parsed, WorkerPool, workers_wanted
from perfd.engine.cache.parse_store import Packing as ParsePacking, ParseStore
from perfd.engine.docs_parser import parse_parallel
from perfd.engine.errors import UserError
from perfd.engine.kinds import UNPACK, pack, parse_approved, parse_execution, parse_fix, parse_subplan
from perfd.engine.plan_parser import PlanMemo, no_achievements_message, parse_plan, parse_plan_text
from perfd.engine.prompts import PromptContext, Templates, build_prompt
from perfd.engine.state import Inputs, decide
from perfd.engine.text import decode
from perfd.engine.workspace import PlanFiles, PlanRef, Workspace, display_path
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


class Engine:
    """Plan state and prompts for the workspace at `root`.

    Its collaborators, each made here (the pool may be given): the StatCache
    (`cache`), the memos of whole answers (`memos`, looked up through
    `answers`), the worker pool (`pool`, stopped by close()) and the cold start
    (`cold`: parsing on every core, and the parse and answer stores it is given).
    """

    def __init__(self, root: str, *, config: dict[str, Any] | None = None, settings: Settings | None = None,
                 pool: WorkerPool | None = None) -> None:
        """`settings`: the settings in force (perfd.settings; loaded here when neither they nor a raw
        `config` are given, a bad file then being a problem of every answer). `config`: the raw tables,
        as a parse worker receives them from its engine."""
        self.root = os.path.realpath(root)
        self.config_problems: list[Problem] = []
        if config is None:
            if settings is None:
                try:
                    settings = load_settings(self.root)
                except ConfigError as exc:
                    self.config_problems.append(Problem("config-invalid", str(exc), "error"))
            # What shapes answers, as the workers and the answer store's digest see it.
            config = {t: settings.table(t) for t in ("workspace", "cache")} if settings is not None else {}
        self.config = config
        self.settings = settings
        cache_cfg = table(config, "cache")
        # The typed tables: from the settings in force, else the raw mapping read by the same schema.
        if settings is not None:
            cache_s, ws_s = settings.cache, settings.workspace
        else:
            try:
                cache_s = msgspec.convert(cache_cfg, CacheSettings)
                ws_s = msgspec.convert(table(config, "workspace"), WorkspaceSettings)
            except msgspec.ValidationError as exc:
                self.config_problems.append(Problem("config-invalid", f"settings: {exc}", "error"))
                cache_s, ws_s = CacheSettings(), WorkspaceSettings()
        # Parsed files are held packed: a quarter of the memory of their objects (see perfd.engine.kinds).
        self.cache = StatCache(capacity=cache_s.capacity, ttl_s=cache_s.ttl_s, packed=dict(UNPACK), pack=pack)
        self.workspace = Workspace(self.root, self.cache, plans_dir=ws_s.plans_dir)
        self.templates = Templates(self.root, lambda p: self.cache.file("template", p, _template),
                                   outside=lambda p: outside_problem(self.root, p, None))
        self.started = time.time()
        # Whole answers, valid while every file and folder they read has the
        # stat key it had: a warm call is one stat per input and no parsing.
        self.memos = Memos()
        self.answers = Answers(self.cache)
        self.trust_restarts = 0
        self.pool = pool if pool is not None else WorkerPool(workers_wanted(cache_s.parse_workers))
        self.cold = ColdStart(config=config, cache=self.cache, workspace=self.workspace,
                              memos=self.memos, answers=self.answers, pool=self.pool, plans=self,
                              parse_store=ParseStore(self.root), answer_store=AnswerStore(self.root, config),
                              capacity_set="capacity" in cache_cfg)

    def close(self) -> None:
        """Stop the worker processes left running (the engine stays usable: it starts new ones)."""
        self.pool.close()

    # -- the answer memo's numbers and requests -----------------------------------

    @property
    def memo_hits(self) -> int:
        return self.answers.hits

    @property
    def memo_misses(self) -> int:
        """Answers computed (for the answer level's hit rate in perfd stats)."""
        return self.answers.misses

    @property
    def memo_stat_checks(self) -> int:
        """Memoised answers validated by stat (no watcher vouching for them)."""
        return self.answers.stat_checks

    @property
    def asked_at(self) -> float | None:
        """While answering a request: when it arrived (see answering())."""
        return self.answers.asked_at

    def answering(self, asked_at: float) -> AbstractContextManager[None]:
        """While answering a request that arrived at `asked_at` (time.monotonic()).

        A memoised answer whose computation started since (every file and folder it
        read was read after the request arrived) is taken without checking its inputs
        again, as an answer worked out for this request would be; older ones are
        checked as always.
        """
        return self.answers.answering(asked_at)

    def watch_folders(self) -> list[tuple[str, bool]]:
        """The folders plans are read from (Workspace.watched_folders), each with whether its whole tree is:
        what a watcher watches. What a watcher does not cover is validated by stat, so this list is a
        matter of speed only."""
        return [(f.path, f.recursive) for f in self.workspace.watched_folders()]

    def trust_watcher(self, folders: Iterable[str | tuple[str, bool]] | None, *, unwatched: Iterable[str] = (),
                      sync: Callable[[], None] | None = None) -> None:
        """A watcher of `folders` is healthy but for `unwatched` (folders under them it could not watch);
        None: no watcher is (see StatCache.trust). `sync` takes its pending events: every answer calls it
        first, so that an answer reflects every change made before it was asked (read-your-writes).

        While it is trusted, warm answers cost what changed: nothing is stat'ed that
        the watcher vouches for, and changed() drops exactly what its events touch.
        Each time it is (re)trusted, every input is stat-checked once more (what
        changed while nobody watched was never reported).
        """
        self.cache.trust(folders, unwatched=unwatched)
        self.cache.sync_with(sync if folders is not None else None)
        self.trust_restarts += folders is not None

    def verification(self, *, slice_size: int = 512) -> Iterator[list[str]]:
        """One verification pass (see perfd.runtime.verify), a slice at a time: every file and folder that a
        cached value or a memoised answer holds is stat'ed, and what changed (or went) is dropped as a
        watcher's event would drop it. Each slice yields the paths it found changed."""
        # Each path once: the cache's key, else the first memoised answer's (an answer whose input changed
        # since was dropped by the change; one that is not vouched for is stat-checked when used anyway).
        held: dict[str, StatKey | None] = dict(self.cache.held_keys())
        for inputs in self.memos.inputs():
            for path, key in inputs:
                if path not in held:
                    held[path] = key
        items = list(held.items())
        stat = os.stat
        for i in range(0, len(items), slice_size):
            changed: list[str] = []
            for path, key in items[i:i + slice_size]:
                try:
                    now: StatKey | None = stat_key(stat(path))
                except OSError:
                    now = None
                if now != key:
                    changed.append(path)
            if changed:
                self.changed(changed)
            yield changed

    def synced(self, on: bool = True) -> AbstractContextManager[None]:
        """Meanwhile (on=False), answers trust what the watcher reported so far without taking its pending
        events: a benchmark's baseline, to measure what read-your-writes costs."""
        return _SyncSwitch(self.cache, on)

    def cache_stats(self) -> CacheStats:
        """The cache's numbers, with how answers were validated (watcher or stat)."""
        return msgspec.structs.replace(self.cache.stats(), trusting=self.cache.trusting,
                                       answers_stat_checked=self.answers.stat_checks,
                                       trust_restarts=self.trust_restarts)

    # -- the cold start (see perfd.engine.cache.cold_parse.ColdStart) ----------------

    @property
    def parse_workers(self) -> int:
        """How many worker processes a cold parse uses (at most)."""
        return self.pool.size

    @parse_workers.setter
    def parse_workers(self, n: int) -> None:
        self.pool.size = n

    @property
    def parse_store_refusal(self) -> str:
        """Why the parse store was not used ("" when it was, or not read yet)."""
        return self.cold.parse_store_refusal

    def fit_capacity(self, plans: int) -> None:
        self.cold.fit_capacity(plans)

    def likely_large(self) -> bool:
        return self.cold.likely_large()

    def use_workers(self, cold_plans: int) -> bool:
        return self.cold.use_workers(cold_plans)

    def warm(self, plans: list[PlanRef] | None = None) -> int:
        return self.cold.warm(plans)

    def cold_plan_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        return self.cold.cold_plan_files(plans)

    def cold_work_files(self, plans: list[PlanRef]) -> list[tuple[str, str]]:
        return self.cold.cold_work_files(plans)

    def store_parsed(self, batch: Iterable[Parsed]) -> int:
        return self.cold.store_parsed(batch)

    def packed_config(self) -> bytes | None:
        return self.cold.packed_config()

    def take_parts(self, parts: Iterable[PlanHead], *, stamped: float) -> None:
        self.cold.take_parts(parts, stamped=stamped)

    def take_held(self) -> int:
        return self.cold.take_held()

    def taking_held(self) -> Iterator[int]:
        return self.cold.taking_held()

    def load_parsed(self, path: str, *, lazy: bool = False) -> str:
        return self.cold.load_parsed(path, lazy=lazy)

    def save_parsed(self, path: str) -> int:
        return self.cold.save_parsed(path)

    def load_answers(self, path: str) -> tuple[int, str]:
        return self.cold.load_answers(path)

    def save_answers(self, path: str) -> int:
        return self.cold.save_answers(path)

    # save_parsed and save_answers in steps, for a daemon that keeps answering while the files are written
    def parsed_to_store(self) -> list[tuple[str, str, StatKey, bytes]]:
        return self.cache.to_persist()

    def parse_packing(self, entries: list[tuple[str, str, StatKey, bytes]]) -> ParsePacking:
        return self.cold.parse_packing(entries)

    def answers_to_store(self) -> list[tuple[AnswerKey, ReadInputs, AnswerValue]]:
        return self.cold.answers_to_store()

    def answer_packer(self) -> Packer:
        return self.cold.answer_packer()

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
        return self.answers.recall(self.memos.files, FilesKey(plan, doc.archive_location),
                                   lambda: self.workspace.files(plan, doc.archive_location))

    def plan_files(self, plan: PlanRef) -> PlanFiles:
        """The plan's files (SUBPLANs, EXECUTION_TASKs, reviews, parallel.json), memoised."""
        return self._files(plan, self.plan_doc(plan))

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
        """`@NAME`, a bare name, or a path (from `cwd`) -> the plan (see Workspace.resolve)."""
        return self.workspace.resolve(ref, cwd=cwd)

    def plans(self) -> list[PlanRef]:
        """Every plan of the workspace, sorted by name (case-insensitive), then group and path."""
        return self.workspace.plans()

    def plan_names(self) -> list[str]:
        """The names of every plan, in the order of plans() (for completion and pickers)."""
        return [p.name for p in self.workspace.plans()]

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

    # What an editor session asks of the workspace, so it need not reach through `workspace`.

    @property
    def plans_dir(self) -> str:
        """The folder the plans live under (what a watcher watches)."""
        return self.workspace.plans_dir

    def check_inside(self, path: str) -> str:
        """The real path of `path`, or a UserError when it leaves the workspace (symlinks included)."""
        return self.workspace.check_inside(path)

    def plans_affected_by(self, paths: Iterable[str]) -> dict[str, tuple[PlanRef, list[str]]]:
        """plan path -> (plan, the changed paths that touch it): what a watcher recomputes.

        Built on plan_for_path; a changed folder also touches the plans inside it.
        """
        return self.workspace.plans_affected_by(paths)

    def default_plan(self, cwd: str) -> str:
        """The PLAN file's path when no plan is named: the plan owning `cwd`, else the only plan.

        Otherwise a UserError "which plan? name one with @NAME" listing the plans.
        """
        return self.workspace.default_plan(cwd).path

    def default_plan_ref(self, cwd: str) -> PlanRef:
        """The plan when none is named (as default_plan), to hand to generate or plan_status as it is."""
        return self.workspace.default_plan(cwd)

    def plan_status_with(self, plan: PlanRef, doc: PlanDoc, *, trust_plan: bool = False) -> PlanStatus:
        """The plan's status with `doc` (an editor's unsaved buffer) in place of the file on disk.

        Memoised per parse of the buffer: after an edit, diagnostics, code lenses and
        hovers all ask for the same buffer's status. The entry holds `doc` itself, so
        its id cannot be reused while the entry lives.
        """
        got = self.answers.recall(self.memos.buffer, BufferKey(plan.path, id(doc), trust_plan),
                                  lambda: (doc, decide(self._inputs(plan, doc), trust_plan=trust_plan)))
        return got[1]

    def status(self) -> WorkspaceStatus:
        return self.answers.recall(self.memos.status, StatusKey(), self._status)

    def _status(self) -> WorkspaceStatus:
        plans = self.workspace.plans()
        self.cold.fit_capacity(len(plans))
        self.cold.warm(plans)
        # One memoised summary per plan: after a change, a status recomputes the plans it touched.
        summaries = [self.plan_summary(plan) for plan in plans]
        labels = self.workspace.refs(plans, plans)  # plans of one name told apart by where they are
        summaries = [s if lab == s.plan else msgspec.structs.replace(s, label=lab)
                     for s, lab in zip(summaries, labels)]
        return WorkspaceStatus(root=self.root, plans=summaries,
                               problems=list(self.config_problems) + self.workspace.problems,
                               plans_dir=self.workspace.plans_dir)

    def plan_summary(self, plan: PlanRef) -> PlanSummary:
        """The plan's line of a status, memoised."""
        return self.answers.recall(self.memos.summary, SummaryKey(plan), lambda: self._summary(plan))

    def _summary(self, plan: PlanRef) -> PlanSummary:
        st = self.plan_status(plan)
        return PlanSummary(
            plan=st.plan, path=st.path, title=st.title, state=st.state, next=st.next, done=st.done,
            total=st.total, source=st.source, pending_fixes=st.pending_fixes, parallel_options=st.parallel_options,
            problem_count=sum(1 for p in st.problems if p.severity != "info"), group=plan.group,
            not_plan=st.not_plan,
        )

    def generate(self, ref: str | PlanRef, *, achievement: str | None = None, cwd: str | None = None,
                 trust_plan: bool = False) -> GenerateResult:
        """The prompt for the next step (achievement None) or for one achievement.

        `ref`: the plan, or a reference to it (`@NAME`, a name, a path from `cwd`) resolved
        when the answer is not memoised.
        """
        key = GenerateKey(ref, cwd if isinstance(ref, str) and not ref.startswith("@") else None,
                          achievement, trust_plan)
        return self.answers.recall(self.memos.generate, key,
                                   lambda: self._generate(ref, achievement, cwd, trust_plan))

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
        ctx = PromptContext(self.root, st, ach if state_name != "complete" else None, plan.folder,
                            fix_doc, active_doc, flat=plan.loose)
        if state_name == "complete" and ach is not None:
            prompt = (f"Achievement {ach.number} ({ach.title}) of plan \"{st.title or st.plan}\" is complete "
                      f"({os.path.relpath(ach.approved, self.root) if ach.approved else 'plan marks'}); "
                      f"nothing to do.\n")
            tmpl_problems: list[Problem] = []
        else:
            prompt, tmpl_problems = build_prompt(self.templates, ctx)
        if ach is None and st.state != "plan_complete" and not st.achievements:
            prompt = no_achievements_message(st.title or st.plan, display_path(self.root, st.path), st.not_plan)
        elif ach is None and st.state != "plan_complete":
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

        self.memos.drop_touching(touched)
        return n

    def invalidate(self, path: str | None = None) -> int:
        self.memos.clear()
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


class _SyncSwitch:
    """Engine.synced's context manager."""

    def __init__(self, cache: StatCache, on: bool) -> None:
        self.cache, self.on, self.was = cache, on, cache.sync_enabled

    def __enter__(self) -> None:
        self.was, self.cache.sync_enabled = self.cache.sync_enabled, self.on

    def __exit__(self, *exc: object) -> None:
        self.cache.sync_enabled = self.was
