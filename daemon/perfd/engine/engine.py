"""The engine: one workspace, one cache, answers from memory.

Pure and synchronous: it knows nothing of sockets, LSP or the CLI. Every
answer re-validates its inputs by stat through the StatCache, so a warm call
costs a few stats and dictionary lookups, and a file changed on disk is seen
at once whether or not a watcher told us.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import msgspec

from perfd.config import ConfigError, load_config, table
from perfd.engine.cache import RACY_WINDOW_NS, StatCache, StatKey
from perfd.engine.docs_parser import parse_parallel
from perfd.engine.errors import UserError
from perfd.engine.kinds import parse_approved, parse_execution, parse_fix, parse_subplan
from perfd.engine.plan_parser import PlanMemo, parse_plan, parse_plan_text
from perfd.engine.prompts import PromptContext, Templates, build_prompt
from perfd.engine.state import Inputs, decide
from perfd.engine.text import decode
from perfd.engine.workspace import DEFAULT_PLANS_DIR, PlanRef, Workspace
from perfd.engine.types import (
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


def _template(data: bytes, path: str) -> str:
    return decode(data, path)[0]


# key -> (inputs with their stat keys, when stored, value)
_Memo = dict[tuple[Any, ...], tuple[list[tuple[str, StatKey | None]], float, Any]]


class Engine:
    """Plan state and prompts for the workspace at `root`."""

    def __init__(self, root: str, *, config: dict[str, Any] | None = None) -> None:
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
            capacity = int(cache_cfg.get("capacity", 4096))
            ttl_s = float(cache_cfg.get("ttl_s", 3600.0))
            if capacity < 1 or ttl_s <= 0:
                raise ValueError
        except (TypeError, ValueError):
            self.config_problems.append(Problem("config-invalid",
                                                "[cache] capacity must be a positive integer and ttl_s a positive number",
                                                "error"))
            capacity, ttl_s = 4096, 3600.0
        self.cache: StatCache[Any] = StatCache(capacity=capacity, ttl_s=ttl_s)
        plans_dir = ws_cfg.get("plans_dir", DEFAULT_PLANS_DIR)
        self.workspace = Workspace(self.root, self.cache,
                                   plans_dir=plans_dir if isinstance(plans_dir, str) else DEFAULT_PLANS_DIR)
        self.templates = Templates(self.root, lambda p: self.cache.file("template", p, _template))
        self.started = time.time()
        # Whole answers, valid while every file and folder they read has the
        # stat key it had: a warm call is one stat per input and no parsing.
        self._memo: _Memo = {}
        # Statuses of editors' buffers (plan_status_with), apart: every edit makes a
        # new one, and each holds a whole parse, so only the latest few are kept.
        self._buffer_memo: _Memo = {}
        self.memo_hits = 0

    def _memoised(self, key: tuple[Any, ...], compute: Any, *, store: _Memo | None = None,
                  capacity: int = 256) -> Any:
        memo = self._memo if store is None else store
        hit = memo.get(key)
        if hit is not None:
            inputs, stored, value = hit
            if time.monotonic() - stored <= self.cache.ttl_s and _unchanged(inputs):
                self.memo_hits += 1
                return value
            del memo[key]
        if self.cache.track is not None:  # nested: the outer call records for both
            return compute()
        self.cache.track = []
        self.cache.newest_mtime_ns = 0
        start_ns = time.time_ns()
        try:
            value = compute()
            inputs = list(dict.fromkeys(self.cache.track))
        finally:
            self.cache.track = None
        # Inputs written within the racy window are re-verified by content in
        # the StatCache; memoising on their stat alone would skip that check.
        if start_ns - self.cache.newest_mtime_ns >= RACY_WINDOW_NS:
            if len(memo) >= capacity:
                memo.pop(next(iter(memo)))
            memo[key] = (inputs, time.monotonic(), value)
        return value

    # -- reading, through the cache ---------------------------------------------

    def plan_doc(self, plan: PlanRef) -> PlanDoc:
        try:
            return self.cache.file("plan", plan.path, parse_plan)  # type: ignore[no-any-return]
        except OSError as exc:
            return PlanDoc(path=plan.path, problems=[Problem("unreadable", f"cannot read: {exc.strerror}", "error",
                                                              plan.path)])

    def parse_text(self, path: str, text: str, *, memo: PlanMemo | None = None) -> PlanDoc:
        """Parse an editor's buffer (not the file on disk); not cached by stat.

        With a memo from the buffer's previous parse, only the chunks an edit
        touched are read again.
        """
        return parse_plan_text(text, path, memo=memo)

    def _inputs(self, plan: PlanRef, doc: PlanDoc) -> Inputs:
        files = self.workspace.files(plan, doc.archive_location)
        problems: list[Problem] = []
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
            return self.cache.file(kind, path, parse_subplan if kind == "subplan" else parse_execution)  # type: ignore[no-any-return]
        except OSError as exc:
            # Deleted between the folder listing and the read: the next call sees the new listing.
            problems.append(Problem("unreadable", f"cannot read: {exc.strerror}", "warning", path))
            return None

    def _feedback(self, path: str, kind: str) -> FeedbackDoc | None:
        try:
            return self.cache.file(kind, path, parse_fix if kind == "fix" else parse_approved)  # type: ignore[no-any-return]
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
        for plan in plans:
            st = self.plan_status(plan)
            summaries.append(PlanSummary(
                plan=st.plan, path=st.path, title=st.title, state=st.state, next=st.next, done=st.done,
                total=st.total, source=st.source, pending_fixes=st.pending_fixes,
                parallel_options=st.parallel_options,
                problem_count=sum(1 for p in st.problems if p.severity != "info"), group=plan.group,
            ))
        return WorkspaceStatus(root=self.root, plans=summaries,
                               problems=list(self.config_problems) + self.workspace.problems)

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
        read either; everything else stays warm.
        """
        doomed: set[str] = set()
        for p in paths:
            doomed.add(p)
            doomed.add(os.path.dirname(p))
        n = 0
        for p in doomed:
            n += self.cache.invalidate(p)
        for memo in (self._memo, self._buffer_memo):
            for key in [k for k, (inputs, _t, _v) in memo.items() if any(i[0] in doomed for i in inputs)]:
                del memo[key]
        return n

    def invalidate(self, path: str | None = None) -> int:
        self._memo.clear()
        self._buffer_memo.clear()
        if path is None:
            return self.cache.clear()
        real = os.path.realpath(path)
        if os.path.isdir(real):
            return self.cache.invalidate_under(real)
        return self.cache.invalidate(real) + self.cache.invalidate(path)


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
