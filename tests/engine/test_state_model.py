"""decide() against a reference model written from PLAN-FORMAT.md's state table (property test)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perfd.engine.state import Inputs, decide
from perfd.engine.workspace import FileRef, PlanFiles
from perfd.engine.types import Achievement, ParallelAchievement, ParallelGraph, PlanDoc, WorkDoc

STATUS = {"complete": "✅ Complete", "in_progress": "🔄 In Progress", "not_started": "📋 Design Phase"}
work_status = st.sampled_from(["complete", "in_progress", "not_started"])

achievement_case = st.fixed_dictionaries({
    "approved": st.booleans(),
    "fix": st.booleans(),
    "subplan": st.none() | work_status,
    "executions": st.lists(work_status, max_size=3),
    "planned": st.integers(0, 4),
})


def reference_state(c: dict[str, object]) -> str:
    """The table in PLAN-FORMAT.md, row by row."""
    ex: list[str] = c["executions"] if c["subplan"] is not None else []  # type: ignore[assignment]
    if c["approved"]:
        return "complete"
    if c["fix"]:
        return "fix_pending"
    if c["subplan"] is None:
        return "no_subplan"
    if c["subplan"] == "complete":
        return "subplan_complete"
    if not ex:
        return "subplan_no_execution"
    if any(e != "complete" for e in ex):
        return "active_execution"
    planned = c["planned"] or len(ex)  # no table: the files found are the plan
    if len(ex) < planned:  # type: ignore[operator]
        return "create_next_execution"
    return "subplan_all_executed"


@settings(max_examples=300, deadline=None)
@given(st.lists(achievement_case, min_size=1, max_size=7), st.data())
def test_decide_matches_the_state_table(cases: list[dict[str, object]], data: st.DataObject) -> None:
    nums = [f"1.{i + 1}" for i in range(len(cases))]
    use_parallel = data.draw(st.booleans())
    deps = {n: data.draw(st.lists(st.sampled_from(nums), max_size=2, unique=True)) for n in nums} \
        if use_parallel else {}

    subplans, executions, approved, fixes = [], [], [], []
    for n, c in zip(nums, cases):
        nn = n.replace(".", "")
        if c["approved"]:
            approved.append(FileRef(f"/p/feedbacks/APPROVED_{nn}.md", nn))
        if c["fix"]:
            fixes.append(FileRef(f"/p/feedbacks/FIX_{nn}.md", nn))
        if c["subplan"] is not None:
            planned = [f"{nn}_{k + 1:02d}" for k in range(c["planned"])]  # type: ignore[call-overload]
            subplans.append((FileRef(f"/p/subplans/SUBPLAN_X_{nn}.md", nn),
                             WorkDoc(path="s", kind="subplan", achievement=n, status=c["subplan"],  # type: ignore[arg-type]
                                     status_text=STATUS[c["subplan"]], planned_executions=planned)))  # type: ignore[index]
            for k, es in enumerate(c["executions"]):  # type: ignore[arg-type]
                mm = f"{k + 1:02d}"
                executions.append((FileRef(f"/p/execution/EXECUTION_TASK_X_{nn}_{mm}.md", nn, mm),
                                   WorkDoc(path="e", kind="execution", achievement=n, status=es,
                                           status_text=STATUS[es])))
    plan = PlanDoc(path="/p/PLAN_X.md", title="X",
                   achievements=[Achievement(number=n, title=f"T{n}", index_line=i + 1) for i, n in enumerate(nums)])
    parallel = None
    if use_parallel:
        parallel = ParallelGraph(path="/p/parallel.json",
                                 achievements=[ParallelAchievement(n, deps[n]) for n in nums])
    files = PlanFiles(subplans=[s[0] for s in subplans], executions=[e[0] for e in executions],
                      approved=approved, fixes=fixes, parallel="/p/parallel.json" if use_parallel else None,
                      has_feedback_folder=True)
    st_ = decide(Inputs("X", plan, files, subplans, executions, {}, parallel))

    expected = {n: reference_state(c) for n, c in zip(nums, cases)}
    got = {a.number: a.state for a in st_.achievements}
    assert got == expected

    complete = {n for n, s in expected.items() if s == "complete"}
    ready = {n: all(d in complete for d in deps.get(n, [])) for n in nums}
    incomplete = [n for n in nums if expected[n] != "complete"]
    fixes_ = [n for n in incomplete if expected[n] == "fix_pending"]
    if fixes_:
        nxt = fixes_[0]
    else:
        nxt = next((n for n in incomplete if expected[n] != "subplan_complete" and ready[n]), None)
    assert st_.next == nxt
    assert st_.pending_fixes == fixes_
    assert st_.awaiting_review == [n for n in incomplete if expected[n] == "subplan_complete"]
    assert (st_.done, st_.total) == (len(complete), len(nums))
    if not incomplete:
        assert st_.state == "plan_complete"
    elif nxt is not None:
        assert st_.state == expected[nxt]
    options = [n for n in incomplete if n != nxt and ready[n] and expected[n] != "subplan_complete"] \
        if use_parallel else []
    assert st_.parallel_options == options
    assert st_.source == "review files"
    for a in st_.achievements:
        assert a.ready == ready[a.number]
        if a.state == "active_execution":
            c = cases[nums.index(a.number)]
            k = next(i for i, e in enumerate(c["executions"]) if e != "complete")  # type: ignore[arg-type]
            assert a.active_execution is not None and a.active_execution.endswith(f"_{k + 1:02d}.md")
