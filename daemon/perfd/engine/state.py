"""Decide each achievement's workflow state and the plan's next step.

Pure: takes parsed documents, returns a PlanStatus. The rules are those of
../shared/PLAN-FORMAT.md, "Workflow state": the filesystem (review files,
SUBPLANs, EXECUTION_TASKs) is the source of truth; only a plan with no review
files at all falls back to its own done marks.

Without parallel.json a plan is sequential: its only option is "next" (and
the pending fixes, listed apart). With parallel.json, every other incomplete
achievement whose dependencies are complete is a parallel option.
"""

from __future__ import annotations

import os

import msgspec

from perfd.engine.plan_parser import nn_of
from perfd.engine.workspace import FileRef, PlanFiles
from perfd.engine.types import (
    AchievementStateName,
    AchievementStatus,
    DoneMark,
    FeedbackDoc,
    ParallelGraph,
    PlanDoc,
    PlanStateName,
    PlanStatus,
    Problem,
    Source,
    WorkDoc,
)


class Inputs(msgspec.Struct):
    """Everything the decision needs, already parsed."""

    name: str
    plan: PlanDoc
    files: PlanFiles
    subplans: list[tuple[FileRef, WorkDoc]]
    executions: list[tuple[FileRef, WorkDoc]]
    feedback_titles: dict[str, FeedbackDoc]  # path -> parsed review file, for ambiguous or unknown NNs
    parallel: ParallelGraph | None


def _by_nn(numbers: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for num in numbers:
        out.setdefault(nn_of(num), []).append(num)
    return out


def _resolve_nn(nn: str, by_nn: dict[str, list[str]], named: str | None) -> str | None:
    """`<NN>` -> achievement number, using the file's own "Achievement N.N" to break ties."""
    cands = by_nn.get(nn, [])
    if len(cands) == 1:
        return cands[0]
    # Only a number of the index: anything else would be dropped without a word
    # (an APPROVED_99.md saying "Achievement 9.9" in a plan with no 9.9).
    if named and named in cands:
        return named
    return None


_MARK_WORDS = {"index": "✅ on its index line", "body": "✅ on its body header", "checked": "a checked item",
               "tracking": "a tracking line saying complete", "log": "a ✅ log line", "named": "a line saying it is complete",
               "status": "its body's status line", "date": "its body's completion date",
               "priority": "a ✅ priority line counting it", "all-done": "a line saying all achievements are done"}


def _base(path: str) -> str:
    return os.path.basename(path)


def _mark_words(mark: DoneMark | None, plan_path: str,
                subplan_of: dict[str, tuple[FileRef, WorkDoc]]) -> str:
    """Which plan mark decided an achievement complete, as a person reads it."""
    if mark is None:
        return "plan marks"
    if mark.kind == "subplan":
        sp = subplan_of.get(mark.number)
        return _status_words(sp[0].path, sp[1]) if sp else "its SUBPLAN's status"
    return f"plan mark: {_MARK_WORDS.get(mark.kind, mark.kind)} ({_base(plan_path)} line {mark.line})"


def _status_words(path: str, doc: WorkDoc) -> str:
    where = f" line {doc.status_line}" if doc.status_line else ""
    return f"{_base(path)}{where}: {doc.status_text or doc.status}"


def decide(inp: Inputs, *, trust_plan: bool = False) -> PlanStatus:
    plan = inp.plan
    problems: list[Problem] = list(plan.problems)
    numbers = [a.number for a in plan.achievements]
    known = set(numbers)
    by_nn = _by_nn(numbers)

    # Review files: APPROVED / FIX keyed by achievement number.
    approved: dict[str, str] = {}
    fixes: dict[str, str] = {}
    for kind, refs, into in (("APPROVED", inp.files.approved, approved), ("FIX", inp.files.fixes, fixes)):
        for ref in refs:
            fb = inp.feedback_titles.get(ref.path)
            num = _resolve_nn(ref.nn, by_nn, fb.achievement if fb else None)
            if num is None:
                what = "ambiguous" if len(by_nn.get(ref.nn, [])) > 1 else "not in the index"
                problems.append(Problem("review-not-in-index",
                                        f"{os.path.basename(ref.path)} names achievement {ref.nn}, which is {what}",
                                        "warning", ref.path))
                continue
            into.setdefault(num, ref.path)
    # A FIX answered by its resolution (`FIX_31_RESOLUTION.md` beside `FIX_31.md`) is no longer pending:
    # the achievement goes on as its files say (awaiting the next review).
    answered = set(inp.files.resolutions)
    resolved = {num: path for num, path in fixes.items() if path[:-3] + "_RESOLUTION.md" in answered}
    for num in resolved:
        del fixes[num]

    # SUBPLANs and EXECUTION_TASKs: trust the achievement the file names.
    def owner(ref: FileRef, doc: WorkDoc, code: str) -> str | None:
        num = doc.achievement if doc.achievement in known else _resolve_nn(ref.nn, by_nn, doc.achievement)
        if num is None:
            problems.append(Problem(code, f"{os.path.basename(ref.path)} is for achievement "
                                          f"{doc.achievement or ref.nn}, which is not in the index",
                                    "warning", ref.path))
        return num

    subplan_of: dict[str, tuple[FileRef, WorkDoc]] = {}
    for ref, doc in inp.subplans:
        num = owner(ref, doc, "subplan-not-in-index")
        if num is None:
            continue
        prev = subplan_of.get(num)
        if prev is None or (prev[0].archived and not ref.archived):
            subplan_of[num] = (ref, doc)
    execs_of: dict[str, list[tuple[FileRef, WorkDoc]]] = {}
    for ref, doc in inp.executions:
        num = owner(ref, doc, "execution-not-in-index")
        if num is not None:
            execs_of.setdefault(num, []).append((ref, doc))
    for lst in execs_of.values():
        lst.sort(key=lambda e: (e[0].archived, e[0].mm, e[0].path))

    # Review files decide the achievements they name (APPROVED, FIX); the plan's own marks decide the
    # others, so one stray file cannot switch a whole plan. A plan that keeps review files (or a
    # feedbacks folder set up for them) is labelled "review files"; there a SUBPLAN's own status
    # is not a mark (it is awaiting review), and a mark is reported as not reviewed.
    source: Source = "review files" if inp.files.has_feedback_folder else "plan marks"
    mark_of: dict[str, DoneMark] = {}
    for m in plan.done_marks:
        if m.number in known:
            mark_of.setdefault(m.number, m)
    if plan.all_done_line is not None and source == "plan marks":
        for num in numbers:
            mark_of.setdefault(num, DoneMark(num, "all-done", plan.all_done_line))
    if source == "plan marks":
        for num, (_ref, doc) in subplan_of.items():
            if doc.status == "complete":
                mark_of.setdefault(num, DoneMark(num, "subplan", doc.status_line or 1))
    reviewed = set(approved) | set(fixes) | set(resolved)

    # Dependencies from parallel.json.
    deps: dict[str, list[str]] = {}
    if inp.parallel is not None:
        problems.extend(inp.parallel.problems)
        for pa in inp.parallel.achievements:
            deps[pa.achievement_id] = pa.dependencies
            if pa.achievement_id not in known:
                problems.append(Problem("parallel-not-in-index",
                                        f"parallel.json names {pa.achievement_id}, which is not in the plan's index",
                                        "warning", inp.parallel.path))

    statuses: list[AchievementStatus] = []
    complete: set[str] = set()
    for a in plan.achievements:
        num = a.number
        sp = subplan_of.get(num)
        ex = execs_of.get(num, [])
        planned = (len(sp[1].planned_executions) or None) if sp else None
        mark = mark_of.get(num) if num not in reviewed else None
        is_complete = num in approved or mark is not None
        active: str | None = None
        state: AchievementStateName
        decided_by: str
        if is_complete:
            state = "complete"
            complete.add(num)
            decided_by = _base(approved[num]) if num in approved else _mark_words(mark, plan.path, subplan_of)
        elif num in fixes:
            state = "fix_pending"
            decided_by = _base(fixes[num])
        elif sp is None:
            state = "no_subplan"
            decided_by = "no SUBPLAN names it"
        elif sp[1].status == "complete":
            state = "subplan_complete"
            decided_by = _status_words(sp[0].path, sp[1])
        elif not ex:
            state = "subplan_no_execution"
            decided_by = _base(sp[0].path) + ", no EXECUTION_TASK"
        else:
            pending = [e for e in ex if e[1].status != "complete"]
            if pending:
                state = "active_execution"
                active = pending[0][0].path
                decided_by = _status_words(pending[0][0].path, pending[0][1])
            elif len(ex) < (planned or len(ex)):
                state = "create_next_execution"
                decided_by = f"{len(ex)} of {planned} planned executions complete ({_base(sp[0].path)})"
            else:
                state = "subplan_all_executed"
                decided_by = f"all {len(ex)} executions complete"
        if source == "review files" and num not in approved and (a.marked_done or mark is not None):
            problems.append(Problem("marked-done-not-approved",
                                    f"achievement {num} is marked done in the plan but has no APPROVED_{nn_of(num)}.md"
                                    + (" (the plan's mark decides: no review file names it)" if mark is not None
                                       else ""),
                                    "info", plan.path, a.index_line or a.body_line))
        statuses.append(AchievementStatus(
            number=num, title=a.title, state=state, priority=a.priority,
            subplan=sp[0].path if sp else None,
            executions=[e[0].path for e in ex],
            planned_executions=planned,
            active_execution=active,
            fix=fixes.get(num), approved=approved.get(num),
            dependencies=deps.get(num, []),
            index_line=a.index_line, body_line=a.body_line, body_end=a.body_end,
            decided_by=decided_by,
        ))

    for st_i, st in enumerate(statuses):
        # A dependency on an id the plan does not have can never complete: it
        # is reported (parallel-unknown-id / parallel-not-in-index) and, as in
        # the dependency levels, not waited on.
        ready = all(d in complete or d not in known for d in st.dependencies)
        if not ready:
            statuses[st_i] = msgspec.structs.replace(st, ready=False)

    incomplete = [s for s in statuses if s.state != "complete"]
    pending_fixes = [s.number for s in incomplete if s.state == "fix_pending"]
    awaiting = [s.number for s in incomplete if s.state == "subplan_complete"]
    nxt: str | None = None
    if pending_fixes:
        nxt = pending_fixes[0]
    else:
        for s in incomplete:
            if s.state != "subplan_complete" and s.ready:
                nxt = s.number
                break

    hn = plan.handoff_next
    if hn is not None and incomplete is not None:
        by_num = {s.number: s for s in statuses}
        if hn not in by_num:
            problems.append(Problem("handoff-unknown", f"the handoff names achievement {hn}, which is not in the index",
                                    "warning", plan.path, plan.handoff_line))
        elif by_num[hn].state == "complete":
            problems.append(Problem("stale-handoff",
                                    f"the handoff says next is {hn}, which is already complete; "
                                    f"the filesystem says next is {nxt or 'nothing (plan complete)'}",
                                    "warning", plan.path, plan.handoff_line))
        elif hn != nxt:
            if trust_plan:
                nxt = hn
            else:
                problems.append(Problem("stale-handoff",
                                        f"the handoff says next is {hn}, but the filesystem says {nxt}"
                                        f" (use --trust-plan to follow the handoff)",
                                        "warning", plan.path, plan.handoff_line))

    parallel_options: list[str] = []
    if inp.parallel is not None and inp.parallel.achievements:
        parallel_options = [s.number for s in incomplete
                            if s.number != nxt and s.ready and s.state != "subplan_complete"]

    done = len(complete)
    total = len(statuses)
    plan_state: PlanStateName | None = "plan_complete" if total and done == total else None
    state_of_next: PlanStateName | None = next((s.state for s in statuses if s.number == nxt), None)
    return PlanStatus(
        plan=inp.name,
        path=plan.path,
        title=plan.title,
        source=source,
        state=plan_state or state_of_next or ("subplan_complete" if awaiting else "no_subplan"),
        next=nxt,
        done=done,
        total=total,
        achievements=statuses,
        pending_fixes=pending_fixes,
        parallel_options=parallel_options,
        awaiting_review=awaiting,
        handoff_next=hn,
        problems=problems,
        not_plan=plan.not_plan,
    )
