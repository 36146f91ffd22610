"""Benchmark of [team]: daemons sharing one rate limit and answer cache through Redis.

    python tests/bench/bench_team.py [--no-litellm]

Starts its own redis-server (127.0.0.1, a free port, persistence off) and the
stand-in model server (tests/llm/fakeserver.py, its own process), and prints,
measured side by side in one run:

  1. 1, 2, 4 and 8 limiters (in-process clients, each with its own limiter and
     connection pool) saturating one shared limit: requests the server saw in
     any window against the limit (goal: never above, at least 95%), beside
     the same clients without [team];
  2. the latency the shared limiter adds per call on loopback (goal: at most
     1 ms p50), a shared cache hit (goal: at most 1 ms p50), Redis operations
     per call;
  3. keys and memory per 1,000 calls, and how many calls one Redis admits;
  4. LiteLLM (its Redis-backed usage-based-routing-v2 rpm limit), with the same
     Redis and the same limit, measured the same way beside perfd, as the
     anchor. It is installed in the bench's own virtual environment
     (/tmp/perfd-bench-litellm, `pip install litellm`), never in perfd's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import anyio
import msgspec

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "llm"))
sys.path.insert(0, HERE)

from bench_llm import Server, verdict  # noqa: E402
from fakeserver import max_in_window  # noqa: E402

from perfd.llm import ChatOptions, LLMClient, LLMConfig, TeamConfig  # noqa: E402

LITELLM_VENV = "/tmp/perfd-bench-litellm"


# -- Redis ------------------------------------------------------------------------------


class Redis:
    def __init__(self, folder: str) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            sys.exit("redis-server not found: run `bash tests/setup-tools.sh` first")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder, "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        self.admin = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.admin.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        self.admin.close()
        self.proc.terminate()
        self.proc.wait(10)


def make_client(server: Server, state: str, *, team: TeamConfig | None, **over: Any) -> LLMClient:
    values: dict[str, Any] = {"base_url": server.base_url, "model": "bench-model", "history": False,
                              "max_connections": 4, "timeout_s": 10.0, "cache_path": os.path.join(state, "c.sqlite3")}
    values.update(over)
    os.makedirs(state, exist_ok=True)
    return LLMClient(msgspec.convert(values, LLMConfig), state_dir=state, team=team)


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- 1. saturation ----------------------------------------------------------------------------


async def saturate(server: Server, tmp: str, redis_url: str | None, *, n: int, rpm: int, window: float,
                   windows: int, namespace: str) -> list[float]:
    server.reset()
    team = TeamConfig(redis_url=redis_url, namespace=namespace) if redis_url else None
    clients = [make_client(server, os.path.join(tmp, f"{namespace}-{i}"), team=team, rpm=rpm, window_s=window)
               for i in range(n)]
    await _call_until(clients, time.monotonic() + windows * window + 0.3, tag=namespace)
    return [r["arrival"] for r in server.stats()["requests"]]


async def _call_until(clients: list[LLMClient], deadline: float, *, tag: str) -> None:
    """Four callers per client, each calling as fast as the limit lets it until `deadline`; then close them."""

    async def caller(llm: LLMClient, tag: str) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            with anyio.move_on_after(max(deadline - time.monotonic(), 0.001)):
                await llm.complete([{"role": "user", "content": f"{tag}-{i}"}], ChatOptions(use_cache=False,
                                                                                          max_tokens=5))

    async with anyio.create_task_group() as tg:
        for k, llm in enumerate(clients):
            for j in range(4):
                tg.start_soon(caller, llm, f"{tag}-{k}-{j}")
    for llm in clients:
        await llm.aclose()


def window_figures(times: list[float], *, rpm: int, window: float, windows: int) -> tuple[int, float]:
    """(max in any window, mean over the whole windows from the first request)."""
    if not times:
        return 0, 0.0
    first = min(times)
    counts = [sum(1 for t in times if first + k * window <= t < first + (k + 1) * window) for k in range(windows)]
    return max_in_window(times, [1] * len(times), window), statistics.fmean(counts)


# -- 2. latency -----------------------------------------------------------------------------------


async def added_latency(server: Server, tmp: str, redis_url: str, calls: int) -> dict[str, float]:
    server.reset()
    local = make_client(server, os.path.join(tmp, "lat-local"), team=None, rpm=100_000)
    shared = make_client(server, os.path.join(tmp, "lat-team"), team=TeamConfig(redis_url=redis_url,
                                                                                namespace="lat"), rpm=100_000)
    times: dict[str, list[float]] = {"local": [], "team": []}
    for i in range(calls):  # interleaved, so drift hits both alike
        for name, llm in (("local", local), ("team", shared)):
            t = time.perf_counter()
            await llm.complete([{"role": "user", "content": f"lat-{name}-{i}"}], ChatOptions(use_cache=False,
                                                                                            max_tokens=5))
            times[name].append((time.perf_counter() - t) * 1000)
    assert shared.team is not None
    ops = shared.team.link.ops
    team_stats = shared.stats().team
    await local.aclose()
    await shared.aclose()
    return {"local_p50": p50(times["local"]), "team_p50": p50(times["team"]), "ops_per_call": ops / calls,
            "rtt_p50": team_stats.redis_rtt_p50_ms or 0.0 if team_stats else 0.0}


async def cache_hits(server: Server, tmp: str, redis_url: str, n: int) -> dict[str, float]:
    server.reset(reply_chars=2000)  # ~2 KB answers: stored compressed
    team = TeamConfig(redis_url=redis_url, namespace="hits")
    a = make_client(server, os.path.join(tmp, "hit-a"), team=team)
    b = make_client(server, os.path.join(tmp, "hit-b"), team=team)
    prompts = [[{"role": "user", "content": f"hit-{i}"}] for i in range(n)]
    for m in prompts:
        await a.complete(m)
    await a.flush()
    shared_ms, memory_ms = [], []
    for m in prompts:
        t = time.perf_counter()
        answer = await b.complete(m)
        shared_ms.append((time.perf_counter() - t) * 1000)
        assert answer.cached
    for m in prompts:
        t = time.perf_counter()
        await b.complete(m)
        memory_ms.append((time.perf_counter() - t) * 1000)
    levels = b.stats().cache_hits_by_level
    await a.aclose()
    await b.aclose()
    return {"shared_p50": p50(shared_ms), "memory_p50": p50(memory_ms), "shared_hits": levels.get("shared", 0)}


# -- 3. keys, memory, throughput ----------------------------------------------------------------------


async def keys_and_memory(server: Server, tmp: str, redis: Redis, calls: int) -> dict[str, float]:
    server.reset(reply_chars=500)
    redis.admin.flushall()
    before = int(redis.admin.info("memory")["used_memory"])
    llm = make_client(server, os.path.join(tmp, "mem"), team=TeamConfig(redis_url=redis.url, namespace="mem"),
                      rpm=100_000, tpm=10_000_000, window_s=60.0)
    for i in range(calls):
        await llm.complete([{"role": "user", "content": f"mem-{i}"}])
    await llm.flush()
    keys = int(redis.admin.dbsize())
    cache_keys = len(redis.admin.keys("perfd:*:c:*"))
    used = int(redis.admin.info("memory")["used_memory"]) - before
    window_members = int(redis.admin.zcard("perfd:{mem}:w"))
    await llm.aclose()
    return {"keys": keys, "cache_keys": cache_keys, "bytes": used, "window_members": window_members}


async def throughput(tmp: str, redis: Redis, seconds: float, tasks: int) -> dict[str, float]:
    """Admit + stamp + settle as fast as the clients can, no HTTP: what one Redis admits."""
    from perfd.llm.gate import LocalGate
    from perfd.llm.ratelimit import RateLimiter
    from perfd.llm.team import TeamGate, TeamLink
    from perfd.llm.types import PreparedRequest, Usage

    cfg = msgspec.convert({"base_url": "http://127.0.0.1:9/v1", "model": "m", "rpm": 10_000_000,
                           "tpm": 1_000_000_000}, LLMConfig)
    link = TeamLink(TeamConfig(redis_url=redis.url, namespace="tput"), namespace="tput", env={})
    gates = [TeamGate(cfg, link, LocalGate(cfg, RateLimiter(rpm=None, tpm=None))) for _ in range(4)]
    request = PreparedRequest(payload={}, body=b"", key=None, tokens=100, prompt_estimate=50,
                              completion_reserved=50, timeout_s=10.0, options=ChatOptions())
    info = redis.admin.info("cpu")
    cpu0 = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    done = 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    async def worker(gate: TeamGate) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            ticket = await gate.admit(request)
            await gate.sent(ticket)
            await gate.settle(ticket, sent=True, usage=Usage(prompt_tokens=40, completion_tokens=40),
                              health="success")
            done += 1

    async with anyio.create_task_group() as tg:
        for k in range(tasks):
            tg.start_soon(worker, gates[k % len(gates)])
    wall = time.monotonic() - started
    info = redis.admin.info("cpu")
    cpu = float(info["used_cpu_sys"]) + float(info["used_cpu_user"]) - cpu0
    await link.aclose()
    return {"calls_per_s": done / wall, "redis_cpu": cpu / wall, "per_core": done / cpu if cpu > 0 else 0.0}


# -- 4. LiteLLM beside perfd on a one-minute window -------------------------------------------------------


def litellm_python() -> tuple[str | None, str]:
    """The bench venv's Python with LiteLLM installed (created on first use), or None and why."""
    py = os.path.join(LITELLM_VENV, "bin", "python")
    if os.path.exists(py) and subprocess.run([py, "-c", "import litellm, redis"], capture_output=True).returncode == 0:
        return py, "reused"
    try:
        subprocess.run([sys.executable, "-m", "venv", LITELLM_VENV], check=True, capture_output=True)
        pip = subprocess.run([py, "-m", "pip", "install", "-q", "litellm", "redis"], capture_output=True, text=True,
                             timeout=900)
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the venv: {exc}"
    if pip.returncode != 0:
        return None, "pip install litellm failed: " + pip.stderr.strip().splitlines()[-1][:200]
    return py, "installed"


async def minute_race(tmp: str, redis: Redis, py: str | None, *, rpm: int, n: int, duration: float
                      ) -> dict[str, dict[str, float]]:
    """perfd and LiteLLM, each with n limiters on its own stand-in server, one shared Redis, one minute limit."""
    ours, theirs = Server(), Server()
    try:
        # Start a few seconds before a minute turns: LiteLLM's windows are calendar minutes.
        now = time.time()
        start_at = now + (45 - now % 60) % 60
        if start_at - now < 5:
            start_at += 60
        offset = time.time() - time.monotonic()
        args = {"base_url": theirs.base_url, "redis_port": redis.port, "rpm": rpm, "instances": n,
                "concurrency": 4, "duration_s": duration, "start_at": start_at, "backoff_s": 0.05}
        proc = None
        if py is not None:
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
            proc = subprocess.Popen([py, os.path.join(HERE, "litellm_anchor.py"), json.dumps(args)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        await anyio.sleep(max(start_at - time.time(), 0))
        await _run_for(ours, tmp, redis.url, n=n, rpm=rpm, duration=duration)
        out: dict[str, dict[str, float]] = {"perfd": _minute_figures(ours, offset)}
        if proc is not None:
            stdout, stderr = proc.communicate(timeout=duration + 120)
            if proc.returncode == 0:
                result = json.loads(stdout.strip().splitlines()[-1])
                out["litellm"] = {**_minute_figures(theirs, offset), "refused": result["refused"],
                                  "errors": result["errors"]}
            else:
                out["litellm_error"] = {"message": stderr.strip()[-300:]}  # type: ignore[dict-item]
        return out
    finally:
        ours.close()
        theirs.close()


async def _run_for(server: Server, tmp: str, redis_url: str, *, n: int, rpm: int, duration: float) -> None:
    team = TeamConfig(redis_url=redis_url, namespace="race")
    clients = [make_client(server, os.path.join(tmp, f"race-{i}"), team=team, rpm=rpm, window_s=60.0)
               for i in range(n)]
    await _call_until(clients, time.monotonic() + duration, tag="race")


def _minute_figures(server: Server, offset: float) -> dict[str, float]:
    times = [r["arrival"] for r in server.stats()["requests"]]
    if not times:
        return {"sent": 0, "max_sliding": 0, "max_calendar": 0, "first_minute": 0}
    minutes: dict[int, int] = {}
    for t in times:
        minutes[int((t + offset) // 60)] = minutes.get(int((t + offset) // 60), 0) + 1
    first = min(times)
    return {"sent": len(times), "max_sliding": max_in_window(times, [1] * len(times), 60.0),
            "max_calendar": max(minutes.values()), "first_minute": sum(1 for t in times if t < first + 60.0)}


# -- main -----------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="perfd-bench-team-")
    redis = Redis(tmp)
    server = Server()
    print(f"bench_team: redis-server {redis.admin.info('server')['redis_version']} on 127.0.0.1 (persistence off), "
          f"stand-in model server in its own process, {os.cpu_count()} cores")
    try:
        rpm, window, windows = 100, 1.0, 4
        print(f"\n1. limiters saturating one shared limit: rpm={rpm} per {window:g} s window, {windows} windows, "
              "4 callers per limiter (goal: never above the limit in any window, at least 95% of it)")
        print(f"{'limiters':>8}  {'max in any window':>18}  {'mean per window':>16}  {'used':>6}  "
              f"{'goal':>6}  {'without [team]: max in any window':>34}")
        for n in (1, 2, 4, 8):
            times = await saturate(server, tmp, redis.url, n=n, rpm=rpm, window=window, windows=windows,
                                   namespace=f"sat{n}")
            top, mean = window_figures(times, rpm=rpm, window=window, windows=windows)
            alone = await saturate(server, tmp, None, n=n, rpm=rpm, window=window, windows=windows,
                                   namespace=f"alone{n}")
            top_alone, _ = window_figures(alone, rpm=rpm, window=window, windows=windows)
            ok = top <= rpm and mean >= 0.95 * rpm
            print(f"{n:>8}  {top:>12} / {rpm:<3}  {mean:>10.1f} / {rpm:<3}  {mean / rpm:>6.1%}  {verdict(ok):>6}  "
                  f"{top_alone:>28} / {rpm:<3}")

        lat = await added_latency(server, tmp, redis.url, calls=400)
        hits = await cache_hits(server, tmp, redis.url, n=400)
        added = lat["team_p50"] - lat["local_p50"]
        print("\n2. latency on loopback (400 calls each, interleaved; stand-in server answers at once)")
        print(f"   call p50 with local limits     {lat['local_p50']:.3f} ms")
        print(f"   call p50 with the shared limit {lat['team_p50']:.3f} ms  -> added {added:.3f} ms p50 "
              f"(goal <= 1 ms: {verdict(added <= 1.0)}); Redis ops per call {lat['ops_per_call']:.2f}, "
              f"one op p50 {lat['rtt_p50']:.3f} ms")
        print(f"   shared cache hit p50 {hits['shared_p50']:.3f} ms (goal <= 1 ms: {verdict(hits['shared_p50'] <= 1.0)});"
              f" memory hit p50 {hits['memory_p50']:.3f} ms; {hits['shared_hits']:.0f} hits from the shared level")

        mem = await keys_and_memory(server, tmp, redis, calls=1000)
        tput = await throughput(tmp, redis, seconds=3.0, tasks=32)
        print("\n3. scale")
        print(f"   1,000 cacheable calls (500-character answers): {mem['keys']:.0f} keys "
              f"({mem['cache_keys']:.0f} answers, {mem['window_members']:.0f} window entries until the window passes), "
              f"{mem['bytes'] / 1024:.0f} KiB of Redis memory ({mem['bytes'] / 1000:.0f} bytes per call)")
        print(f"   one Redis, admit+stamp+settle from 32 callers in this one Python process: "
              f"{tput['calls_per_s']:.0f} calls/s using {tput['redis_cpu']:.0%} of a Redis core "
              f"(~{tput['per_core']:.0f} calls/s per Redis core)")

        if args.no_litellm:
            print("\n4. LiteLLM anchor: skipped (--no-litellm)")
            return
        py, how = litellm_python()
        n, rpm60, duration = 4, 200, 75.0
        print(f"\n4. perfd beside LiteLLM ({'LiteLLM ' + how + ' in ' + LITELLM_VENV if py else 'LiteLLM UNAVAILABLE: ' + how}):"
              f" {n} limiters each, one Redis, rpm={rpm60} per minute, {duration:.0f} s across a minute boundary")
        race = await minute_race(tmp, redis, py, rpm=rpm60, n=n, duration=duration)
        print(f"{'':>8}  {'sent':>6}  {'max in any 60 s':>16}  {'max per clock minute':>21}  {'first 60 s':>11}  goal")
        for name, fig in race.items():
            if name == "litellm_error":
                print(f"   LiteLLM failed: {fig}")
                continue
            ok = fig["max_sliding"] <= rpm60 and fig["first_minute"] >= 0.95 * rpm60
            print(f"{name:>8}  {fig['sent']:>6.0f}  {fig['max_sliding']:>10.0f} / {rpm60}  "
                  f"{fig['max_calendar']:>15.0f} / {rpm60}  {fig['first_minute']:>5.0f} / {rpm60}  {verdict(ok)}")
    finally:
        server.close()
        redis.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM anchor (about 2 minutes)")
    anyio.run(main, parser.parse_args())
