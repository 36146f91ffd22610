"""The engine's side of read-your-writes: an answer first takes the watcher's pending events (its sync),
and trusts the watcher only where it watches: not in a folder it could not watch, not behind a symlink."""

from __future__ import annotations

import os
from pathlib import Path

from perfd.engine.engine import Engine

from engine_helpers import WS


def workspace(ws: WS) -> WS:
    for name in ("P0", "P1"):
        ws.plan(name, ["1.1", "1.2", "1.3"])
        ws.subplan(name, "1.1", "In Progress")
        ws.execution(name, "1.1", status="In Progress")
        ws.feedbacks(name)
    ws.age()
    return ws


class PendingEvents:
    """A watcher's queue: changes written but not yet taken; sync() hands them to the engine."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng
        self.pending: list[str] = []
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1
        taken, self.pending = self.pending, []
        if taken:
            self.eng.changed(taken)


def test_an_answer_takes_the_pending_events_first(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    events = PendingEvents(eng)
    eng.trust_watcher(eng.watch_folders(), sync=events.sync)
    assert eng.generate("@P0").achievement == "1.1"
    events.pending.append(str(ws.approved("P0", "1.1")))  # written; its event queued, not yet taken
    with eng.synced(False):  # without the guarantee: the watcher's word so far, stale
        assert eng.generate("@P0").achievement == "1.1"
    assert eng.generate("@P0").achievement == "1.2"  # with it: taken first
    assert events.pending == [] and events.syncs >= 2


def test_one_sync_per_answer_not_per_input(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    events = PendingEvents(eng)
    eng.trust_watcher(eng.watch_folders(), sync=events.sync)
    eng.status()
    events.syncs = 0
    eng.status()
    assert events.syncs == 1
    eng.trust_watcher(None)  # no watcher: no sync, every input stat-checked
    events.syncs = 0
    eng.status()
    assert events.syncs == 0


def test_a_folder_the_watcher_could_not_watch_is_checked_by_stat(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.trust_watcher(eng.watch_folders(), unwatched=[str(ws.folder("P1").resolve())], sync=lambda: None)
    assert eng.generate("@P0").achievement == eng.generate("@P1").achievement == "1.1"
    ws.approved("P1", "1.1")  # no event will come: P1 is not watched
    ws.approved("P0", "1.1")  # no event either, but P0 is watched: the watcher's word holds
    assert eng.generate("@P1").achievement == "1.2"
    assert eng.generate("@P0").achievement == "1.1"
    assert not eng.cache.watched(str(ws.folder("P1").resolve() / "PLAN_P1.md"))
    assert eng.cache.watched(str(ws.folder("P0").resolve() / "PLAN_P0.md"))


def test_a_symlinked_work_file_is_checked_where_it_lives(ws: WS, tmp_path: Path) -> None:
    workspace(ws)
    target = ws.write("docs/real-subplan.md", (ws.folder("P0") / "subplans" / "SUBPLAN_P0_11.md").read_text())
    link = ws.folder("P0") / "subplans" / "SUBPLAN_P0_11.md"
    link.unlink()
    os.symlink(target, link)
    ws.age()
    eng = ws.engine()
    eng.trust_watcher(eng.watch_folders(), sync=lambda: None)
    before = eng.plan_status("@P0").achievements[0].state
    assert not eng.cache.watched(os.path.join(os.path.realpath(link.parent), link.name))
    target.write_text(target.read_text().replace("In Progress", "Complete"))  # behind the link: no event here
    after = eng.plan_status("@P0").achievements[0].state
    assert before != after


def test_the_verification_pass_finds_what_raised_no_event(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.trust_watcher(eng.watch_folders(), sync=lambda: None)
    before = eng.generate("@P0").state
    execution = ws.folder("P0") / "execution" / "EXECUTION_TASK_P0_11_01.md"
    st = os.stat(execution)
    execution.write_text(execution.read_text().replace("In Progress", "Complete   "))
    os.utime(execution, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, mtime put back: only ctime tells
    assert eng.generate("@P0").state == before  # trusted, and no event came: not seen yet
    found = [p for changed in eng.verification() for p in changed]
    assert str(execution.resolve()) in found
    assert eng.generate("@P0").state != before


def test_a_fix_rewritten_in_place_after_its_resolution_is_pending_again_without_a_watcher(ws: WS) -> None:
    """Which of a FIX and its resolution came last is read from their stats: inputs of the answer, so a FIX
    rewritten in place (no folder listing changes) is seen when answers are validated by stat."""
    workspace(ws)
    fix = ws.fix("P0", "1.1")
    resolution = fix.with_name("FIX_11_RESOLUTION.md")
    resolution.write_text("Fixed.\n")
    ws.age()  # both an hour old (the resolution not older than its FIX): answered; out of the racy window
    eng = ws.engine()
    assert not eng.plan_status("@P0").pending_fixes
    eng.generate("@P0")
    os.utime(fix)  # written again (the same review, a new round), after the resolution: no listing changes
    assert eng.plan_status("@P0").pending_fixes
