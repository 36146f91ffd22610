"""[team]: daemons sharing one rate limit, answer cache, breaker and budget through a real Redis.

Each test starts its own redis-server (Unix socket, persistence off) and the
stand-in model server, which counts requests per window.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fakeserver import FakeServer, max_in_window
from redis_helpers import RedisServer, SlowProxy, redis_server_binary

from perfd.llm import (
    ChatOptions,
    LLMBudgetExceeded,
    LLMCircuitOpen,
    LLMClient,
    LLMConfig,
    LLMConfigError,
    LLMHTTPError,
    LLMTeamUnavailable,
    TeamConfig,
    load_team_config,
)

HERE = Path(__file__).resolve().parent
DAEMON = HERE.parents[1] / "daemon"

@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server not found: run tests/setup-tools.sh (apt-get install redis-server)")
    folder = tempfile.mkdtemp(prefix="perfd-redis-", dir="/tmp")  # short: a socket path has ~107 bytes
    server = RedisServer(folder, binary=binary).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def llm_config(server: FakeServer, **over: Any) -> LLMConfig:
    values: dict[str, Any] = {"base_url": server.base_url, "model": "fake-model", "history": False,
                              "retry_base_s": 0.01, "retry_max_s": 0.05, "timeout_s": 5.0, "connect_timeout_s": 1.0}
    values.update(over)
    return LLMConfig(**values)


def client(server: FakeServer, redis_url: str, state: Path, *, team: dict[str, Any] | None = None,
           **over: Any) -> LLMClient:
    cfg = llm_config(server, cache_path=str(state / "cache.sqlite3"), **over)
    return LLMClient(cfg, state_dir=str(state), team=TeamConfig(redis_url=redis_url, **(team or {})))


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- configuration ------------------------------------------------------------------


def test_team_config_names_the_password_variable_and_never_takes_a_password() -> None:
    cfg = load_team_config({"redis_url": "redis://cache.internal:6379/0", "redis_password_env": "TEAM_REDIS_PW"},
                           {"PERFD_TEAM_FAIL": "closed"})
    assert cfg is not None and cfg.fail == "closed" and cfg.redis_password_env == "TEAM_REDIS_PW"
    with pytest.raises(LLMConfigError, match="redis_password_env") as info:
        load_team_config({"redis_url": "redis://user:s3cret@cache:6379"}, {})
    assert "s3cret" not in str(info.value)
    with pytest.raises(LLMConfigError, match="never takes the Redis password"):
        load_team_config({"redis_url": "redis://x", "password": "s3cret"}, {})
    with pytest.raises(LLMConfigError, match="unix://"):
        load_team_config({"redis_url": "http://x"}, {})
    assert load_team_config({}, {}) is None


async def test_the_password_is_sent_as_auth_and_never_shown(tmp_path: Path, redis_server: RedisServer,
                                                            server: FakeServer) -> None:
    with redis_server.client() as admin:
        admin.config_set("requirepass", "pw-do-not-leak")
    cfg = llm_config(server, cache_path=str(tmp_path / "c.sqlite3"))
    team = TeamConfig(redis_url=redis_server.url, redis_password_env="TEAM_PW", fail="closed")
    async with LLMClient(cfg, state_dir=str(tmp_path), team=team, env={"TEAM_PW": "pw-do-not-leak"}) as llm:
        await llm.complete(ask("hello"))
        assert llm.stats().team is not None and llm.stats().team.state == "up"  # type: ignore[union-attr]
    # A wrong password: refused (fail closed), and the message shows neither password.
    async with LLMClient(cfg, state_dir=str(tmp_path), team=team, env={"TEAM_PW": "wrong-pw-123"}) as llm:
        with pytest.raises(LLMTeamUnavailable) as info:
            await llm.complete(ask("hello again"))
        shown = str(info.value) + json.dumps(json.loads(_encode(llm.stats())))
        assert "wrong-pw-123" not in shown and "pw-do-not-leak" not in shown


def _encode(obj: Any) -> bytes:
    import msgspec

    return msgspec.json.encode(obj)


# --- the shared limit across processes ------------------------------------------------


def _workspace(root: Path, server: FakeServer, redis_url: str, *, rpm: int | None, tpm: int | None,
               window_s: float) -> None:
    root.mkdir(parents=True)
    limits = (f"rpm = {rpm}\n" if rpm else "") + (f"tpm = {tpm}\n" if tpm else "")
    (root / "perfd.toml").write_text(
        f'[llm]\nbase_url = "{server.base_url}"\nmodel = "fake-model"\n{limits}window_s = {window_s}\n'
        "max_connections = 4\ntimeout_s = 5.0\nconnect_timeout_s = 1.0\nhistory = false\n"
        f'[team]\nredis_url = "{redis_url}"\n'
    )


def _run_daemons(tmp_path: Path, server: FakeServer, redis_url: str, *, n: int, rpm: int | None,
                 tpm: int | None, window_s: float, duration_s: float) -> list[dict[str, Any]]:
    start_at = time.time() + 3.0  # after every process has imported perfd
    procs = []
    for i in range(n):
        root = tmp_path / f"machine{i}" / "ws"
        _workspace(root, server, redis_url, rpm=rpm, tpm=tpm, window_s=window_s)
        env = {**os.environ, "PYTHONPATH": str(DAEMON), "PERFD_STATE_DIR": str(tmp_path / f"machine{i}" / "state")}
        env = {k: v for k, v in env.items() if not k.startswith(("PERFD_LLM_", "PERFD_TEAM_"))}
        procs.append(subprocess.Popen(
            [sys.executable, str(HERE / "team_worker.py"), str(root), "4", str(duration_s), str(start_at), f"m{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


def _busy_count(times: list[float], weights: list[int], window_s: float, windows: int) -> int:
    """Weighted events in the `windows` whole windows that start at the first event."""
    first = min(times)
    return sum(w for t, w in zip(times, weights) if t < first + windows * window_s)


@pytest.mark.slow
def test_three_daemons_never_exceed_the_shared_rpm_and_use_95_percent(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    rpm, window = 40, 1.0
    results = _run_daemons(tmp_path, server, redis_server.url, n=3, rpm=rpm, tpm=None, window_s=window,
                           duration_s=3.6)
    times = [r.arrival for r in server.records]
    assert max_in_window(times, [1] * len(times), window) <= rpm  # in ANY window, all daemons together
    assert _busy_count(times, [1] * len(times), window, 3) >= 0.95 * 3 * rpm
    assert all(r["calls"] > 0 for r in results)  # every daemon got its turn
    assert all(r["stats"]["team"]["state"] == "up" and r["stats"]["team"]["fallbacks"] == 0 for r in results)
    assert {r["stats"]["team"]["peers"] for r in results} & {3}


@pytest.mark.slow
def test_two_daemons_never_exceed_the_shared_tpm_and_use_95_percent(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    tpm, window = 1500, 1.0
    server.settings.reply_chars = 60  # 15 completion tokens against 20 reserved: reconciled after each call
    _run_daemons(tmp_path, server, redis_server.url, n=2, rpm=None, tpm=tpm, window_s=window, duration_s=3.6)
    times = [r.arrival for r in server.records]
    tokens = [r.tokens for r in server.records]
    assert max_in_window(times, tokens, window) <= tpm
    assert _busy_count(times, tokens, window, 3) >= 0.95 * 3 * tpm


async def test_a_slow_redis_still_never_lets_a_window_go_over(tmp_path: Path, redis_server: RedisServer,
                                                              server: FakeServer) -> None:
    rpm, window = 20, 0.5
    with SlowProxy(redis_server.socket_path, delay_s=0.004) as proxy:  # ~8 ms per round trip
        clients = [client(server, proxy.url, tmp_path / f"s{i}", rpm=rpm, window_s=window) for i in range(3)]
        deadline = time.monotonic() + 2.0

        async def caller(llm: LLMClient, tag: str) -> None:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                await llm.complete(ask(f"{tag}-{i}"), ChatOptions(use_cache=False, max_tokens=5))

        async with anyio.create_task_group() as tg:
            for n, llm in enumerate(clients):
                for k in range(3):
                    tg.start_soon(caller, llm, f"{n}.{k}")
        for llm in clients:
            assert llm.stats().team.redis_rtt_p50_ms >= 7.0  # type: ignore[union-attr,operator]
            await llm.aclose()
    times = [r.arrival for r in server.records]
    assert len(times) > rpm  # several windows' worth were sent
    assert max_in_window(times, [1] * len(times), window) <= rpm


# --- the shared answer cache --------------------------------------------------------------


async def test_an_answer_paid_for_by_one_daemon_is_a_hit_for_another_streamed_too(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    server.settings.reply_chars = 3000  # large enough to be stored compressed
    a = client(server, redis_server.url, tmp_path / "a")
    b = client(server, redis_server.url, tmp_path / "b")
    c = client(server, redis_server.url, tmp_path / "c")
    async with a, b, c:
        async with a.stream(ask("the shared question")) as s:
            paid = await s.read()
        await a.flush()
        assert len(server.records) == 1
        hit = await b.complete(ask("the shared question"))
        assert hit.cached and hit.text == paid.text and len(server.records) == 1
        assert b.stats().cache_hits_by_level == {"memory": 0, "disk": 0, "shared": 1}
        assert b.stats().team.cache_hits == 1  # type: ignore[union-attr]
        async with c.stream(ask("the shared question")) as s2:
            chunks = [d async for d in s2]
        assert len(chunks) > 1 and "".join(chunks) == paid.text  # replayed chunk by chunk
        assert len(server.records) == 1
    with redis_server.client() as admin:
        [key] = admin.keys("perfd:*:c:*")
        assert admin.get(key)[:1] == b"\x01"  # zlib
        assert 0 < admin.pttl(key) <= 7 * 24 * 3600 * 1000


# --- Redis down and back --------------------------------------------------------------------


async def test_fail_open_carries_on_with_local_limits_says_so_and_recovers(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    llm = client(server, redis_server.url, tmp_path / "a", rpm=100, team={"retry_s": 0.3, "timeout_s": 0.5})
    async with llm:
        await llm.complete(ask("one"))
        team = llm.stats().team
        assert team is not None and team.state == "up" and team.fallbacks == 0
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="perfd.llm"):
            answer = await llm.complete(ask("two"))
        assert not answer.cached and len(server.records) == 2
        team = llm.stats().team
        assert team is not None and team.state == "down" and team.fallbacks == 1 and team.last_error
        assert "unreachable" in caplog.text and "local limits" in caplog.text
        from perfd.app.stats_view import team_lines

        text = "\n".join(team_lines(llm.stats()))
        assert "REDIS DOWN" in text and "local limits" in text
        redis_server.start()
        await anyio.sleep(0.35)
        await llm.complete(ask("three"))
        team = llm.stats().team
        assert team is not None and team.state == "up" and team.fallbacks == 1
        assert "reachable again" in caplog.text


async def test_fail_closed_refuses_with_a_clear_message_and_recovers(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    llm = client(server, redis_server.url, tmp_path / "a", team={"fail": "closed", "retry_s": 0.3, "timeout_s": 0.5})
    async with llm:
        await llm.complete(ask("one"))
        redis_server.stop()
        with pytest.raises(LLMTeamUnavailable, match=r'unreachable .*fail = "closed"'):
            await llm.complete(ask("two"))
        assert len(server.records) == 1  # nothing was sent
        redis_server.start()
        await anyio.sleep(0.35)
        await llm.complete(ask("three"))
        assert len(server.records) == 2
        team = llm.stats().team
        assert team is not None and team.state == "up" and team.refused == 1


# --- breaker, cooldown, budget, release -------------------------------------------------------


async def test_one_daemons_outage_discovery_spares_the_others(tmp_path: Path, redis_server: RedisServer,
                                                              server: FakeServer) -> None:
    a = client(server, redis_server.url, tmp_path / "a", breaker_failures=2, max_retries=0, breaker_cooldown_s=30)
    b = client(server, redis_server.url, tmp_path / "b", breaker_failures=2, max_retries=0, breaker_cooldown_s=30)
    async with a, b:
        server.script({"status": 500}, {"status": 500})
        for text in ("x", "y"):
            with pytest.raises(LLMHTTPError):
                await a.complete(ask(text))
        with pytest.raises(LLMCircuitOpen, match="for the team"):
            await b.complete(ask("z"))
        assert len(server.records) == 2  # b sent nothing


async def test_a_429_seen_by_one_daemon_backs_off_all_of_them(tmp_path: Path, redis_server: RedisServer,
                                                              server: FakeServer) -> None:
    a = client(server, redis_server.url, tmp_path / "a", max_retries=0)
    b = client(server, redis_server.url, tmp_path / "b")
    async with a, b:
        server.script({"status": 429, "headers": {"retry-after": "1"}})
        with pytest.raises(LLMHTTPError):
            await a.complete(ask("first"))
        saw_429 = server.records[-1].arrival
        await b.complete(ask("second"))
        assert server.records[-1].arrival - saw_429 >= 0.9  # b honoured a's Retry-After


async def test_the_shared_budget_refuses_a_call_before_it_is_sent(tmp_path: Path, redis_server: RedisServer,
                                                                  server: FakeServer) -> None:
    prices = {"price_prompt_per_1k": 1.0, "price_completion_per_1k": 1.0, "budget_usd_per_day": 0.05,
              "max_tokens": 10}
    a = client(server, redis_server.url, tmp_path / "a", **prices)
    b = client(server, redis_server.url, tmp_path / "b", **prices)
    async with a, b:
        await a.complete(ask("spend " + "x" * 80))  # ~35 tokens: $0.035 of $0.05
        assert a.stats().budget_used_usd == pytest.approx(server.records[-1].tokens / 1000)
        with pytest.raises(LLMBudgetExceeded, match=r"team's daily model budget would be exceeded"):
            await b.complete(ask("more " + "x" * 80))
        assert len(server.records) == 1
        team = b.stats().team
        assert team is not None and team.budget_left_usd is not None and team.budget_left_usd < 0.02


async def test_a_call_that_never_reached_the_server_is_released_from_the_window(
        tmp_path: Path, redis_server: RedisServer) -> None:
    closed = FakeServer()  # never started: nothing listens on its port
    import socket as socket_

    with socket_.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed.port = s.getsockname()[1]
    llm = client(closed, redis_server.url, tmp_path / "a", rpm=5, max_retries=0, cache=False)
    async with llm:
        with pytest.raises(Exception):
            await llm.complete(ask("nobody home"))
        await llm.refresh_team()
        team = llm.stats().team
        assert team is not None and team.window_requests == 0


# --- keys expire ----------------------------------------------------------------------------


async def test_keys_expire_after_the_windows_pass(tmp_path: Path, redis_server: RedisServer,
                                                  server: FakeServer) -> None:
    llm = client(server, redis_server.url, tmp_path / "a", rpm=50, tpm=10_000, window_s=0.3, timeout_s=0.5,
                 connect_timeout_s=0.2, breaker_failures=3, max_retries=0)
    async with llm:
        for i in range(30):
            await llm.complete(ask(f"q{i}"), ChatOptions(use_cache=i % 2 == 0))
        server.script({"status": 500})
        with pytest.raises(LLMHTTPError):
            await llm.complete(ask("fails"), ChatOptions(use_cache=False))
    with redis_server.client() as admin:
        keys = admin.keys("perfd:*")
        assert keys and all(admin.pttl(k) > 0 for k in keys)  # every key has a TTL
        await anyio.sleep(0.3 + 0.5 + 0.2 + 1.0 + 0.3 + 1.2)  # window + in-flight bound + key slack
        left = {k.decode().rsplit(":", 1)[-1] if b":c:" not in k else "cache" for k in admin.keys("perfd:*")}
        assert left <= {"cache", "brk"}, left  # the window's keys are gone; answers stay for their TTL


def test_perfd_run_over_the_team_budget_exits_1_with_a_clear_message(tmp_path: Path, redis_server: RedisServer,
                                                                     server: FakeServer) -> None:
    import io

    from perfd.app.run_render import main

    ws = tmp_path / "ws"
    shutil.copytree(DAEMON / "perfd" / "example", ws)
    env = {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "fake-model",
           "PERFD_LLM_PRICE_PROMPT_PER_1K": "1", "PERFD_LLM_PRICE_COMPLETION_PER_1K": "1",
           "PERFD_LLM_BUDGET_USD_PER_DAY": "0.5", "PERFD_LLM_MAX_TOKENS": "1000",
           "PERFD_TEAM_REDIS_URL": redis_server.url, "PERFD_STATE_DIR": str(tmp_path / "state")}
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", "@API-CLIENT", "--next"], str(ws), out=out, err=err, env=env)
    assert code == 1, err.getvalue()
    assert "the team's daily model budget would be exceeded" in err.getvalue() and "budget_usd_per_day" in err.getvalue()
    assert server.records == []


async def test_perfd_stats_shows_the_team_in_text_json_and_prometheus(tmp_path: Path, redis_server: RedisServer,
                                                                      server: FakeServer) -> None:
    import msgspec

    from perfd.app.stats_view import render_json, render_prometheus, render_text
    from perfd.engine.types import CacheStats
    from perfd.wire.protocol import StatsSnapshot

    llm = client(server, redis_server.url, tmp_path / "a", rpm=60, price_prompt_per_1k=1.0,
                 price_completion_per_1k=1.0, budget_usd_per_day=10.0)
    async with llm:
        for text in ("a", "b", "a"):
            await llm.complete(ask(text))
        await llm.refresh_team()
        snap = StatsSnapshot(
            version="0", pid=1, root="/ws", uptime_s=1.0, rss_bytes=0, connections=0, subscribers=0,
            watcher_events=0, watcher_batches=0, memo_hits=0, methods=[], llm=llm.stats(),
            cache=CacheStats(entries=0, capacity=1, hits=0, misses=0, evictions=0, expirations=0, invalidations=0,
                             hit_rate=0.0, lookup_p50_us=0.0, lookup_p99_us=0.0))
    text = render_text(snap)
    assert f"team: redis {redis_server.url}" in text and "daemons 1" in text
    assert "team window" in text and "2/60 requests (2/min)" in text
    assert "team budget: $" in text and "left of $10.00 today (UTC)" in text
    assert "redis round trip: p50" in text and "cache hits by level: memory 1 · disk 0 · shared 0" in text
    team = msgspec.json.decode(render_json(snap))["llm"]["team"]
    assert team["state"] == "up" and team["window_requests"] == 2 and team["budget_left_usd"] < 10.0
    prom = render_prometheus(snap)
    for name in ("perfd_team_redis_up 1", "perfd_team_window_requests 2", "perfd_team_daemons 1",
                 'perfd_llm_cache_hits_by_level_total{level="memory"} 1', "perfd_team_budget_left_usd",
                 'perfd_team_redis_rtt_p50_seconds '):
        assert name in prom, name


async def test_a_plans_budget_refuses_that_plan_only(tmp_path: Path, redis_server: RedisServer,
                                                     server: FakeServer) -> None:
    prices = {"price_prompt_per_1k": 1.0, "price_completion_per_1k": 1.0, "budget_usd_per_plan_per_day": 0.05,
              "max_tokens": 10}
    a = client(server, redis_server.url, tmp_path / "a", **prices)
    b = client(server, redis_server.url, tmp_path / "b", **prices)
    async with a, b:
        await a.complete(ask("spend " + "x" * 80), ChatOptions(plan="PLAN_A.md"))
        with pytest.raises(LLMBudgetExceeded, match="for this plan"):
            await b.complete(ask("more " + "x" * 80), ChatOptions(plan="PLAN_A.md"))
        await b.complete(ask("other " + "x" * 80), ChatOptions(plan="PLAN_B.md"))
        assert len(server.records) == 2


# --- real daemons -------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_real_daemons_running_perfd_run_parallel_hold_the_team_rpm(redis_server: RedisServer,
                                                                       server: FakeServer) -> None:
    """Two `perfd daemon`s, each with its own workspace, state and runtime folders (as on two machines)."""
    sys.path.insert(0, str(HERE.parent / "bench"))
    from bench_run_parallel import write_plan

    from perfd.wire.rendezvous import Connection, state_paths

    rpm, window, achievements = 4, 1.0, 10
    base = tempfile.mkdtemp(prefix="pt", dir="/tmp")  # short: socket paths must fit in 108 bytes
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        machines = []
        for i in range(2):
            root = os.path.realpath(os.path.join(base, f"m{i}", "ws"))
            os.makedirs(root)
            write_plan(root, achievements)
            with open(os.path.join(root, "perfd.toml"), "w") as f:
                f.write(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "fake-model"\nrpm = {rpm}\n'
                        f'window_s = {window}\nhistory = false\n[team]\nredis_url = "{redis_server.url}"\n')
            env = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
            env.update(PERFD_RUNTIME_DIR=os.path.join(base, f"m{i}", "r"),
                       PERFD_STATE_DIR=os.path.join(base, f"m{i}", "s"), PYTHONPATH=str(DAEMON))
            # each machine's user trusts the workspace's model server and Redis, as `perfd trust` records
            subprocess.run([sys.executable, "-m", "perfd", "trust", "--root", root], env=env, check=True,
                           capture_output=True, timeout=30)
            daemons.append(subprocess.Popen([sys.executable, "-m", "perfd", "daemon", "run", "--root", root], env=env,
                                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            machines.append((root, env))
        for root, env in machines:
            old = dict(os.environ)
            os.environ["PERFD_RUNTIME_DIR"] = env["PERFD_RUNTIME_DIR"]
            try:
                sock = str(state_paths(root).sock)
            finally:
                os.environ.clear()
                os.environ.update(old)
            deadline = time.monotonic() + 20
            while True:
                try:
                    with Connection(sock, 1.0) as c:
                        if c.call("ping").get("result"):
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "a daemon did not start"
                time.sleep(0.05)
        runs = [subprocess.Popen([sys.executable, "-m", "perfd", "run", "@WIDE", "--parallel", "--concurrency", "6",
                                  "--no-cache"],
                                 cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for root, env in machines]
        for p in runs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err[-2000:]
            assert "running in-process" not in err  # the daemon did the calls
        times = [r.arrival for r in server.records]
        assert len(times) == 2 * achievements
        assert max_in_window(times, [1] * len(times), window) <= rpm
        full = len(times) // rpm - 1  # whole windows the run kept busy
        assert _busy_count(times, [1] * len(times), window, full) >= 0.95 * full * rpm
        root, env = machines[0]
        stats = subprocess.run([sys.executable, "-m", "perfd", "stats", "--json"], cwd=root, env=env,
                               capture_output=True, text=True, timeout=30)
        team = json.loads(stats.stdout)["llm"]["team"]
        assert team["state"] == "up" and team["peers"] == 2 and team["fallbacks"] == 0
    finally:
        for d in daemons:
            d.terminate()
            try:
                d.wait(10)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait(5)
        shutil.rmtree(base, ignore_errors=True)


# --- interactive before batch -------------------------------------------------------------


async def test_an_interactive_call_goes_ahead_of_a_batchs_queued_calls_under_the_team_limit(
        tmp_path: Path, redis_server: RedisServer, server: FakeServer) -> None:
    """The team's window is full; three batch calls queue in this daemon, then an interactive one: it is sent
    next, and the batch keeps its order after it."""
    from perfd.llm.team import Line

    waits: list[tuple[float, str]] = []
    llm = client(server, redis_server.url, tmp_path / "a", rpm=1, window_s=0.3, cache=False)
    async with llm:
        await llm.complete(ask("first"))  # takes the window
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(llm.complete, ask(f"batch{i}"), ChatOptions(priority="batch"))
                await anyio.sleep(0.02)
            tg.start_soon(llm.complete, ask("interactive"), ChatOptions(
                priority="interactive", on_wait=lambda s, why: waits.append((s, why))))
    sent = [r.body["messages"][-1]["content"] for r in server.records]
    assert sent == ["first", "interactive", "batch0", "batch1", "batch2"]
    assert len(waits) == 1 and "team's rate limit" in waits[0][1]  # the wait is heard, once
    # Without priorities (all batch) the order is arrival: the line only reorders by priority.
    line = Line()
    a, b, c = line.join(1), line.join(1), line.join(0)
    assert line.first(c)
    line.leave(c)
    assert line.first(a)
    line.leave(a)
    assert line.first(b)
