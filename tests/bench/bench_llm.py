"""Benchmark of perfd's LLM call path against a local OpenAI-compatible stand-in.

    python tests/bench/bench_llm.py [--quick]

Starts tests/llm/fakeserver.py in its own process (so client and server do
not share a core or a GIL), measures everything side by side in one run and
prints one table. Each goal is reported as met or MISSED, as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import msgspec
import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
FAKESERVER = os.path.join(HERE, "..", "llm", "fakeserver.py")
sys.path.insert(0, os.path.join(HERE, "..", "llm"))

from fakeserver import max_in_window  # noqa: E402

from perfd.llm import ChatOptions, LLMClient, LLMConfig  # noqa: E402

Row = tuple[str, str, str, str]


class Server:
    """The fake server in a subprocess, controlled over HTTP."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, FAKESERVER, "--max-lifetime", "900"], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.control = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def reset(self, **settings: Any) -> None:
        self.control.post("/_reset")
        if settings:
            self.control.post("/_control", content=orjson.dumps({"settings": settings}))

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control.get("/_stats").json()
        return result

    def close(self) -> None:
        self.control.close()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def config(base_url: str, **overrides: Any) -> LLMConfig:
    values: dict[str, Any] = {"base_url": base_url, "model": "bench-model"}
    values.update(overrides)
    return msgspec.convert(values, LLMConfig)


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- 1. saturation --------------------------------------------------------------------


async def saturate(server: Server, *, rpm: int | None, tpm: int | None, window: float, windows: int) -> dict[str, Any]:
    server.reset(reply_chars=80)
    cfg = config(server.base_url, rpm=rpm, tpm=tpm, window_s=window, max_connections=32, cache=False, history=False)
    duration = window * windows
    async with LLMClient(cfg) as llm:
        stop_at = time.monotonic() + duration + window  # keep demand up past the measured span
        seq = 0

        async def caller() -> None:
            nonlocal seq
            while time.monotonic() < stop_at:
                seq += 1
                await llm.complete(msgs(f"{seq:06d}" + "x" * 94), ChatOptions(max_tokens=30))

        async with anyio.create_task_group() as tg:
            for _ in range(32):
                tg.start_soon(caller)
    reqs = server.stats()["requests"]
    arrivals = [r["arrival"] for r in reqs]
    tokens = [r["prompt_tokens"] + r["completion_tokens"] for r in reqs]
    t0 = min(arrivals)
    span = [(a, t) for a, t in zip(arrivals, tokens) if a < t0 + duration]
    if rpm is not None:
        achieved = len(span) / (rpm * windows)
        worst = max_in_window(arrivals, [1] * len(arrivals), window)
        limit = rpm
    else:
        assert tpm is not None
        achieved = sum(t for _, t in span) / (tpm * windows)
        worst = max_in_window(arrivals, tokens, window)
        limit = tpm
    violations = windows_over(arrivals, [1] * len(arrivals) if rpm is not None else tokens, window, limit)
    return {"achieved": achieved, "worst": worst, "limit": limit, "violations": violations, "requests": len(reqs)}


def windows_over(times: list[float], weights: list[int], window: float, limit: int) -> int:
    """How many windows [t_i, t_i + window), one starting at each request, exceed `limit`."""
    events = sorted(zip(times, weights))
    over, total, hi = 0, 0, 0
    for lo in range(len(events)):
        while hi < len(events) and events[hi][0] < events[lo][0] + window:
            total += events[hi][1]
            hi += 1
        over += total > limit
        total -= events[lo][1]
    return over


# -- 2. overhead ------------------------------------------------------------------------


async def overhead(server: Server, n: int) -> dict[str, float]:
    """Median of paired differences against a bare httpx call, in random order
    each round so drift (GC, the server's own jitter) hits both sides alike."""
    server.reset()
    url = server.base_url + "/chat/completions"
    rng = random.Random(7)
    diffs: dict[str, list[float]] = {"perfd": [], "lean": []}
    bare_times: list[float] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=8)) as bare, \
            LLMClient(config(server.base_url)) as llm, \
            LLMClient(config(server.base_url, cache=False, history=False)) as lean:

        async def run_bare(i: int) -> None:
            payload = {"model": "bench-model", "messages": msgs(f"bare {i}"), "temperature": 0.0}
            response = await bare.post(url, content=orjson.dumps(payload), headers={"content-type": "application/json"})
            response.raise_for_status()
            orjson.loads(response.content)["choices"][0]["message"]["content"]

        async def run_perfd(i: int) -> None:
            await llm.complete(msgs(f"perfd {i}"))  # default config: cache miss + history row

        async def run_lean(i: int) -> None:
            await lean.complete(msgs(f"lean {i}"))

        for i in range(-30, n):  # the first 30 warm up connections and code paths
            order = [("bare", run_bare), ("perfd", run_perfd), ("lean", run_lean)]
            rng.shuffle(order)
            took: dict[str, float] = {}
            for name, fn in order:
                t = time.perf_counter()
                await fn(i)
                took[name] = time.perf_counter() - t
            if i >= 0:
                bare_times.append(took["bare"])
                diffs["perfd"].append(took["perfd"] - took["bare"])
                diffs["lean"].append(took["lean"] - took["bare"])
        await llm.flush()
    med = statistics.median
    return {"bare_ms": med(bare_times) * 1e3, "overhead_ms": med(diffs["perfd"]) * 1e3,
            "overhead_lean_ms": med(diffs["lean"]) * 1e3}


async def overhead_cpu(n: int) -> dict[str, float]:
    """perfd's own cost per call with the network taken out: both sides use the
    same in-process transport that answers instantly."""
    answer = orjson.dumps({"model": "bench-model", "usage": {"prompt_tokens": 3, "completion_tokens": 3},
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                        "finish_reason": "stop"}]})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answer, headers={"content-type": "application/json"})

    url = "http://instant.test/v1/chat/completions"
    result: dict[str, float] = {}
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as bare, \
            LLMClient(config("http://instant.test/v1"), transport=httpx.MockTransport(handler)) as llm:
        async def run_bare(i: int) -> None:
            payload = {"model": "bench-model", "messages": msgs(f"bare {i}"), "temperature": 0.0}
            response = await bare.post(url, content=orjson.dumps(payload), headers={"content-type": "application/json"})
            response.raise_for_status()
            orjson.loads(response.content)["choices"][0]["message"]["content"]

        async def run_perfd(i: int) -> None:
            await llm.complete(msgs(f"perfd {i}"))

        # Alternate blocks of calls and compare block medians, so load from
        # other processes on this machine hits both sides alike. Wall time is
        # what a caller waits; CPU time (all threads) also charges perfd for
        # its background cache and history writes, flushed after each block.
        wall: dict[str, list[float]] = {"bare": [], "perfd": []}
        cpu: dict[str, list[float]] = {"bare": [], "perfd": []}
        block = 100
        for b in range(-5, max(n // block, 4)):
            for name, fn in (("bare", run_bare), ("perfd", run_perfd)):
                t, c = time.perf_counter(), time.process_time()
                for i in range(block):
                    await fn(b * block + i)
                t_end = time.perf_counter()
                if name == "perfd":
                    await llm.flush()
                if b >= 0:  # the first five blocks warm up
                    wall[name].append((t_end - t) / block * 1e3)
                    cpu[name].append((time.process_time() - c) / block * 1e3)
        med = statistics.median
        result["bare"], result["perfd"] = med(wall["bare"]), med(wall["perfd"])
        result["bare_cpu"], result["perfd_cpu"] = med(cpu["bare"]), med(cpu["perfd"])
        result["overhead_cpu_ms"] = result["perfd_cpu"] - result["bare_cpu"]
    result["overhead_ms"] = result["perfd"] - result["bare"]
    return result


async def overhead_providers(server: Server, n: int) -> dict[str, dict[str, float]]:
    """The overhead per call of each provider's path (OpenAI, Anthropic's Messages API, Azure) against a
    bare httpx call of the same protocol to the same stand-in: median of paired differences, random order."""
    server.reset()
    origin = f"http://127.0.0.1:{server.port}"
    env = {"BENCH_KEY": "bench-secret"}
    cases: dict[str, tuple[str, dict[str, str], Callable[[int], dict[str, Any]], Callable[[bytes], str],
                           LLMConfig]] = {
        "openai": (server.base_url + "/chat/completions", {"authorization": "Bearer bench-secret"},
                   lambda i: {"model": "bench-model", "messages": msgs(f"bare {i}"), "temperature": 0.0},
                   lambda b: orjson.loads(b)["choices"][0]["message"]["content"],
                   config(server.base_url, api_key_env="BENCH_KEY")),
        "anthropic": (origin + "/v1/messages", {"x-api-key": "bench-secret", "anthropic-version": "2023-06-01"},
                      lambda i: {"model": "bench-model", "messages": msgs(f"bare {i}"), "max_tokens": 4096,
                                 "temperature": 0.0},
                      lambda b: orjson.loads(b)["content"][0]["text"],
                      config(origin, provider="anthropic", api_key_env="BENCH_KEY")),
        "azure": (origin + "/openai/deployments/bench/chat/completions?api-version=2024-10-21",
                  {"api-key": "bench-secret"},
                  lambda i: {"model": "bench-model", "messages": msgs(f"bare {i}"), "temperature": 0.0},
                  lambda b: orjson.loads(b)["choices"][0]["message"]["content"],
                  config(origin, provider="azure", deployment="bench", api_key_env="BENCH_KEY")),
    }
    rng = random.Random(11)
    out: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=8)) as bare:
        clients = {name: (LLMClient(c[4], env=env), LLMClient(msgspec.structs.replace(c[4], cache=False,
                                                                                       history=False), env=env))
                   for name, c in cases.items()}
        try:
            diffs: dict[str, list[float]] = {f"{p}/{k}": [] for p in cases for k in ("perfd", "lean")}
            bare_ms: dict[str, list[float]] = {p: [] for p in cases}
            for i in range(-30, n):
                for name, (url, headers, body, read, _) in cases.items():
                    llm, lean = clients[name]

                    async def run_bare(i: int = i, url: str = url, headers: dict[str, str] = headers,
                                       body: Callable[[int], dict[str, Any]] = body,
                                       read: Callable[[bytes], str] = read) -> None:
                        response = await bare.post(url, content=orjson.dumps(body(i)),
                                                   headers={"content-type": "application/json", **headers})
                        response.raise_for_status()
                        read(response.content)

                    # prompts of their own: a cache miss each, whatever ran before in this state folder
                    async def run_perfd(i: int = i, llm: LLMClient = llm, name: str = name) -> None:
                        await llm.complete(msgs(f"{name} perfd {i}"))

                    async def run_lean(i: int = i, lean: LLMClient = lean, name: str = name) -> None:
                        await lean.complete(msgs(f"{name} lean {i}"))

                    order = [("bare", run_bare), ("perfd", run_perfd), ("lean", run_lean)]
                    rng.shuffle(order)
                    took: dict[str, float] = {}
                    for kind, fn in order:
                        t = time.perf_counter()
                        await fn()
                        took[kind] = time.perf_counter() - t
                    if i >= 0:
                        bare_ms[name].append(took["bare"])
                        diffs[f"{name}/perfd"].append(took["perfd"] - took["bare"])
                        diffs[f"{name}/lean"].append(took["lean"] - took["bare"])
        finally:
            for llm, lean in clients.values():
                await llm.aclose()
                await lean.aclose()
    med = statistics.median
    for name in cases:
        out[name] = {"bare_ms": med(bare_ms[name]) * 1e3, "overhead_ms": med(diffs[f"{name}/perfd"]) * 1e3,
                     "overhead_lean_ms": med(diffs[f"{name}/lean"]) * 1e3}
    return out


async def interactive_under_batch(server: Server, *, rpm: int, window: float, batch: int,
                                  team_url: str | None = None) -> dict[str, float]:
    """The wait of one interactive call (an editor's, a single run) while a --parallel batch of `batch`
    calls saturates `rpm`, against the same call with no batch; and the same call queued FIFO behind
    the batch (as without priorities), for reference. With `team_url`, the limit is the team's in Redis
    (a fresh namespace per case, so no case inherits another's window)."""
    from perfd.llm import TeamConfig

    server.reset()
    cfg = config(server.base_url, rpm=rpm, window_s=window, cache=False, history=False, max_connections=16)
    cases = iter(range(1000))

    async def one_case(with_batch: bool, interactive: bool) -> float:
        team = (TeamConfig(redis_url=team_url, namespace=f"bench-priority-{os.getpid()}-{next(cases)}")
                if team_url else None)
        with tempfile.TemporaryDirectory() as state:
            return await run_case(LLMClient(cfg, state_dir=state, team=team) if team else LLMClient(cfg),
                                  with_batch, interactive)

    async def run_case(client: LLMClient, with_batch: bool, interactive: bool) -> float:
        async with client as llm:
            took = 0.0

            async def ask() -> None:
                nonlocal took
                t = time.perf_counter()
                await llm.complete(msgs("interactive"), ChatOptions(
                    priority="interactive" if interactive else "batch"))
                took = time.perf_counter() - t

            async with anyio.create_task_group() as tg:
                if with_batch:
                    for i in range(batch):
                        tg.start_soon(llm.complete, msgs(f"batch {i}"), ChatOptions(priority="batch"))
                    await anyio.sleep(0.05)  # the batch has taken the window and queued the rest
                tg.start_soon(ask)
            return took

    alone = await one_case(False, True)
    under = await one_case(True, True)
    fifo = await one_case(True, False)
    return {"alone_s": alone, "under_batch_s": under, "fifo_s": fifo}


# -- 3. pooling -------------------------------------------------------------------------------


async def concurrent(calls: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    limit = anyio.Semaphore(concurrency)
    started = time.perf_counter()

    async def run(i: int) -> None:
        async with limit:
            await one(i)

    async with anyio.create_task_group() as tg:
        for i in range(calls):
            tg.start_soon(run, i)
    return time.perf_counter() - started


async def pooling(server: Server, calls: int, concurrency: int, connect_delay_s: float) -> dict[str, Any]:
    url = server.base_url + "/chat/completions"
    out: dict[str, Any] = {}

    server.reset(latency_s=0.002, connect_delay_s=connect_delay_s)
    async with LLMClient(config(server.base_url, max_connections=16, cache=False, history=False)) as llm:
        out["pooled_s"] = await concurrent(calls, concurrency, lambda i: llm.complete(msgs(f"p{i}")))
        out["pooled_conns"] = server.stats()["connections_opened"]
        out["pooled_conns_client"] = llm.stats().connections_opened

    server.reset(latency_s=0.002, connect_delay_s=connect_delay_s)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)) as fresh:
        async def one(i: int) -> None:
            body = orjson.dumps({"model": "bench-model", "messages": msgs(f"f{i}")})
            (await fresh.post(url, content=body, headers={"content-type": "application/json"})).raise_for_status()

        out["fresh_s"] = await concurrent(calls, concurrency, one)
        out["fresh_conns"] = server.stats()["connections_opened"]
    return out


# -- 4. cache hits ---------------------------------------------------------------------------


async def cache_hits(server: Server, n: int) -> dict[str, float]:
    server.reset()
    async with LLMClient(config(server.base_url)) as llm:
        prompts = [msgs(f"cached question {i}") for i in range(50)]
        for p in prompts:
            await llm.complete(p)
        await llm.flush()
        before = len(server.stats()["requests"])
        times = []
        for i in range(n):
            t = time.perf_counter()
            result = await llm.complete(prompts[i % len(prompts)])
            times.append(time.perf_counter() - t)
            assert result.cached
        assert len(server.stats()["requests"]) == before  # no request was sent
        disk = []
        for p in prompts:  # memory dropped: served by SQLite
            assert llm.cache is not None
            llm.cache.clear_memory()
            t = time.perf_counter()
            assert (await llm.complete(p)).cached
            disk.append(time.perf_counter() - t)
    times.sort()
    return {
        "p50_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1e3,
        "disk_p50_ms": statistics.median(disk) * 1e3,
    }


# -- main -----------------------------------------------------------------------------------


async def provider_rows(server: Server, quick: bool) -> list[Row]:
    rows: list[Row] = []
    per = await overhead_providers(server, 150 if quick else 400)
    for name, ov in per.items():
        rows.append((
            f"overhead per call vs bare httpx, {name} protocol, same local stand-in (cache miss + history)",
            f"{ov['overhead_ms']:+.3f} ms  (bare call {ov['bare_ms']:.2f} ms; cache and history off: "
            f"{ov['overhead_lean_ms']:+.3f} ms)",
            "<= 0.3 ms", verdict(0.0 <= ov["overhead_ms"] <= 0.3),
        ))
    return rows + await priority_rows(server)


async def priority_rows(server: Server) -> list[Row]:
    """Interactive before batch: under the local limiter and under [team]'s, side by side."""
    rows: list[Row] = []
    window = 1.0
    pr = await interactive_under_batch(server, rpm=6, window=window, batch=12)
    rows.append((
        "interactive call's wait while a 12-call --parallel batch saturates rpm=6 per 1 s window",
        f"{pr['under_batch_s']:.2f} s  (no batch: {pr['alone_s']:.3f} s; queued behind the batch, "
        f"no priority: {pr['fifo_s']:.2f} s)",
        "<= one window", verdict(pr["under_batch_s"] <= window + 0.1),
    ))
    with team_redis() as url:
        if url is None:
            rows.append(("the same with [team] (the shared Redis limit)", "skipped: redis-server not found", "",
                         "SKIP"))
            return rows
        tr = await interactive_under_batch(server, rpm=6, window=window, batch=12, team_url=url)
    rows.append((
        "the same with [team] (rpm=6 held in Redis; this daemon's queue serves interactive first)",
        f"{tr['under_batch_s']:.2f} s  (no batch: {tr['alone_s']:.3f} s; no priority: {tr['fifo_s']:.2f} s; "
        f"without [team]: {pr['under_batch_s']:.2f} s)",
        "<= one window", verdict(tr["under_batch_s"] <= window + 0.1),
    ))
    return rows


@contextlib.contextmanager
def team_redis() -> Iterator[str | None]:
    """A real redis-server on a Unix socket for the [team] rows (None when it is not installed)."""
    import shutil

    from redis_helpers import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="perfd-bench-redis-", dir="/tmp")  # short: a socket path has ~107 bytes
    redis_server = RedisServer(folder, binary=binary).start()
    try:
        yield redis_server.url
    finally:
        redis_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def main(quick: bool, only: str = "") -> list[Row]:
    server = Server()
    rows: list[Row] = []
    if only in ("providers", "priority"):
        try:
            return await (provider_rows(server, quick) if only == "providers" else priority_rows(server))
        finally:
            server.close()
    try:
        windows = 3 if quick else 6
        sat_r = await saturate(server, rpm=100, tpm=None, window=1.0, windows=windows)
        rows.append((
            f"RPM saturation: throughput / limit (rpm=100 per 1s window, {windows} windows)",
            f"{sat_r['achieved'] * 100:.1f}%  (busiest window {sat_r['worst']}/{sat_r['limit']}, "
            f"{sat_r['violations']} violations)",
            ">= 95%, 0 violations",
            verdict(sat_r["achieved"] >= 0.95 and sat_r["violations"] == 0),
        ))
        sat_t = await saturate(server, rpm=None, tpm=4500, window=1.0, windows=windows)
        rows.append((
            f"TPM saturation: throughput / limit (tpm=4500 per 1s window, {windows} windows)",
            f"{sat_t['achieved'] * 100:.1f}%  (busiest window {sat_t['worst']}/{sat_t['limit']}, "
            f"{sat_t['violations']} violations)",
            ">= 95%, 0 violations",
            verdict(sat_t["achieved"] >= 0.95 and sat_t["violations"] == 0),
        ))

        cpu = await overhead_cpu(2000 if not quick else 500)
        rows.append((
            "overhead per call vs bare httpx, network taken out (instant transport), wall",
            f"{cpu['overhead_ms']:+.3f} ms  (bare {cpu['bare'] * 1e3:.0f} us, perfd {cpu['perfd'] * 1e3:.0f} us)",
            "<= 1 ms", verdict(cpu["overhead_ms"] <= 1.0),
        ))
        rows.append((
            "  same, CPU of all threads incl. background cache + history writes",
            f"{cpu['overhead_cpu_ms']:+.3f} ms  (bare {cpu['bare_cpu'] * 1e3:.0f} us, "
            f"perfd {cpu['perfd_cpu'] * 1e3:.0f} us)",
            "<= 1 ms", verdict(cpu["overhead_cpu_ms"] <= 1.0),
        ))
        ov = await overhead(server, 150 if quick else 400)
        rows.append((
            "overhead per call vs bare httpx, same local server (median paired diff; cache miss + history)",
            f"{ov['overhead_ms']:+.3f} ms  (bare call {ov['bare_ms']:.2f} ms)",
            "<= 1 ms", verdict(ov["overhead_ms"] <= 1.0),
        ))
        rows.append((
            "overhead per call vs bare httpx, same local server (cache and history off)",
            f"{ov['overhead_lean_ms']:+.3f} ms", "<= 1 ms", verdict(ov["overhead_lean_ms"] <= 1.0),
        ))

        for delay in (0.0, 0.02):
            pool = await pooling(server, 200, 50, delay)
            where = "loopback" if delay == 0 else f"+{delay * 1e3:.0f} ms per new connection (TLS-like)"
            rows.append((
                f"200 calls @ concurrency 50, {where}: pooled perfd (max_connections=16)",
                f"{pool['pooled_conns']} connections (client counted {pool['pooled_conns_client']}), "
                f"{pool['pooled_s'] * 1e3:.0f} ms",
                "<= 16 connections", verdict(pool["pooled_conns"] <= 16),
            ))
            rows.append((
                f"200 calls @ concurrency 50, {where}: new connection per call",
                f"{pool['fresh_conns']} connections, {pool['fresh_s'] * 1e3:.0f} ms "
                f"(pooled/new wall time = {pool['pooled_s'] / pool['fresh_s']:.2f})",
                "(reference)", "-",
            ))

        hits = await cache_hits(server, 2000 if not quick else 500)
        rows.append((
            "cache-hit latency (memory LRU)",
            f"p50 {hits['p50_ms'] * 1e3:.0f} us, p99 {hits['p99_ms'] * 1e3:.0f} us",
            "<= 1 ms", verdict(hits["p99_ms"] <= 1.0),
        ))
        rows.append((
            "cache-hit latency (SQLite, memory cleared)",
            f"p50 {hits['disk_p50_ms'] * 1e3:.0f} us", "(reference)", "-",
        ))
        server.reset()
        at_daemon = await anyio.to_thread.run_sync(daemon_cache_hits, server.base_url, 50 if quick else 200)
        rows.append((
            "cache-hit `perfd run` measured at the daemon (its `run` method: prompt + cache hit + streamed answer)",
            f"p50 {at_daemon['p50_ms']:.3f} ms, p99 {at_daemon['p99_ms']:.3f} ms "
            f"(client round trip p50 {at_daemon['client_p50_ms']:.3f} ms)",
            "<= 1 ms", verdict(at_daemon["p50_ms"] <= 1.0),
        ))
        rows += await provider_rows(server, quick)
    finally:
        server.close()
    return rows


def daemon_cache_hits(base_url: str, n: int) -> dict[str, float]:
    """A real daemon with a model configured: one `run` to fill the cache, then n cached runs.

    The daemon's own per-method latency (from its `stats`) is the figure; the
    client-side round trip over the socket is shown beside it.
    """
    import shutil
    import signal
    import statistics
    import subprocess

    from perfd.wire.rendezvous import state_paths
    from perfd.wire.rendezvous import Connection

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    base = tempfile.mkdtemp(prefix="pb", dir="/tmp")  # short: socket paths are limited to 108 bytes
    root = os.path.realpath(os.path.join(base, "ws"))
    shutil.copytree(os.path.join(repo, "daemon", "perfd", "example"), root)
    with open(os.path.join(root, "perfd.toml"), "w") as f:
        f.write(f'[llm]\nbase_url = "{base_url}"\nmodel = "bench-model"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
    env.update(PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
               PERFD_TRUSTED_PATHS=root)  # the workspace names the stand-in model: the user trusts it
    saved = dict(os.environ)
    os.environ.update(PERFD_RUNTIME_DIR=env["PERFD_RUNTIME_DIR"], PERFD_STATE_DIR=env["PERFD_STATE_DIR"])
    try:
        sock = state_paths(root).sock
    finally:
        os.environ.clear()
        os.environ.update(saved)
    daemon = subprocess.Popen([sys.executable, "-m", "perfd", "daemon", "run", "--root", root], env=env, cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = Connection(sock, 5.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        params = {"argv": ["run", "@API-CLIENT", "--next"], "cwd": root}
        first = conn.call("run", params)
        assert "result" in first and first["result"]["code"] == 0, first
        client_ms = []
        for _ in range(n):
            t = time.perf_counter()
            r = conn.call("run", params)
            client_ms.append((time.perf_counter() - t) * 1e3)
            assert r["result"]["answers"][0]["cached"], r
        stats = conn.call("stats")["result"]
        run = next(m for m in stats["methods"] if m["method"] == "run")
        conn.close()
        # The daemon's window holds the miss too: its p50 over n+1 samples is a cached run.
        return {"p50_ms": run["latency"]["p50_ms"], "p99_ms": run["latency"]["p99_ms"],
                "client_p50_ms": statistics.median(client_ms)}
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(base, ignore_errors=True)


def print_table(rows: list[Row]) -> None:
    headers = ("measure", "result", "goal", "status")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer windows and calls")
    parser.add_argument("--only", choices=("providers", "priority"), default="",
                        help="only the per-provider overhead and the interactive-before-batch rows (providers), "
                             "or only the interactive-before-batch rows, with and without [team] (priority)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfd-bench-") as state:
        os.environ["PERFD_STATE_DIR"] = state
        import importlib.util

        # httpcore imports sniffio on every lock it sets up; when it is missing
        # each attempt searches sys.path again (~0.4 ms per request here).
        sniffio = "installed" if importlib.util.find_spec("sniffio") else "MISSING (httpcore pays for it per request)"
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, httpx {httpx.__version__}, sniffio {sniffio}\n")
        print_table(anyio.run(main, args.quick, args.only))
