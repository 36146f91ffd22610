"""Warm answers cost what changed: while a watcher is healthy nothing it vouches for is stat'ed, its events
drop exactly what they touch, and without it every input is validated by stat (and counted)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perfd.engine.engine import Engine

from engine_helpers import WS


class Stats:
    """Counts os.stat calls (what a warm answer costs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real = os.stat

        def stat(path: Any, *a: Any, **kw: Any) -> os.stat_result:
            self.calls.append(os.fspath(path))
            return real(path, *a, **kw)

        monkeypatch.setattr(os, "stat", stat)

    def counting(self) -> Iterator[None]:
        self.calls.clear()
        yield


@pytest.fixture
def stats(monkeypatch: pytest.MonkeyPatch) -> Stats:
    return Stats(monkeypatch)


def workspace(ws: WS, n: int = 6) -> WS:
    for i in range(n):
        name = f"P{i}"
        ws.plan(name, ["1.1", "1.2", "1.3"], group="a_group" if i % 2 else None)
        ws.subplan(name, "1.1", "In Progress", group="a_group" if i % 2 else None)
        ws.execution(name, "1.1", status="In Progress", group="a_group" if i % 2 else None)
        ws.feedbacks(name, group="a_group" if i % 2 else None)
    ws.age()
    return ws


def beyond_plans_folder(ws: WS) -> set[str]:
    return {str(ws.root), str(ws.root / "work-space" / "archive")}


def trusted(ws: WS) -> Engine:
    eng = ws.engine()
    eng.trust_watcher(eng.watch_folders())
    return eng


def test_warm_answers_stat_nothing_while_the_watcher_is_healthy(ws: WS, stats: Stats) -> None:
    workspace(ws)
    eng = trusted(ws)
    first = eng.status()
    eng.generate("@P3")
    stats.calls.clear()
    assert eng.status() == first
    # Only the folders discovery reads beyond the plans folder (Workspace.watched_folders: the root's own
    # listing, where plans may be kept; the archive beside the plans folder), which its watcher does not see.
    assert set(stats.calls) <= beyond_plans_folder(ws), stats.calls
    eng.generate("@P3")
    # Only what no watcher of the plans folder sees: the prompt templates.
    assert stats.calls and not [c for c in stats.calls if c.startswith(str(ws.plans))], stats.calls
    assert eng.cache.stats().trusted_hits > 0


def test_without_a_watcher_every_input_is_stat_checked_and_counted(ws: WS, stats: Stats) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.status()
    stats.calls.clear()
    before = eng.memo_stat_checks
    eng.status()
    assert len(stats.calls) >= 6 * 3  # every plan's files and folders
    assert eng.memo_stat_checks == before + 1
    eng.trust_watcher(eng.watch_folders())
    eng.status()  # checked once by stat: what changed before the watcher started was never reported
    stats.calls.clear()
    eng.status()
    assert set(stats.calls) <= beyond_plans_folder(ws), stats.calls
    eng.trust_watcher(None)  # the watcher stopped (or overflowed)
    eng.status()
    assert len(stats.calls) >= 6 * 3


def test_an_event_drops_exactly_what_it_touches(ws: WS, stats: Stats) -> None:
    workspace(ws)
    eng = trusted(ws)
    eng.status()
    assert eng.generate("@P0").achievement == "1.1"
    approved = ws.approved("P0", "1.1")
    os.utime(approved, (1_700_000_000, 1_700_000_000))
    stats.calls.clear()
    eng.changed([str(approved)])
    after = eng.status()
    assert {p.plan: p.done for p in after.plans}["P0"] == 1
    assert eng.generate("@P0").achievement == "1.2"
    # Of the plans folder, only P0's feedback folder and file were looked at again, not every plan's folders
    # (the prompt templates, outside it, are stat'ed: no watcher vouches for them).
    inside = [c for c in stats.calls if c.startswith(str(ws.plans))]
    assert inside and all(c.startswith(str(ws.folder("P0"))) for c in inside), inside


def test_a_change_the_watcher_has_not_reported_yet_is_not_seen_without_a_sync(ws: WS) -> None:
    """What trusting a watcher without a sync means: the answer changes when its event arrives (the daemon's
    watcher always has a sync: see test_freshness)."""
    workspace(ws)
    eng = trusted(ws)
    eng.status()
    approved = ws.approved("P0", "1.1")
    assert eng.generate("@P0").achievement == "1.1"  # no event yet
    eng.changed([str(approved)])
    assert eng.generate("@P0").achievement == "1.2"


def test_changes_made_before_the_watcher_started_are_seen(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.status()
    ws.approved("P0", "1.1")  # nobody watching
    eng.trust_watcher(eng.watch_folders())
    assert {p.plan: p.done for p in eng.status().plans}["P0"] == 1


def test_a_folder_moved_away_drops_everything_under_it(ws: WS) -> None:
    workspace(ws)
    eng = trusted(ws)
    eng.status()
    old = ws.folder("P0")
    shutil.move(str(old), str(ws.root / "P0.bak"))
    ws.plan("P0", ["9.1"])  # another plan under the same name
    ws.age()
    # inotify reports the folder itself (moved away, created), not each file in it
    eng.changed([str(old)])
    st = eng.plan_status("@P0")
    assert [a.number for a in st.achievements] == ["9.1"]


def test_files_behind_a_symlink_are_always_stat_checked(ws: WS, tmp_path: Path) -> None:
    workspace(ws)
    store = ws.root / "elsewhere"  # inside the workspace, outside the watched plans folder
    ws.plan("LINKED", ["1.1", "1.2"], group=None)
    shutil.move(str(ws.folder("LINKED")), str(store))
    os.symlink(store, ws.folder("LINKED"))
    ws.age()
    eng = trusted(ws)
    assert eng.generate("@LINKED").achievement == "1.1"
    (store / "execution" / "feedbacks").mkdir(parents=True)
    (store / "execution" / "feedbacks" / "APPROVED_11.md").write_text("# APPROVED: Achievement 1.1\n")
    # No event comes for a change behind the link (the watcher does not see it): stat did.
    assert eng.generate("@LINKED").achievement == "1.2"


def test_the_watchers_word_is_counted_in_the_stats(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.status()
    eng.plan_status("@P1")
    checked = eng.cache.stats()
    assert checked.stat_checks > 0 and checked.trusted_hits == 0
    eng.trust_watcher(eng.watch_folders())
    eng.plan_status("@P1")
    eng.plan_status("@P1")
    assert eng.cache.stats().trusted_hits > 0


def test_after_a_change_a_status_recomputes_only_the_plans_it_touched(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    from perfd.engine import engine as engine_mod

    workspace(ws)
    for trust in (True, False):
        eng = ws.engine()
        eng.trust_watcher(eng.watch_folders() if trust else None)
        decided: list[str] = []
        real = engine_mod.decide

        def decide(inputs: Any, **kw: Any) -> Any:
            decided.append(inputs.name)
            return real(inputs, **kw)

        monkeypatch.setattr(engine_mod, "decide", decide)
        eng.status()
        assert sorted(decided) == [f"P{i}" for i in range(6)]
        decided.clear()
        approved = ws.approved("P0", "1.1") if trust else ws.fix("P2", "1.1")
        os.utime(approved, (1_700_000_000, 1_700_000_000))
        os.utime(approved.parent, (1_700_000_100, 1_700_000_100))
        eng.changed([str(approved)])
        st = eng.status()
        assert decided == (["P0"] if trust else ["P2"])
        assert {p.plan: p.pending_fixes for p in st.plans}["P2"] == ([] if trust else ["1.1"])
        monkeypatch.setattr(engine_mod, "decide", real)


def test_an_answer_worked_out_since_the_request_arrived_is_taken_without_a_stat(ws: WS, stats: Stats) -> None:
    workspace(ws)
    eng = ws.engine()
    asked = time.monotonic()
    first = eng.status()  # as a warm-up the request waited for would
    stats.calls.clear()
    with eng.answering(asked):
        assert eng.status() == first
    assert stats.calls == []
    with eng.answering(time.monotonic()):  # a later request: what was worked out before it is checked
        assert eng.status() == first
    assert len(stats.calls) >= 6 * 3
    assert eng.asked_at is None


def test_a_change_after_an_answer_is_seen_by_a_request_that_arrives_after_it(ws: WS) -> None:
    workspace(ws)
    eng = ws.engine()
    assert eng.generate("@P0").achievement == "1.1"
    ws.approved("P0", "1.1")
    with eng.answering(time.monotonic()):
        assert eng.generate("@P0").achievement == "1.2"


def test_a_recheck_after_the_watcher_starts_vouches_for_what_held_and_drops_what_changed(
        ws: WS, stats: Stats) -> None:
    workspace(ws)
    eng = ws.engine()
    eng.status()
    sub = ws.folder("P0") / "subplans" / "SUBPLAN_P0_11.md"
    sub.write_text(sub.read_text().replace("In Progress", "✅ Complete"))
    os.utime(sub, (1_700_000_000, 1_700_000_000))  # changed, and out of the racy window
    eng.trust_watcher(eng.watch_folders())
    checked = eng.cache.recheck()
    assert checked >= 6 * 3
    assert eng.cache.recheck() == 0  # once
    stats.calls.clear()
    doc = eng.plan_doc(eng.resolve("@P3"))  # held from before the watcher: vouched for now, not stat'ed
    assert doc.achievements and set(stats.calls) <= beyond_plans_folder(ws), stats.calls
    assert eng.cache.stats().invalidations >= 1  # the changed SUBPLAN's entry went
    assert eng.plan_status("@P0") == ws.engine().plan_status("@P0")


def test_a_recheck_in_slices_with_requests_between_them_checks_each_entry_once_as_in_one_go(
        ws: WS, stats: Stats) -> None:
    workspace(ws)
    whole, sliced = ws.engine(), ws.engine()
    whole.status()
    sliced.status()
    sub = ws.folder("P0") / "subplans" / "SUBPLAN_P0_11.md"
    sub.write_text(sub.read_text().replace("In Progress", "✅ Complete"))
    os.utime(sub, (1_700_000_000, 1_700_000_000))  # changed, and out of the racy window
    for eng in (whole, sliced):
        eng.trust_watcher(eng.watch_folders())
    checked = whole.cache.recheck()
    slices = []
    for n in sliced.cache.rechecking(step=5):
        slices.append(n)
        sliced.plan_status("@P0")  # a request between two slices: it checks (and drops) what it reads itself
    assert len(slices) > 1 and sum(slices) <= checked
    assert sliced.cache.recheck() == 0  # every entry checked, by a slice or by the request
    assert sliced.plan_status("@P0") == whole.plan_status("@P0") == ws.engine().plan_status("@P0")
    assert sliced.status() == whole.status()
    stats.calls.clear()
    sliced.plan_doc(sliced.resolve("@P3"))  # vouched for now, not stat'ed
    assert set(stats.calls) <= beyond_plans_folder(ws), stats.calls
