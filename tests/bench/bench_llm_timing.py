"""How long the LLM client's waits really take: the figures the tests no longer bound.

Run: python tests/bench/bench_llm_timing.py [--rounds N]

The tests in tests/llm check what the client does (it waits for the server's
Retry-After and not its own backoff, a timeout ends an attempt, an open breaker
sends nothing); how long that takes on a given machine is measured here,
against the local fake server (tests/llm/fakeserver.py, in a thread) or an
httpx MockTransport, and printed: median and worst of N rounds, beside the
ideal and the upper bound the tests used to assert. Nothing here asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests", "llm"))

import anyio  # noqa: E402
import httpx  # noqa: E402

from fakeserver import FakeServer  # noqa: E402
from llm_helpers import make_config, user  # noqa: E402

from perfd.llm import LLMCircuitOpen, LLMClient, LLMHTTPError, LLMTimeout  # noqa: E402

MOCK_URL = "http://llm.test/v1"


def ok_body(text: str = "ok") -> dict[str, Any]:
    return {"id": "x", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def mock_client(handler: Callable[[httpx.Request], Any], **overrides: Any) -> LLMClient:
    return LLMClient(make_config(MOCK_URL, cache=False, history=False, **overrides),
                     transport=httpx.MockTransport(handler), env={})


def answers(*responses: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    queue = list(responses)
    return lambda request: queue.pop(0) if len(queue) > 1 else queue[0]


async def timed(body: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await body()
    return time.perf_counter() - started


# -- the cases: each returns seconds ------------------------------------------------------------


async def rpm_limited_burst(server: FakeServer) -> float:
    """20 requests at once under rpm=6 per 0.8 s window (test_no_sliding_window_exceeds_rpm)."""
    server.reset()
    async with LLMClient(make_config(server.base_url, rpm=6, window_s=0.8, max_connections=8, cache=False,
                                     history=False)) as llm:
        async def burst() -> None:
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(llm.complete, user(f"q{i}"))
        return await timed(burst)


async def retry_after_one_second(server: FakeServer) -> float:
    """A 429 with Retry-After: 1, then an answer (test_retry_after_429_is_honoured_by_everyone)."""
    server.reset()
    server.script({"status": 429, "headers": {"retry-after": "1"}})
    async with LLMClient(make_config(server.base_url, cache=False, history=False)) as llm:
        return await timed(lambda: llm.complete(user("x")))


async def two_timed_out_attempts(server: FakeServer) -> float:
    """Two 0.2 s attempts against 3 s stalls (test_timeouts_are_bounded)."""
    server.reset()
    server.script({"stall": 3}, {"stall": 3})
    async with LLMClient(make_config(server.base_url, cache=False, history=False, max_retries=1,
                                     timeout_s=0.2)) as llm:
        async def call() -> None:
            try:
                await llm.complete(user("x"))
            except LLMTimeout:
                pass
        return await timed(call)


async def open_breaker_fails_fast(server: FakeServer) -> float:
    """A call while the breaker is open (test_breaker_opens_fails_fast_and_recovers)."""
    server.reset()
    server.script(*[{"status": 500}] * 3)
    async with LLMClient(make_config(server.base_url, cache=False, history=False, max_retries=0,
                                     breaker_failures=3, breaker_cooldown_s=30)) as llm:
        for _ in range(3):
            try:
                await llm.complete(user("x"))
            except LLMHTTPError:
                pass

        async def call() -> None:
            try:
                await llm.complete(user("x"))
            except LLMCircuitOpen:
                pass
        return await timed(call)


def retry_after_header(name: str, value: str) -> Callable[[FakeServer], Awaitable[float]]:
    async def case(_: FakeServer) -> float:
        """A 429 asking for a short wait, with a backoff of up to 5 s configured (test_retry_after_ms_...)."""
        handler = answers(httpx.Response(429, headers={name: value}), httpx.Response(200, json=ok_body()))
        async with mock_client(handler, retry_base_s=5.0, retry_max_s=5.0) as llm:
            return await timed(lambda: llm.complete(user("x")))
    return case


async def retry_after_beyond_the_limit(_: FakeServer) -> float:
    """A 429 asking for an hour, over max_retry_after_s=10 (test_retry_after_beyond_the_limit_fails_at_once)."""
    handler = answers(httpx.Response(429, headers={"retry-after": "3600"}), httpx.Response(200, json=ok_body()))
    async with mock_client(handler, max_retry_after_s=10) as llm:
        async def call() -> None:
            try:
                await llm.complete(user("x"))
            except LLMHTTPError:
                pass
        return await timed(call)


async def per_request_timeout(_: FakeServer) -> float:
    """timeout_s=0.1 on a call whose answer takes 5 s, one retry (test_per_request_timeout_is_enforced_...)."""
    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(5)
        return httpx.Response(200, json=ok_body("late"))

    async with mock_client(slow, max_retries=1) as llm:
        async def call() -> None:
            try:
                await llm.complete(user("x"), timeout_s=0.1)
            except LLMTimeout:
                pass
        return await timed(call)


# (name, case, ideal, the bound the test used to assert)
CASES: list[tuple[str, Callable[[FakeServer], Awaitable[float]], str, str]] = [
    ("20 requests, rpm 6 per 0.8 s", rpm_limited_burst, ">= 2.40 s (3 windows)", "< 6.40 s"),
    ("429 with Retry-After: 1", retry_after_one_second, "1.00 s", "< 2.50 s"),
    ("two 0.2 s timeouts on 3 s stalls", two_timed_out_attempts, "0.40 s + backoff", "< 2.00 s"),
    ("call with the breaker open", open_breaker_fails_fast, "~0 (nothing sent)", "< 0.20 s"),
    ("429 with retry-after-ms: 250", retry_after_header("retry-after-ms", "250"), "0.25 s", "< 1.75 s"),
    ("429 with retry-after: 0.3", retry_after_header("retry-after", "0.3"), "0.30 s", "< 1.80 s"),
    ("429 with retry-after: 3600 (> limit)", retry_after_beyond_the_limit, "~0 (fails at once)", "< 2.00 s"),
    ("timeout_s 0.1 on a 5 s answer, 1 retry", per_request_timeout, "0.20 s + backoff", "< 2.00 s"),
]


async def main(rounds: int) -> list[tuple[str, str, str, str, str]]:
    samples: dict[str, list[float]] = {name: [] for name, *_ in CASES}
    with FakeServer(max_lifetime_s=600) as server:
        for _ in range(rounds):  # round by round, so machine noise falls on every case alike
            for name, case, _ideal, _bound in CASES:
                samples[name].append(await case(server))
    rows = []
    for name, _case, ideal, bound in CASES:
        s = samples[name]
        rows.append((name, seconds(statistics.median(s)), seconds(max(s)), ideal, bound))
    return rows


def seconds(x: float) -> str:
    return f"{x:.3f} s" if x >= 0.1 else f"{x * 1000:.2f} ms"


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    headers = ("case", "median", "worst", "ideal", "old test bound")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="times each case is measured (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfd-bench-") as state:
        os.environ["PERFD_STATE_DIR"] = state
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.rounds} round(s)\n")
        print_table(anyio.run(main, args.rounds))
