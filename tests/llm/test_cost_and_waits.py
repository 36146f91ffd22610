"""Cost you can believe and waits you can see: one cache lookup counted once (stats levels agree with the
headline), cost unknown rather than 0, --no-cache replacing the cached answer, a Retry-After said on
stderr, and an interactive call ahead of a batch's under one rate limit."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from fakeserver import FakeServer
from llm_helpers import make_config, user
from test_run_daemon import DaemonWs

from perfd.app.run_render import main
from perfd.llm import ChatOptions, LLMClient, RateLimiter

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"


@pytest.fixture
def dws(server: FakeServer) -> Iterator[DaemonWs]:
    base = tempfile.mkdtemp(prefix="pc", dir="/tmp")  # short: a socket path must fit in 108 bytes
    w = DaemonWs(base, server)
    try:
        yield w
    finally:
        w.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_stats_after_one_sent_and_one_cached_answer_agree_at_every_level(dws: DaemonWs,
                                                                         server: FakeServer) -> None:
    dws.start()
    for _ in range(2):
        code, _, err = dws.run("run", "@DOCS-SITE", "2.1")
        assert code == 0, err
    assert len(server.records) == 1
    code, js, err = dws.run("stats", "--json")
    assert code == 0, err
    llm = msgspec.json.decode(js)["llm"]
    assert llm["calls"] == 2 and llm["requests"] == 1
    assert llm["cache_hits"] == 1 and llm["cache_misses"] == 1
    assert sum(llm["cache_hits_by_level"].values()) == llm["cache_hits"]
    code, text, _ = dws.run("stats")
    assert "hits 1 · misses 1" in text and "cost unknown" in text and "cost 0.0000" not in text
    code, text, _ = dws.run("stats", "--history")
    assert code == 0


def test_no_cache_replaces_the_cached_answer(server: FakeServer, state_dir: str) -> None:
    async def go() -> list[str]:
        async with LLMClient(make_config(server.base_url)) as llm:
            first = await llm.complete(user("q"))
            fresh = await llm.complete(user("q"), ChatOptions(use_cache=False))
            again = await llm.complete(user("q"))
            return [first.text, fresh.text, again.text, str(again.cached)]

    first, fresh, again, cached = anyio.run(go)
    assert first != fresh and again == fresh and cached == "True"
    assert len(server.records) == 2


def test_a_retry_after_is_said_on_stderr(tmp_path: Path, server: FakeServer) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    server.script({"status": 429, "headers": {"retry-after-ms": "300"}})
    out, err = io.StringIO(), io.StringIO()
    env = {"PERFD_LLM_BASE_URL": server.base_url, "PERFD_LLM_MODEL": "m",
           "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"]}
    code = main(["run", "@API-CLIENT", "--next"], str(ws), out=out, err=err, env=env)
    assert code == 0, err.getvalue()
    assert "perfd: 1.2: waiting 0.3 s: rate limited (HTTP 429)" in err.getvalue()
    assert len(server.records) == 2


def test_an_interactive_call_goes_ahead_of_a_batchs_queued_calls() -> None:
    order: list[str] = []

    async def go() -> None:
        limiter = RateLimiter(rpm=1, tpm=None, window_s=0.2)
        first = await limiter.acquire(1)
        limiter.commit(first)

        async def take(name: str, priority: int) -> None:
            got = await limiter.acquire(1, priority=priority)
            order.append(name)
            limiter.commit(got)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(take, f"batch{i}", 1)
                await anyio.sleep(0.01)
            tg.start_soon(take, "interactive", 0)

    anyio.run(go)
    assert order[0] == "interactive" and order[1:] == ["batch0", "batch1", "batch2"]


def test_a_wait_for_the_rate_limit_is_heard() -> None:
    heard: list[tuple[float, str]] = []

    async def go() -> None:
        limiter = RateLimiter(rpm=1, tpm=None, window_s=0.2)
        limiter.commit(await limiter.acquire(1))
        await limiter.acquire(1, on_wait=lambda s, why: heard.append((s, why)))

    anyio.run(go)
    assert len(heard) == 1 and 0 < heard[0][0] <= 0.2 and "rate limit" in heard[0][1]
