"""The building blocks on their own: rate limiter, breaker, history, cache store."""

from __future__ import annotations

import logging
import os
import time

import anyio
import pytest
from fakeserver import max_in_window
from hypothesis import given, settings
from hypothesis import strategies as st

from perfd.llm import CachedResponse, CallRecord, CircuitBreaker, History, LLMCircuitOpen, RateLimiter, ResponseCache
from perfd.llm.errors import LLMRequestTooLarge
from perfd.llm.ratelimit import Reservation, parse_reset


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- rate limiter -------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.floats(0.0, 0.7),  # time passing before the op
        st.sampled_from(["acquire", "acquire", "acquire", "commit", "reconcile"]),
        st.integers(1, 40),  # tokens asked for
        st.floats(0.0, 1.0),  # where between admission and commit the server "sees" it
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops=ops, rpm=st.integers(1, 6), tpm=st.integers(40, 120))
def test_no_window_ever_exceeds_rpm_or_tpm(ops: list[tuple[float, str, int, float]], rpm: int, tpm: int) -> None:
    """Whatever the timing, admissions, commits and reconciliations: every
    window of length W, as the server sees it, holds <= rpm requests and
    <= tpm tokens (the server sees a request between admission and commit)."""
    clock = FakeClock()
    window = 1.0
    limiter = RateLimiter(rpm=rpm, tpm=tpm, window_s=window, clock=clock)
    pending: list[tuple[Reservation, float, float]] = []
    done: list[tuple[float, Reservation]] = []
    for dt, op, tokens, where in ops:
        clock.now += dt
        if op == "acquire":
            r = limiter.try_acquire(tokens)
            if r is not None:
                pending.append((r, clock.now, where))
        elif op == "commit" and pending:
            r, admitted, where_seen = pending.pop(0)
            limiter.commit(r)
            done.append((admitted + (clock.now - admitted) * where_seen, r))
        elif op == "reconcile" and done:
            _, r = done[-1]
            limiter.reconcile(r, max(0, r.tokens - tokens))  # usage below the estimate
    for r, admitted, _ in pending:  # still in flight: the server saw them at admission at the latest
        done.append((admitted, r))
    arrivals = [t for t, _ in done]
    assert max_in_window(arrivals, [1] * len(done), window) <= rpm
    assert max_in_window(arrivals, [r.tokens for _, r in done], window) <= tpm


def test_a_full_window_frees_exactly_one_window_after_the_commit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=2, tpm=None, window_s=10.0, clock=clock)
    a, b = limiter.try_acquire(1), limiter.try_acquire(1)
    assert a and b and limiter.try_acquire(1) is None
    clock.now += 100  # in flight for ages: still counted
    assert limiter.try_acquire(1) is None
    limiter.commit(a)
    clock.now += 9.99
    assert limiter.try_acquire(1) is None
    clock.now += 0.02
    assert limiter.try_acquire(1) is not None


def test_requests_larger_than_tpm_fail_instead_of_waiting_forever() -> None:
    limiter = RateLimiter(rpm=None, tpm=100, window_s=1.0)
    with pytest.raises(LLMRequestTooLarge, match="tpm=100"):
        anyio.run(limiter.acquire, 101)


def test_server_headers_shrink_capacity_until_reset() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm=10, tpm=1000, window_s=60.0, clock=clock)
    limiter.observe({"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "1s",
                     "x-ratelimit-remaining-tokens": "500", "x-ratelimit-reset-tokens": "6m0s"})
    assert limiter.try_acquire(100) and limiter.try_acquire(100)
    assert limiter.try_acquire(100) is None  # the server said: 2 requests left
    clock.now += 1.01
    assert limiter.try_acquire(100) is not None
    assert limiter.try_acquire(300) is None  # 500 tokens left per the server, 300 used
    # Unlimited locally: "0 remaining" still pauses until the reset.
    free = RateLimiter(rpm=None, tpm=None, clock=clock)
    free.observe({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms"})
    assert free.try_acquire(1) is None
    clock.now += 0.26
    assert free.try_acquire(1) is not None


def test_parse_reset_formats() -> None:
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == pytest.approx(0.02)
    assert parse_reset("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_reset("2.5") == 2.5
    assert parse_reset("soon") is None and parse_reset(None) is None and parse_reset("5 s") is None


async def test_waiters_are_served_first_come_first_served() -> None:
    limiter = RateLimiter(rpm=1, tpm=None, window_s=0.15)
    first = await limiter.acquire(1)
    order: list[int] = []

    async def waiter(i: int) -> None:
        r = await limiter.acquire(1)
        order.append(i)
        limiter.commit(r)

    async with anyio.create_task_group() as tg:
        for i in range(3):
            tg.start_soon(waiter, i)
            await anyio.sleep(0.01)
        limiter.commit(first)
    assert order == [0, 1, 2]
    assert limiter.waited_s > 0.3


# -- circuit breaker ------------------------------------------------------------

def test_breaker_opens_fails_fast_probes_and_recovers() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=5.0, name="http://x", clock=clock)
    for _ in range(2):
        assert breaker.before_attempt() is False
        breaker.record("failure", probe=False)
    breaker.before_attempt()
    breaker.record("success", probe=False)  # a success resets the count
    for _ in range(3):
        breaker.before_attempt()
        breaker.record("failure", probe=False)
    assert breaker.state == "open" and breaker.times_opened == 1
    with pytest.raises(LLMCircuitOpen, match="failing fast") as info:
        breaker.before_attempt()
    assert info.value.retry_in_s == pytest.approx(5.0)
    clock.now += 5.0
    assert breaker.state == "half_open"
    assert breaker.before_attempt() is True  # the probe
    with pytest.raises(LLMCircuitOpen, match="probe"):
        breaker.before_attempt()  # only one probe at a time
    breaker.record("failure", probe=True)
    assert breaker.state == "open"  # a failed probe re-opens for a full cool-down
    clock.now += 5.0
    assert breaker.before_attempt() is True
    breaker.record("neutral", probe=True)  # e.g. cancelled: someone else may probe
    assert breaker.before_attempt() is True
    breaker.record("success", probe=True)
    assert breaker.state == "closed" and breaker.consecutive_failures == 0


# -- history ---------------------------------------------------------------------

async def test_history_filters_by_workspace_plan_model_and_time(tmp_path: object) -> None:
    from perfd.llm import Filter

    history = History(os.path.join(str(tmp_path), "h.sqlite3"), max_rows=1000)
    now = time.time()
    for ts, ws, plan, model in ((now - 5 * 86400, "/w1", "A", "m1"), (now - 60, "/w1", "A", "m2"),
                                (now - 30, "/w2", "A", "m1"), (now, None, "B", "m1")):
        history.record(CallRecord(ts=ts, model=model, latency_ms=1, outcome="ok", plan=plan, workspace=ws))
    await history.flush()
    assert sum(s.calls for s in history.by_plan()) == 4
    assert [(s.group, s.calls) for s in history.by_plan(where=Filter(workspace="/w1"))] == [("A", 2)]
    assert sum(s.calls for s in history.by_outcome(where=Filter(model="m1"))) == 3
    assert sum(s.calls for s in history.by_outcome(where=Filter(workspace="/w1", since=now - 3600))) == 1
    assert sum(s.calls for s in history.by_day(days=2, now=now, where=Filter(plan="A"))) == 2
    assert {s.group: s.calls for s in history.by_model(where=Filter(workspace="/w1"))} == {"m1": 1, "m2": 1}
    history.close()


def test_history_keeps_the_rows_of_a_file_written_before_workspaces_were_recorded(tmp_path: object) -> None:
    import sqlite3

    path = os.path.join(str(tmp_path), "old.sqlite3")
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE calls (id INTEGER PRIMARY KEY, ts REAL NOT NULL, day TEXT NOT NULL,
        plan TEXT, achievement TEXT, state TEXT, model TEXT NOT NULL, latency_ms REAL NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL NOT NULL,
        cache_hit INTEGER NOT NULL, outcome TEXT NOT NULL, error TEXT, attempts INTEGER NOT NULL,
        stream INTEGER NOT NULL); PRAGMA user_version=1;""")
    conn.execute("INSERT INTO calls(ts, day, plan, model, latency_ms, prompt_tokens, completion_tokens, cost,"
                 " cache_hit, outcome, attempts, stream) VALUES (1, '2026-01-01', 'OLD', 'm', 1, 1, 1, 0.5, 0, 'ok', 1, 0)")
    conn.commit()
    conn.close()
    history = History(path)
    [old] = history.by_plan()
    assert old.group == "OLD" and old.cost == 0.5 and old.cost_saved == 0.0
    history.record(CallRecord(ts=2, model="m", latency_ms=1, outcome="ok", plan="NEW", workspace="/w"))
    history.close()
    again = History(path)
    assert {s.group for s in again.by_plan()} == {"OLD", "NEW"}
    again.close()


async def test_history_queries_by_plan_day_and_outcome(tmp_path: object) -> None:
    history = History(os.path.join(str(tmp_path), "h.sqlite3"), max_rows=1000)
    now = time.time()
    rows = [
        CallRecord(ts=now - 2 * 86400, model="m", latency_ms=10, outcome="ok", plan="A", prompt_tokens=5, completion_tokens=5, cost=0.1),
        CallRecord(ts=now - 60, model="m", latency_ms=30, outcome="ok", plan="A", achievement="a1", state="doing", prompt_tokens=1, completion_tokens=2, cost=0.2),
        CallRecord(ts=now - 30, model="m", latency_ms=1, outcome="ok", plan="A", cache_hit=True, prompt_tokens=1, completion_tokens=2, cost_saved=0.05),
        CallRecord(ts=now - 10, model="m", latency_ms=50, outcome="timeout", plan="B", error="timed out"),
        CallRecord(ts=now, model="m", latency_ms=5, outcome="cancelled", plan="B"),
    ]
    for row in rows:
        history.record(row)
    await history.flush()
    plans = {s.group: s for s in history.by_plan()}
    assert plans["A"].calls == 3 and plans["A"].cache_hits == 1 and plans["A"].errors == 0
    # Tokens are counted as paid only when the model answered; a cache hit's are saved, as its cost is.
    assert plans["A"].cost == pytest.approx(0.3) and plans["A"].prompt_tokens == 6
    assert plans["A"].completion_tokens == 7 and plans["A"].tokens_saved == 3
    assert plans["A"].cost_saved == pytest.approx(0.05)
    assert plans["B"].errors == 1  # cancelled is not an error
    assert [s.group for s in history.by_plan()] == ["B", "A"]  # most recently active first
    assert [s.calls for s in history.by_plan("A", since=now - 3600)] == [2]
    days = history.by_day(days=7, now=now)
    assert sum(d.calls for d in days) == 5 and days[0].group == rows[-1].day
    assert history.by_day(days=1, now=now)[0].calls == 4
    outcomes = {s.group: s.calls for s in history.by_outcome()}
    assert outcomes == {"ok": 3, "timeout": 1, "cancelled": 1}
    recent = history.calls(plan="A", limit=2)
    assert [r.latency_ms for r in recent] == [1, 30] and recent[1].achievement == "a1" and recent[0].cache_hit
    assert history.calls(outcome="timeout")[0].error == "timed out"
    plan_sql = history._store.run(lambda c: c.execute(
        "EXPLAIN QUERY PLAN SELECT plan, count(*) FROM calls WHERE plan = ? GROUP BY plan", ("A",)).fetchall())
    assert "calls_plan" in str(plan_sql)
    history.close()


async def test_history_is_bounded(tmp_path: object) -> None:
    history = History(os.path.join(str(tmp_path), "h.sqlite3"), max_rows=5)
    for i in range(12):
        history.record(CallRecord(ts=time.time() + i, model="m", latency_ms=float(i), outcome="ok"))
    await history.flush()
    assert history.count() == 5
    assert sorted(r.latency_ms for r in history.calls(limit=10)) == [7, 8, 9, 10, 11]
    history.close()


# -- cache store -------------------------------------------------------------------

async def test_cache_memory_lru_ttl_and_disk_eviction(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "c.sqlite3")
    clock = FakeClock()
    cache = ResponseCache(path, ttl_s=100, memory_entries=2, max_entries=3, clock=clock)
    entries = {f"k{i}": CachedResponse(text=f"t{i}", model="m") for i in range(5)}
    for key, value in entries.items():
        assert await cache.get(key) is None
        cache.put(key, value)
        clock.now += 1
    await cache.flush()
    assert len(cache) == 2  # memory LRU bound
    rows = cache._store.run(lambda c: c.execute("SELECT key FROM responses ORDER BY key").fetchall())  # type: ignore[union-attr]
    assert [r[0] for r in rows] == ["k2", "k3", "k4"]  # disk bound: least recently used dropped
    assert (await cache.get("k2")) == entries["k2"]  # from disk
    clock.now += 200  # past the TTL
    assert await cache.get("k4") is None
    cache.close()


async def test_corrupt_cache_file_is_set_aside_and_rebuilt(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    path = os.path.join(str(tmp_path), "c.sqlite3")
    with open(path, "wb") as f:
        f.write(b"this is not a database" * 100)
    caplog.set_level(logging.WARNING, logger="perfd.llm")
    cache = ResponseCache(path, ttl_s=100)
    assert await cache.get("k") is None
    cache.put("k", CachedResponse(text="t", model="m"))
    await cache.flush()
    assert cache.rebuilt == 1
    assert any(name.startswith("c.sqlite3.corrupt-") for name in os.listdir(str(tmp_path)))
    assert "unusable" in caplog.text
    cache.close()
    again = ResponseCache(path, ttl_s=100)
    assert (await again.get("k")) == CachedResponse(text="t", model="m")
    again.close()


# -- sharded pool ------------------------------------------------------------------------


async def test_sharded_pool_splits_the_limit_and_gives_slots_back() -> None:
    import httpx

    from perfd.llm.transport import ShardedPool

    pool = ShardedPool(max_connections=10, max_keepalive_connections=10, keepalive_expiry=5)
    assert pool.shards == 3 and sum(pool._sizes) == 10 and max(pool._sizes) <= 4
    one = ShardedPool(max_connections=1, max_keepalive_connections=1, keepalive_expiry=5)
    assert one.shards == 1 and one._sizes == [1]
    async with httpx.AsyncClient(transport=pool) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # nothing listens on the discard port
    assert pool._busy == [0, 0, 0]


def test_history_close_right_after_a_first_write_keeps_it(tmp_path: object) -> None:
    # close() during the writer's linger, before it ever opened the file: the write must still land.
    path = os.path.join(str(tmp_path), "h.sqlite3")
    history = History(path)
    history.record(CallRecord(ts=time.time(), model="m", latency_ms=1.0, outcome="ok", plan="A"))
    history.close()
    again = History(path)
    try:
        assert again.count() == 1
    finally:
        again.close()


def test_reconciling_a_call_that_left_the_window_frees_nothing() -> None:
    # Found by the property test above: lowering an expired call's tokens freed room in the current window.
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=40, window_s=1.0, clock=clock)
    old = limiter.try_acquire(32)
    assert old is not None
    limiter.commit(old)
    clock.now += 1.0
    assert limiter.try_acquire(11) is not None and limiter.try_acquire(24) is not None
    limiter.reconcile(old, 1)
    assert limiter.try_acquire(6) is None  # 35 + 6 > 40
