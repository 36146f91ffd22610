"""The stat-keyed cache, directly and through the Engine: answers are never stale."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import perfd.engine.cache.cache as cache_mod
import perfd.engine.cache.memo as memo_mod
import perfd.engine.engine as engine_mod
from perfd.engine.cache.cache import StatCache

from engine_helpers import WS

NAME = "DEMO"


@pytest.fixture(params=["fresh", "aged"])
def demo(ws: WS, request: pytest.FixtureRequest) -> WS:
    """A plan whose files were just written (racy window) or written long ago (memoised answers)."""
    ws.plan(NAME, ["1.1", "1.2"])
    ws.subplan(NAME, "1.1", "Planning")
    ws.feedbacks(NAME)
    if request.param == "aged":
        ws.age()
    return ws


def gen(eng: engine_mod.Engine) -> tuple[str | None, str]:
    g = eng.generate("@" + NAME)
    return g.achievement, g.state


# --- through the Engine -----------------------------------------------------------------------


def test_approved_file_changes_the_answer_at_once(demo: WS) -> None:
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    assert gen(eng) == ("1.1", "subplan_no_execution")  # warm
    demo.approved(NAME, "1.1")
    assert gen(eng) == ("1.2", "no_subplan")
    assert eng.plan_status("@" + NAME).done == 1
    assert [p.next for p in eng.status().plans] == ["1.2"]


def test_fix_file_changes_the_answer_at_once(demo: WS) -> None:
    eng = demo.engine()
    demo.approved(NAME, "1.1")
    assert gen(eng) == ("1.2", "no_subplan")
    demo.fix(NAME, "1.1")
    os.remove(demo.feedbacks(NAME) / "APPROVED_11.md")
    assert gen(eng) == ("1.1", "fix_pending")


def test_editing_a_subplan_status_changes_the_state(demo: WS) -> None:
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    demo.subplan(NAME, "1.1", "✅ Complete")  # a different size
    assert eng.plan_status("@" + NAME).achievements[0].state == "subplan_complete"
    assert gen(eng) == ("1.2", "no_subplan")
    demo.subplan(NAME, "1.1", "🔄 In Progress, again")
    assert gen(eng) == ("1.1", "subplan_no_execution")


def test_new_execution_file_changes_the_state(demo: WS) -> None:
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    demo.execution(NAME, "1.1", "01", "🔄 In Progress")
    assert gen(eng) == ("1.1", "active_execution")


def test_plan_edit_changes_the_answer(demo: WS) -> None:
    eng = demo.engine()
    assert eng.plan_status("@" + NAME).total == 2
    demo.plan(NAME, ["0.9", "1.1", "1.2"])
    st = eng.plan_status("@" + NAME)
    assert st.total == 3 and st.next == "0.9"


def test_same_size_rewrite_within_the_same_mtime_tick_is_not_served_stale(
        demo: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    # A wide racy window: the test does not depend on how fast it runs.
    monkeypatch.setattr(cache_mod, "RACY_WINDOW_NS", 3600 * 10**9)
    monkeypatch.setattr(memo_mod, "RACY_WINDOW_NS", 3600 * 10**9)
    sp = demo.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_11.md"
    now = time.time_ns()
    os.utime(sp, ns=(now, now))
    before = os.stat(sp)
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    assert gen(eng) == ("1.1", "subplan_no_execution")

    data = sp.read_bytes()
    new = data.replace(b"**Status**: Planning", b"**Status**: Complete")
    assert new != data and len(new) == len(data)
    with open(sp, "r+b") as f:  # in place: same inode
        f.write(new)
    os.utime(sp, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(sp)
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (before.st_mtime_ns, before.st_size, before.st_ino)

    assert gen(eng) == ("1.2", "no_subplan")
    assert eng.plan_status("@" + NAME).awaiting_review == ["1.1"]


def test_same_tick_new_file_in_a_folder_is_seen(demo: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "RACY_WINDOW_NS", 3600 * 10**9)
    monkeypatch.setattr(memo_mod, "RACY_WINDOW_NS", 3600 * 10**9)
    fb = demo.feedbacks(NAME)
    now = time.time_ns()
    os.utime(fb, ns=(now, now))
    before = os.stat(fb)
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    demo.approved(NAME, "1.1")
    os.utime(fb, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert gen(eng) == ("1.2", "no_subplan")


def test_deleted_file_between_calls(demo: WS) -> None:
    eng = demo.engine()
    assert gen(eng) == ("1.1", "subplan_no_execution")
    os.remove(demo.folder(NAME) / "subplans" / f"SUBPLAN_{NAME}_11.md")
    assert gen(eng) == ("1.1", "no_subplan")


def test_engine_invalidate(demo: WS) -> None:
    eng = demo.engine()
    gen(eng)
    assert len(eng.cache) > 0
    assert eng.invalidate(str(demo.folder(NAME))) > 0
    gen(eng)
    assert eng.invalidate() > 0 and len(eng.cache) == 0
    assert gen(eng) == ("1.1", "subplan_no_execution")


def test_warm_calls_hit_the_cache(ws: WS) -> None:
    ws.plan(NAME, ["1.1", "1.2"])
    ws.subplan(NAME, "1.1", "Planning")
    ws.age()
    eng = ws.engine()
    eng.plan_status("@" + NAME)
    misses = eng.cache.misses
    eng.plan_status("@" + NAME)
    assert eng.cache.misses == misses and eng.cache.hits > 0


# --- StatCache directly ------------------------------------------------------------------------


def _old_file(path: Path, text: str) -> str:
    path.write_text(text)
    t = time.time() - 3600
    os.utime(path, (t, t))
    return str(path)


def _count(calls: list[str]):  # type: ignore[no-untyped-def]
    def parse(data: bytes, path: str) -> bytes:
        calls.append(path)
        return data
    return parse


def test_statcache_hits_and_misses(tmp_path: Path) -> None:
    p = _old_file(tmp_path / "a.md", "one")
    c = StatCache(capacity=8)
    calls: list[str] = []
    assert c.file("k", p, _count(calls)) == b"one"
    assert c.file("k", p, _count(calls)) == b"one"
    assert c.file("other-kind", p, _count(calls)) == b"one"
    assert (c.hits, c.misses, len(calls)) == (1, 2, 2)
    s = c.stats()
    assert (s.hits, s.misses, s.entries, s.capacity) == (1, 2, 2, 8)
    assert s.hit_rate == pytest.approx(1 / 3)
    # three timed lookups (no samples would read 0.0, as a fresh cache does)
    assert 0 < s.lookup_p50_us <= s.lookup_p99_us
    assert (StatCache(capacity=8).stats().lookup_p50_us, StatCache(capacity=8).stats().lookup_p99_us) == (0.0, 0.0)


def test_statcache_changed_file_is_a_miss(tmp_path: Path) -> None:
    p = _old_file(tmp_path / "a.md", "one")
    c = StatCache()
    calls: list[str] = []
    c.file("k", p, _count(calls))
    _old_file(tmp_path / "a.md", "two!")
    assert c.file("k", p, _count(calls)) == b"two!"
    assert c.misses == 2 and c.hits == 0


def test_statcache_evictions_with_small_capacity(tmp_path: Path) -> None:
    paths = [_old_file(tmp_path / f"{i}.md", str(i)) for i in range(4)]
    c = StatCache(capacity=2)
    calls: list[str] = []
    for p in paths[:3]:
        c.file("k", p, _count(calls))
    assert c.evictions == 1 and len(c) == 2
    c.file("k", paths[0], _count(calls))  # evicted (least recently used): parsed again
    assert c.misses == 4 and c.evictions == 2
    c.file("k", paths[0], _count(calls))
    assert c.hits == 1
    c.file("k", paths[2], _count(calls))  # used recently: still there
    assert c.hits == 2 and c.stats().evictions == 2


def test_statcache_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StatCache(capacity=0)


def test_statcache_expirations_with_a_fake_clock(tmp_path: Path) -> None:
    p = _old_file(tmp_path / "a.md", "one")
    now = [1000.0]
    c = StatCache(ttl_s=10.0, clock=lambda: now[0])
    calls: list[str] = []
    c.file("k", p, _count(calls))
    now[0] += 9.0
    c.file("k", p, _count(calls))
    assert (c.hits, c.misses, c.expirations) == (1, 1, 0)
    now[0] += 11.0
    c.file("k", p, _count(calls))
    assert (c.hits, c.misses, c.expirations) == (1, 2, 1)
    assert len(calls) == 2
    assert c.stats().expirations == 1


def test_statcache_invalidations(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    a = _old_file(tmp_path / "d" / "a.md", "a")
    b = _old_file(tmp_path / "d" / "b.md", "b")
    o = _old_file(tmp_path / "o.md", "o")
    c = StatCache()
    calls: list[str] = []
    for p in (a, b, o):
        c.file("k", p, _count(calls))
    c.file("k2", a, _count(calls))
    assert c.invalidate(a) == 2 and c.invalidations == 2
    assert c.invalidate(a) == 0
    assert c.invalidate_under(str(tmp_path / "d")) == 1 and c.invalidations == 3
    assert c.clear() == 1 and c.invalidations == 4 and len(c) == 0
    c.file("k", o, _count(calls))
    assert c.misses == 5 and c.stats().invalidations == 4


def test_statcache_folder_listing(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "x").write_text("x")
    c = StatCache()
    scans: list[str] = []

    def scan(path: str, names: list[str]) -> list[str]:
        scans.append(path)
        return names

    assert c.folder("names", str(d), scan) == ["x"]
    (d / "a").write_text("a")
    assert c.folder("names", str(d), scan) == ["a", "x"]
    assert c.folder("names", str(d), scan) == ["a", "x"]


def test_statcache_missing_file_raises_oserror(tmp_path: Path) -> None:
    c = StatCache()
    with pytest.raises(OSError):
        c.file("k", str(tmp_path / "missing.md"), _count([]))
