"""Workspace discovery, plan files in every layout, @NAME resolution, workspace bounds."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from perfd.engine.errors import UserError

from engine_helpers import WS, by_number, codes, plan_text, work_text


def names(ws: WS) -> list[str]:
    return [p.name for p in ws.engine().workspace.plans()]


# --- discovery ------------------------------------------------------------------------------


def test_feature_folders(ws: WS) -> None:
    ws.plan("BETA", ["1.1"])
    ws.plan("ALPHA", ["1.1"])
    assert names(ws) == ["ALPHA", "BETA"]
    refs = ws.engine().workspace.plans()
    assert refs[0].path == str(ws.plans / "ALPHA" / "PLAN_ALPHA.md")
    assert refs[0].folder == str(ws.plans / "ALPHA")


def test_grouping_folders_one_level_deeper(ws: WS) -> None:
    ws.plan("ACTIVE", ["1.1"])
    ws.plan("PAUSED-ONE", ["1.1"], group="a_paused")
    ws.plan("REAL", ["1.1"], group="a_real-use-cases")
    assert names(ws) == ["ACTIVE", "PAUSED-ONE", "REAL"]
    eng = ws.engine()
    ref = eng.resolve("@PAUSED-ONE")
    assert ref.folder == str(ws.plans / "a_paused" / "PAUSED-ONE")
    st = eng.plan_status("@REAL")
    assert st.next == "1.1"


def test_grouped_plan_files_are_found(ws: WS) -> None:
    ws.plan("P", ["1.1", "1.2"], group="a_paused")
    ws.subplan("P", "1.1", "In Progress", group="a_paused")
    ws.execution("P", "1.1", "01", "🔄 In Progress", group="a_paused")
    fb = ws.folder("P", "a_paused") / "execution" / "feedbacks"
    fb.mkdir(parents=True)
    st = ws.engine().plan_status("@P")
    assert st.source == "review files" and st.state == "active_execution"


def test_other_plan_documents_are_not_plans(ws: WS) -> None:
    ws.plan("FEAT", ["1.1"])
    ws.write(ws.folder("FEAT") / "documentation" / "PLAN_NOTES.md", plan_text(["9.1"], title="notes"))
    ws.write(ws.folder("FEAT") / "PLAN-UPDATE-SUMMARY.md", "# summary\n")
    ws.write(ws.folder("FEAT") / "PLAN_FEAT_OLD_DRAFT.md", plan_text(["8.1"]))
    assert names(ws) == ["FEAT"]
    st = ws.engine().plan_status("@FEAT")
    assert [a.number for a in st.achievements] == ["1.1"]
    with pytest.raises(UserError):
        ws.engine().resolve("@NOTES")


def test_folder_whose_single_plan_file_has_another_name(ws: WS) -> None:
    ws.write(ws.plans / "misc" / "PLAN_RENAMED.md", plan_text(["1.1"]))
    assert names(ws) == ["RENAMED"]


def test_loose_plan_in_a_grouping_folder_beside_plan_folders(ws: WS) -> None:
    # PLAN-FORMAT.md: the loose PLAN is a plan of its own, the grouping folder is not its feature
    # folder, the plan folders beside it stay plans, and <NAME>-RESTRUCTURING/ is another plan.
    ws.write(ws.plans / "a_real" / "PLAN_LOOSE.md", plan_text(["1.1", "1.2"]))
    ws.write(ws.plans / "a_real" / "SUBPLAN_LOOSE_11.md", work_text("subplan", "1.1", "✅ Complete"))
    ws.write(ws.plans / "a_real" / "SUBPLAN_LOOSE-RESTRUCTURING_12.md", work_text("subplan", "1.2", "✅ Complete"))
    ws.plan("INNER", ["1.1"], group="a_real")
    ws.plan("LOOSE-RESTRUCTURING", ["1.1"], group="a_real")
    assert names(ws) == ["INNER", "LOOSE", "LOOSE-RESTRUCTURING"]
    eng = ws.engine()
    ref = eng.resolve("@LOOSE")
    assert (ref.folder, ref.loose) == (str(ws.plans / "a_real"), True)
    assert not eng.resolve("@INNER").loose
    st = eng.plan_status("@LOOSE")
    assert {a.number: a.state for a in st.achievements} == {"1.1": "complete", "1.2": "no_subplan"}
    assert eng.plan_status("@INNER").achievements[0].subplan is None


def test_several_loose_plans_in_a_grouping_folder(ws: WS) -> None:
    ws.write(ws.plans / "a_old" / "PLAN_ONE.md", plan_text(["1.1"]))
    ws.write(ws.plans / "a_old" / "PLAN_TWO.md", plan_text(["1.1"]))
    assert names(ws) == ["ONE", "TWO"]


def test_a_renamed_plan_with_plan_documents_below_is_still_a_feature_folder(ws: WS) -> None:
    ws.write(ws.plans / "misc" / "PLAN_RENAMED.md", plan_text(["1.1"]))
    ws.write(ws.plans / "misc" / "documentation" / "PLAN_NOTES.md", plan_text(["9.1"]))
    ws.write(ws.plans / "misc" / "subplans" / "SUBPLAN_RENAMED_11.md", work_text("subplan", "1.1", "In Progress"))
    eng = ws.engine()
    assert names(ws) == ["RENAMED"]
    assert not eng.resolve("@RENAMED").loose
    assert by_number(eng.plan_status("@RENAMED"))["1.1"].state == "subplan_no_execution"


def test_parallel_json_shared_by_loose_plans_is_read_by_none(ws: WS) -> None:
    ws.write(ws.plans / "PLAN_A.md", plan_text(["1.1", "1.2"]))
    ws.parallel("", {"1.1": ["1.2"], "1.2": []})  # plans/parallel.json
    eng = ws.engine()
    assert eng.workspace.files(eng.resolve("@A")).parallel == str(ws.plans / "parallel.json")
    assert eng.plan_status("@A").next == "1.2"  # 1.1 waits on 1.2
    ws.write(ws.plans / "PLAN_B.md", plan_text(["1.1", "1.2"]))
    eng = ws.engine()
    for name in ("@A", "@B"):
        assert eng.workspace.files(eng.resolve(name)).parallel is None
        assert eng.plan_status(name).next == "1.1"


def test_flat_plan_files_in_the_plans_folder(ws: WS) -> None:
    ws.write(ws.plans / "PLAN_FLAT.md", plan_text(["1.1", "1.2"]))
    ws.write(ws.plans / "SUBPLAN_FLAT_11.md", work_text("subplan", "1.1", "✅ Complete"))
    ws.write(ws.plans / "SUBPLAN_OTHER_12.md", work_text("subplan", "1.2", "✅ Complete"))
    assert names(ws) == ["FLAT"]
    st = ws.engine().plan_status("@FLAT")
    assert st.source == "plan marks"
    assert {a.number: a.state for a in st.achievements} == {"1.1": "complete", "1.2": "no_subplan"}


def test_older_layout_files_next_to_the_plan(ws: WS) -> None:
    ws.plan("OLD", ["1.1", "1.2", "1.3"])
    ws.subplan("OLD", "1.1", "✅ Complete", sub=".")
    ws.subplan("OLD", "1.2", "In Progress", sub=".")
    ws.execution("OLD", "1.2", "01", "🔄 In Progress", sub=".")
    st = ws.engine().plan_status("@OLD")
    assert st.source == "plan marks"
    a = by_number(st)
    assert a["1.1"].state == "complete"
    assert a["1.2"].state == "active_execution"
    assert a["1.2"].active_execution == str(ws.folder("OLD") / "EXECUTION_TASK_OLD_12_01.md")
    assert st.next == "1.2"


def test_archive_folder_named_after_the_feature(ws: WS) -> None:
    ws.plan("ARCH", ["1.1", "1.2", "1.3"])
    ws.feedbacks("ARCH")
    ws.subplan("ARCH", "1.1", "In Progress", sub="arch-archive/subplans")
    ws.execution("ARCH", "1.1", "01", "✅ Complete", sub="arch-archive/execution")
    st = ws.engine().plan_status("@ARCH")
    a = by_number(st)["1.1"]
    assert a.state == "subplan_all_executed"
    assert a.subplan is not None and "arch-archive" in a.subplan


def test_live_subplan_wins_over_an_archived_one(ws: WS) -> None:
    ws.plan("ARCH", ["1.1"])
    ws.feedbacks("ARCH")
    ws.subplan("ARCH", "1.1", "✅ Complete", sub="ARCH-archive")
    live = ws.subplan("ARCH", "1.1", "In Progress")
    assert by_number(ws.engine().plan_status("@ARCH"))["1.1"].subplan == str(live)


def test_archive_location_section(ws: WS) -> None:
    text = plan_text(["1.1", "1.2"], extra="## 📝 Archive Location\n\nArchived to `./old-work/`.")
    ws.plan("LOC", text)
    ws.subplan("LOC", "1.1", "✅ Complete", sub="old-work/2025/subplans")
    st = ws.engine().plan_status("@LOC")
    assert by_number(st)["1.1"].state == "complete"


def test_archive_location_outside_the_plan_folder_is_not_read(ws: WS) -> None:
    text = plan_text(["1.1"], extra="## 📝 Archive Location\n\n`../OTHER/`")
    ws.plan("LOC", text)
    ws.plan("OTHER", ["1.1"])
    ws.subplan("LOC", "1.1", "✅ Complete", sub="../OTHER")  # SUBPLAN_LOC_11.md in OTHER/
    assert by_number(ws.engine().plan_status("@LOC"))["1.1"].state == "no_subplan"


def test_no_plans_folder(tmp_path: Path) -> None:
    from perfd.engine.engine import Engine
    eng = Engine(str(tmp_path))
    assert eng.workspace.plans() == []
    assert eng.status().plans == []
    with pytest.raises(UserError) as ei:
        eng.resolve("@ANY")
    assert ei.value.code == "unknown-plan"


def test_status_lists_every_plan(ws: WS) -> None:
    ws.plan("A", ["1.1"])
    ws.plan("B", ["1.1"], group="a_paused")
    ws.approved("A", "1.1")
    st = ws.engine().status()
    assert [(p.plan, p.state, p.next) for p in st.plans] == [("A", "plan_complete", None), ("B", "no_subplan", "1.1")]


def test_status_summaries_count_problems_as_problem_count(ws: WS) -> None:
    # A directory where the PLAN file should be: one error (unreadable) and whatever follows from it.
    (ws.plans / "LOCKED" / "PLAN_LOCKED.md").mkdir(parents=True)
    ws.plan("CLEAN", ["1.1"])
    eng = ws.engine()
    serious = [p for p in eng.plan_status("@LOCKED").problems if p.severity != "info"]
    assert serious
    by_name = {p.plan: p for p in eng.status().plans}
    assert by_name["LOCKED"].problem_count == len(serious)
    assert by_name["CLEAN"].problem_count == 0
    # On the wire: a count under a name that says so, omitted when zero (the list is PlanStatus.problems).
    wire = msgspec.to_builtins(eng.status())
    locked, clean = sorted(wire["plans"], key=lambda p: p["plan"] != "LOCKED")
    assert locked["problem_count"] == len(serious) and "problems" not in locked
    assert "problem_count" not in clean and "problems" not in clean


# --- @NAME resolution ---------------------------------------------------------------------------


@pytest.fixture
def named(ws: WS) -> WS:
    for n in ("API", "API-CLIENT", "API-SERVER", "LLM-DASHBOARD-CLI", "PROMPT-GENERATOR"):
        ws.plan(n, ["1.1"])
    return ws


@pytest.mark.parametrize("ref,expected", [
    ("@API", "API"),  # exact beats prefix
    ("@api", "API"),  # case-insensitive exact
    ("@API-CLIENT", "API-CLIENT"),
    ("@llm", "LLM-DASHBOARD-CLI"),  # unique case-insensitive prefix
    ("@Prompt", "PROMPT-GENERATOR"),
    ("@DASHBOARD", "LLM-DASHBOARD-CLI"),  # unique substring
    ("@-server", "API-SERVER"),
    ("@PLAN_API-CLIENT.md", "API-CLIENT"),
    ("API-SERVER", "API-SERVER"),  # bare name
])
def test_resolve(named: WS, ref: str, expected: str) -> None:
    assert named.engine().resolve(ref).name == expected


@pytest.mark.parametrize("ref,candidates", [
    ("@API-", ["API-CLIENT", "API-SERVER"]),
    ("@CLI", ["API-CLIENT", "LLM-DASHBOARD-CLI"]),
])
def test_ambiguous_name_lists_candidates(named: WS, ref: str, candidates: list[str]) -> None:
    with pytest.raises(UserError) as ei:
        named.engine().resolve(ref)
    assert ei.value.code == "ambiguous-plan"
    assert sorted(ei.value.candidates) == candidates
    for c in candidates:
        assert "@" + c in ei.value.hint


@pytest.mark.parametrize("ref", ["@NOPE", "@", "@PLAN_.md"])
def test_unknown_name(named: WS, ref: str) -> None:
    with pytest.raises(UserError) as ei:
        named.engine().resolve(ref)
    assert ei.value.code == "unknown-plan"
    assert "API-CLIENT" in ei.value.candidates
    assert "@API-CLIENT" in ei.value.hint


def test_generate_unknown_plan_is_a_user_error(named: WS) -> None:
    with pytest.raises(UserError):
        named.engine().generate("@NOPE")


def test_resolve_by_path(named: WS) -> None:
    eng = named.engine()
    root = str(named.root)
    assert eng.resolve("work-space/plans/API/PLAN_API.md", cwd=root).name == "API"
    assert eng.resolve(os.path.join(root, "work-space", "plans", "API-CLIENT"), cwd="/").name == "API-CLIENT"
    sub = os.path.join(root, "work-space", "plans", "API")
    assert eng.resolve("./PLAN_API.md", cwd=sub).name == "API"
    with pytest.raises(UserError) as ei:
        eng.resolve("work-space/plans/API/missing.md", cwd=root)
    assert ei.value.code == "unknown-plan"


# --- workspace bounds ---------------------------------------------------------------------------


def test_path_outside_the_workspace(named: WS, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "PLAN_X.md"
    outside.parent.mkdir(parents=True)
    outside.write_text(plan_text(["1.1"]))
    eng = named.engine()
    for ref, cwd in ((str(outside), "/"), ("../elsewhere/PLAN_X.md", str(named.root)),
                     ("work-space/../../elsewhere/PLAN_X.md", str(named.root))):
        with pytest.raises(UserError) as ei:
            eng.resolve(ref, cwd=cwd)
        assert ei.value.code == "outside-workspace"
    with pytest.raises(UserError):
        eng.generate(str(outside), cwd="/")


def test_path_leaving_the_workspace_through_a_symlink(named: WS, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "PLAN_API.md").write_text(plan_text(["1.1"]))
    os.symlink(outside, named.root / "link")
    os.symlink(outside / "PLAN_API.md", named.folder("API-SERVER") / "PLAN_LINKED.md")
    eng = named.engine()
    for ref in ("link/PLAN_API.md", "work-space/plans/API-SERVER/PLAN_LINKED.md"):
        with pytest.raises(UserError) as ei:
            eng.resolve(ref, cwd=str(named.root))
        assert ei.value.code == "outside-workspace"
    with pytest.raises(UserError):
        eng.workspace.check_inside(str(named.root / "link" / "PLAN_API.md"))
    assert eng.workspace.check_inside(str(named.folder("API") / "PLAN_API.md"))


def test_symlinked_plan_folder_outside_the_workspace_is_not_served(named: WS, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "EVIL"
    outside.mkdir(parents=True)
    (outside / "PLAN_EVIL.md").write_text(plan_text(["1.1"]))
    os.symlink(outside, named.plans / "EVIL")
    eng = named.engine()
    assert "EVIL" not in [p.name for p in eng.workspace.plans()]
    with pytest.raises(UserError):
        eng.generate("@EVIL")


def test_unreadable_plan_is_a_problem_not_a_crash(ws: WS) -> None:
    # A directory where the PLAN file should be: stat works, reading fails (even as root).
    (ws.plans / "LOCKED" / "PLAN_LOCKED.md").mkdir(parents=True)
    eng = ws.engine()
    st = eng.plan_status("@LOCKED")
    assert "unreadable" in codes(st.problems)
    assert eng.status().plans[0].plan == "LOCKED"


def test_review_files_in_a_plans_folder_shared_by_flat_plans_go_to_none(ws: WS) -> None:
    ws.write(ws.plans / "PLAN_A.md", plan_text(["1.1"]))
    ws.write(ws.plans / "PLAN_B.md", plan_text(["1.1"]))
    ws.write(ws.plans / "APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    eng = ws.engine()
    for name in ("@A", "@B"):
        st = eng.plan_status(name)
        assert st.state != "plan_complete" and st.achievements[0].approved is None


def test_review_files_in_an_archive_folder_count(ws: WS) -> None:
    ws.plan("ARCH", ["1.1", "1.2"])
    ws.write(ws.folder("ARCH") / "arch-archive" / "feedbacks" / "APPROVED_11.md", "# APPROVED: Achievement 1.1\n")
    st = ws.engine().plan_status("@ARCH")
    assert st.source == "review files"
    assert by_number(st)["1.1"].state == "complete"


def test_symlinked_plan_subfolders_leading_outside_are_not_read(ws: WS, tmp_path: Path) -> None:
    ws.plan("SYM", ["1.1"])
    outside = tmp_path / "elsewhere"
    (outside / "feedbacks").mkdir(parents=True)
    (outside / "feedbacks" / "APPROVED_11.md").write_text("# APPROVED: Achievement 1.1\n")
    (outside / "SUBPLAN_SYM_11.md").write_text(work_text("subplan", "1.1", "✅ Complete"))
    os.symlink(outside, ws.folder("SYM") / "execution")
    os.symlink(outside, ws.folder("SYM") / "subplans")
    os.symlink(outside, ws.folder("SYM") / "sym-archive")
    st = ws.engine().plan_status("@SYM")
    a = by_number(st)["1.1"]
    assert a.approved is None and a.subplan is None
    assert a.state == "no_subplan"


# --- one listing per cold generate ----------------------------------------------------------


def listings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the engine's listings of the plans (Workspace.plans) in the one-item list returned."""
    from perfd.engine.workspace import Workspace

    count = [0]
    real = Workspace.plans

    def plans(self: Workspace) -> list[object]:
        count[0] += 1
        return list(real(self))

    monkeypatch.setattr(Workspace, "plans", plans)
    return count


@pytest.mark.parametrize("how", ["default", "@name", "path"])
def test_a_cold_generate_lists_the_plans_once(ws: WS, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.plan("ALPHA", ["1.1"])
    ws.plan("BETA", ["1.1"])
    eng = ws.engine()
    count = listings(monkeypatch)
    cwd = str(ws.plans / "BETA")
    if how == "default":
        result = eng.generate(eng.default_plan_ref(cwd))
    elif how == "@name":
        result = eng.generate("@BETA")
    else:
        result = eng.generate("PLAN_BETA.md", cwd=cwd)
    assert result.plan == "BETA"
    assert count[0] == 1


def test_the_engine_names_its_plans(ws: WS) -> None:
    ws.plan("BETA", ["1.1"])
    ws.plan("ALPHA", ["1.1"], group="a_group")
    eng = ws.engine()
    assert eng.plan_names() == ["ALPHA", "BETA"]
    assert [p.path for p in eng.plans()] == [str(ws.plans / "a_group" / "ALPHA" / "PLAN_ALPHA.md"),
                                             str(ws.plans / "BETA" / "PLAN_BETA.md")]
    assert eng.default_plan_ref(str(ws.plans / "BETA")) == eng.resolve("@BETA")
