"""A cold parse over worker processes: the same answers as parsing in-process, every file once, and
nothing lost when a worker dies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from perfd.engine.cache import parse_pool
from perfd.engine.engine import PARALLEL_MIN_PLANS, Engine
from perfd.engine.kinds import UNPACK
from perfd.engine.cache.parse_pool import WorkerPool, parse_one, workers_wanted

from engine_helpers import WS, counting_parses, plan_text, work_text


def many_plans(ws: WS, n: int) -> None:
    for i in range(n):
        name = f"P{i:03d}"
        group = "a_group" if i % 5 == 0 else None
        ws.plan(name, ["1.1", "1.2", "1.3"], group=group)
        ws.subplan(name, "1.1", "✅ Complete", group=group)
        ws.execution(name, "1.1", status="✅ Complete", group=group)
        ws.subplan(name, "1.2", "In Progress", planned=["12_01", "12_02"], group=group)
        ws.execution(name, "1.2", status="In Progress", group=group)
        if group is None:
            ws.approved(name, "1.1")
    ws.age()


def items_of(ws: WS) -> list[tuple[str, str]]:
    out = []
    for dirpath, _d, files in os.walk(ws.plans):
        for f in sorted(files):
            kind = ("plan" if f.startswith("PLAN_") else "subplan" if f.startswith("SUBPLAN_") else
                    "execution" if f.startswith("EXECUTION_TASK_") else "approved" if f.startswith("APPROVED_")
                    else None)
            if kind:
                out.append((kind, os.path.join(dirpath, f)))
    return out


def test_workers_answer_every_file_once_as_parsing_here_would(ws: WS) -> None:
    many_plans(ws, 12)
    items = items_of(ws)
    got = [p for batch in WorkerPool(2).parse_many(items) for p in batch]
    assert sorted((p.kind, p.path) for p in got) == sorted(items)
    here = {(p.kind, p.path): msgspec.msgpack.encode(p) for p in (parse_one(k, path) for k, path in items)}
    for p in got:
        assert msgspec.msgpack.encode(p) == here[(p.kind, p.path)]
        assert p.key is not None and UNPACK[p.kind](p.value) is not None


def test_an_unreadable_file_comes_back_without_a_value(ws: WS) -> None:
    p = ws.plan("GONE", ["1.1"])
    missing = str(p) + ".not-there"
    got = [x for b in WorkerPool(2).parse_many([("plan", str(p)), ("plan", missing)]) for x in b]
    by_path = {x.path: x for x in got}
    assert by_path[missing].key is None
    assert by_path[str(p)].key is not None and UNPACK["plan"](by_path[str(p)].value).title


def one_worker_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers start as usual, but the first exits at once, taking its chunk with it."""
    real_spawn = parse_pool._spawn

    def spawn(n: int, **kw: Any) -> list[parse_pool._Worker]:
        pool = real_spawn(n, **kw)
        pool[0].proc = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        return pool

    monkeypatch.setattr(parse_pool, "_spawn", spawn)


def no_worker_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a worker fails as it does when the system is out of processes."""

    def spawn(n: int, **kw: Any) -> list[parse_pool._Worker]:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parse_pool, "_spawn", spawn)


def test_a_dead_worker_costs_nothing_but_time(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 6)
    items = items_of(ws)
    one_worker_dead(monkeypatch)
    got = [p for batch in WorkerPool(2).parse_many(items) for p in batch]
    assert sorted((p.kind, p.path) for p in got) == sorted(items)


def test_no_worker_at_all_parses_here(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 3)
    items = items_of(ws)
    no_worker_starts(monkeypatch)
    got = [p for batch in WorkerPool(2).parse_many(items) for p in batch]
    assert sorted((p.kind, p.path) for p in got) == sorted(items)


def test_a_cold_status_of_many_plans_parses_in_workers_with_the_same_answer(
        ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, PARALLEL_MIN_PLANS + 5)
    monkeypatch.setenv("PERFD_PARSE_WORKERS", "1")
    alone = ws.engine()
    expected = alone.status()
    monkeypatch.setenv("PERFD_PARSE_WORKERS", "2")
    eng = ws.engine()
    parsed_here = counting_parses(monkeypatch)
    assert eng.status() == expected
    assert parsed_here == []  # every PLAN, SUBPLAN, EXECUTION_TASK and review file came from a worker
    assert eng.cache.stats().entries >= 5 * len(expected.plans)
    # and the answers of one plan are the same as well
    assert eng.plan_status("@P007") == alone.plan_status("@P007")


def test_few_cold_plans_are_parsed_here(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 3)
    monkeypatch.setenv("PERFD_PARSE_WORKERS", "2")
    eng = ws.engine()
    assert eng.warm() == 0
    eng.status()
    assert eng.cache.stats().misses > 0


def test_the_cache_grows_to_hold_a_large_workspace(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 80)
    monkeypatch.setenv("PERFD_PARSE_WORKERS", "1")
    eng = ws.engine()
    eng.status()
    assert eng.cache.stats().evictions == 0
    ws.write("perfd.toml", "[cache]\ncapacity = 50\n")
    small = ws.engine()
    small.status()
    assert small.cache.capacity == 50 and small.cache.stats().evictions > 0


@pytest.mark.parametrize("raw, expected", [("3", 3), ("1", 1), ("0", None), ("auto", None), ("x", None)])
def test_workers_wanted(raw: str, expected: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFD_PARSE_WORKERS", raw)
    cores = len(os.sched_getaffinity(0))
    assert workers_wanted() == (expected if expected is not None else cores)


def test_a_worker_reads_files_as_the_cache_does(ws: WS, tmp_path: Path) -> None:
    p = ws.plan("X", ["1.1"])
    fresh = parse_one("plan", str(p))
    assert fresh.racy is not None  # just written: the digest rides along, as in the StatCache
    ws.age()
    assert parse_one("plan", str(p)).racy is None
    assert parse_one("nonsense", str(p)).key is None
    sub = parse_one("subplan", str(ws.write("work-space/plans/X/subplans/SUBPLAN_X_11.md",
                                            work_text("subplan", "1.1", "Done"))))
    assert sub.key is not None and UNPACK["subplan"](sub.value).achievement == "1.1"
    assert plan_text(["1.1"])  # the helper is shared with the other engine tests


def test_workers_kept_for_the_next_call_are_reused_then_stopped(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 6)
    items = items_of(ws)
    pool = WorkerPool(2)
    started: list[subprocess.Popen[bytes]] = []
    real_spawn = parse_pool._spawn

    def spawn(n: int, **kw: Any) -> list[parse_pool._Worker]:
        workers = real_spawn(n, **kw)
        started.extend(w.proc for w in workers)
        return workers

    monkeypatch.setattr(parse_pool, "_spawn", spawn)
    first = [p for b in pool.parse_many(items, keep=True) for p in b]
    kept = list(started)
    assert pool.idle() == len(kept) == 2 and all(p.poll() is None for p in kept)
    second = [p for b in pool.parse_many(items) for p in b]
    assert sorted((p.kind, p.path) for p in second) == sorted((p.kind, p.path) for p in first)
    assert started == kept  # reused, not started again
    assert pool.idle() == 0 and all(p.wait(timeout=5) is not None for p in kept)  # then stopped
    list(pool.parse_many(items[:3], keep=True))
    assert pool.idle() >= 1
    pool.close()
    assert pool.idle() == 0 and all(p.wait(timeout=5) is not None for p in started)


def fed(items: list[tuple[str, str]], first: int) -> tuple[list[tuple[str, str]], Any]:
    """parse_many over the first `first` items, the rest fed from another thread in a few pieces, late."""
    import queue
    import threading
    import time

    feed: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def feeder() -> None:
        rest = items[first:]
        for i in range(0, len(rest), 5):
            time.sleep(0.02)  # the workers run dry meanwhile: they must wait for the feed, not stop
            feed.put(rest[i:i + 5])
        feed.put([])
        feed.put(None)

    t = threading.Thread(target=feeder)
    t.start()
    return items[:first], (feed, t)


@pytest.mark.parametrize("first", [0, 4])
def test_items_fed_while_the_workers_parse_are_answered_once_each(ws: WS, first: int) -> None:
    many_plans(ws, 6)
    items = items_of(ws)
    start, (feed, t) = fed(items, first)
    got = [p for batch in WorkerPool(2).parse_many(start, feed=feed) for p in batch]
    t.join()
    assert sorted((p.kind, p.path) for p in got) == sorted(items)
    assert all(p.key is not None for p in got)


def test_a_fed_run_survives_a_dead_worker_and_no_worker_at_all(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 4)
    items = items_of(ws)
    one_worker_dead(monkeypatch)
    start, (feed, t) = fed(items, 3)
    got = [p for batch in WorkerPool(2).parse_many(start, feed=feed) for p in batch]
    t.join()
    assert sorted((p.kind, p.path) for p in got) == sorted(items)
    no_worker_starts(monkeypatch)
    start, (feed, t) = fed(items, 3)
    got = [p for batch in WorkerPool(2).parse_many(start, feed=feed) for p in batch]
    t.join()
    assert sorted((p.kind, p.path) for p in got) == sorted(items)


# -- whole plans worked out by workers (decide_many, Engine.plan_part / take_parts) -------------


def with_loose_plans(ws: WS) -> None:
    """Loose PLAN files sharing a grouping folder with plan folders, each with its own flat SUBPLAN."""
    shared = ws.plans / "a_group"
    for name in ("LOOSE-A", "LOOSE-B"):
        ws.write(shared / f"PLAN_{name}.md", plan_text(["1.1", "1.2"]))
        ws.write(shared / f"SUBPLAN_{name}_11.md", work_text("subplan", "1.1", "In Progress"))


def decided(eng: Engine, workers: int = 2) -> list[parse_pool.PlanPart]:
    plans = eng.workspace.plans()
    eng.fit_capacity(len(plans))
    config = eng.packed_config()
    assert config is not None
    return [p for b in WorkerPool(workers).decide_many(plans, root=eng.root, config=config) for p in b]


def test_plans_worked_out_whole_in_workers_answer_as_the_engine_here(ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 12)
    with_loose_plans(ws)
    ws.age()
    monkeypatch.setenv("PERFD_PARSE_WORKERS", "1")
    alone = ws.engine()
    expected = alone.status()
    eng = ws.engine()
    stamped = time.monotonic()
    parts = decided(eng)
    assert sorted(p.plan.path for p in parts) == sorted(s.path for s in expected.plans)
    assert all(p.summary is not None and p.files for p in parts)  # none came back bare
    loose = next(p for p in parts if p.plan.name == "LOOSE-A")
    loose_files = parse_pool.PARSED_DEC.decode(loose.parsed)
    assert [os.path.basename(x.path) for x in loose_files if x.kind == "subplan"] == ["SUBPLAN_LOOSE-A_11.md"]
    parsed_here = counting_parses(monkeypatch)
    misses = eng.cache.misses
    eng.take_parts(parts, stamped=stamped)
    assert eng.status() == expected  # from the answers alone: the files are still packed
    assert parsed_here == [] and eng.cache.misses == misses
    held = eng.take_held()
    assert held == sum(len(parse_pool.PARSED_DEC.decode(p.parsed)) for p in parts) and held >= 12 * 5
    assert eng.take_held() == 0  # taken once
    assert eng.plan_status("@P007") == alone.plan_status("@P007")
    assert eng.generate("@LOOSE-B") == alone.generate("@LOOSE-B")
    assert parsed_here == []  # every file, listing and answer came from a worker


def test_a_plan_changed_after_its_worker_read_it_is_seen(ws: WS) -> None:
    many_plans(ws, 4)
    eng = ws.engine()
    stamped = time.monotonic()
    parts = decided(eng)
    ws.approved("P001", "1.2")  # after the workers read P001's folders
    eng.take_parts(parts, stamped=stamped)
    got = {s.plan: s for s in eng.status().plans}
    assert got == {s.plan: s for s in ws.engine().status().plans}
    assert "1.2" not in (got["P001"].next or "")


def test_a_dead_worker_or_none_at_all_leaves_plans_bare_to_be_worked_out_here(
        ws: WS, monkeypatch: pytest.MonkeyPatch) -> None:
    many_plans(ws, 10)
    expected = ws.engine().status()
    one_worker_dead(monkeypatch)
    eng = ws.engine()
    parts = decided(eng)
    assert sorted(p.plan.path for p in parts) == sorted(s.path for s in expected.plans)  # each once
    eng.take_parts(parts, stamped=time.monotonic())
    assert eng.status() == expected
    no_worker_starts(monkeypatch)
    eng = ws.engine()
    parts = decided(eng)
    assert len(parts) == len(expected.plans) and all(p.summary is None for p in parts)
    eng.take_parts(parts, stamped=time.monotonic())
    assert eng.status() == expected


def test_a_worker_sends_back_a_plan_it_cannot_pack_bare() -> None:
    ok = parse_pool.PlanPart(parse_pool.PlanRef("X", "/ws/X", "/ws/X/PLAN_X.md"), links=["/ws/link\udcff"])
    back = msgspec.msgpack.decode(parse_pool._sendable_part(ok), type=parse_pool.PlanPart)
    assert back == parse_pool.PlanPart(ok.plan)  # the bare plan: a name met on the way could not cross


def test_plans_whose_names_are_not_utf8_are_not_sent(tmp_path: Path) -> None:
    plans = [parse_pool.PlanRef("X\udcff", str(tmp_path / "X\udcff"), str(tmp_path / "X\udcff" / "PLAN_X\udcff.md"))]
    parts = [p for b in WorkerPool(2).decide_many(plans, root=str(tmp_path), config=b"\x80") for p in b]
    assert parts == [parse_pool.PlanHead(plans[0])]
