"""Benchmark: what the cache bounds and the output escaping cost, and a planted Redis bomb, side by side.

    python tests/bench/bench_bounds.py [--bombs 40] [--trials 5] [--rounds 9]

1. A planted bomb: a real redis-server (Unix socket, persistence off) and the stand-in model server; a
   model client (what a daemon holds) answers warm cache hits to 8 concurrent "other clients" while one
   more asks questions whose shared answers were overwritten in Redis with a 1.5 MB zlib bomb (inflating
   to 1.5 GB). Printed: the process's peak memory growth (goal: < 50 MB) and the other clients' p99
   beside the same load with no attack right after, per trial and the median ratio (goal: within 3x of
   idle). The warm calls take microseconds, so a p99 here is tens of microseconds and a busy machine
   moves a single trial's ratio: the median of the trials is the figure.
2. A warm answer, with and without the escaping and bounds, alternating rounds (median of rounds):
   a memory hit of the model client; the SQLite read of an answer (bounded query beside the old one);
   a shared answer's decode (bounded inflate beside plain zlib + msgspec); the answer written to a
   terminal (answer_text) beside written raw; a history export's cells (Markdown, CSV) beside the old
   rules. Goal: nothing measurable added (within noise).

Loopback only. Prints tables; a goal not met says MISSED.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, os.path.join(REPO, "tests", "llm"))

import msgspec  # noqa: E402
from fakeserver import FakeServer  # noqa: E402
from redis_helpers import RedisServer, redis_server_binary  # noqa: E402
from test_cache_bounds import zlib_bomb  # noqa: E402

from perfd.llm import LLMClient, LLMConfig, TeamConfig  # noqa: E402
from perfd.llm.cache import CachedResponse  # noqa: E402
from perfd.llm.team import decode_value  # noqa: E402
from perfd.safetext import answer_text, csv_cell, markdown_text, shown  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def vm(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- 1. the bomb ------------------------------------------------------------------------------


def client(server: FakeServer, url: str, state: str) -> LLMClient:
    cfg = LLMConfig(base_url=server.base_url, model="fake-model", history=False, timeout_s=10.0,
                    cache_path=os.path.join(state, "cache.sqlite3"))
    return LLMClient(cfg, state_dir=state, team=TeamConfig(redis_url=url))


async def others(llm: LLMClient, n_tasks: int, *, calls: int = 0, until: asyncio.Event | None = None) -> list[float]:
    """`n_tasks` clients asking warm questions back to back (`calls` in all, or until `until` is set);
    each call's latency in ms."""
    times: list[float] = []

    async def one(i: int) -> None:
        k = 0
        while (k < calls // n_tasks) if until is None else not until.is_set():
            t = time.perf_counter()
            hit = await llm.complete(ask(f"warm {i % 4}"))
            times.append((time.perf_counter() - t) * 1000)
            assert hit.cached
            k += 1
            await asyncio.sleep(0.0005)

    await asyncio.gather(*(one(i) for i in range(n_tasks)))
    return times


async def bomb_run(base: str, url: str, server: FakeServer, bombs: int, trials: int) -> None:
    import redis

    payer = client(server, url, os.path.join(base, "payer"))
    async with payer:
        for i in range(bombs * trials):
            await payer.complete(ask(f"bombed {i}"))
        await payer.flush()
    bomb = b"\x01" + zlib_bomb()
    admin = redis.Redis(unix_socket_path=url.removeprefix("unix://"))
    keys = admin.keys("perfd:*:c:*")
    for key in keys:
        admin.set(key, bomb)
    daemon = client(server, url, os.path.join(base, "daemon"))
    rows: list[tuple[float, float, float, float, float, float, int, int]] = []
    async with daemon:
        for i in range(4):
            await daemon.complete(ask(f"warm {i}"))
        await others(daemon, 8, calls=400)  # warm-up
        before_rss, before_peak = vm("VmRSS"), vm("VmHWM")
        misses = 0
        for trial in range(trials):  # attack, then the same load as long without it: side by side, `trials` times
            done = asyncio.Event()

            async def attacker() -> None:
                nonlocal misses
                for i in range(trial * bombs, (trial + 1) * bombs):
                    got = await daemon.complete(ask(f"bombed {i}"))
                    misses += not got.cached
                done.set()

            started = time.perf_counter()
            attacked, _ = await asyncio.gather(others(daemon, 8, until=done), attacker())
            attack_s = time.perf_counter() - started
            idle_done = asyncio.Event()
            asyncio.get_running_loop().call_later(max(attack_s, 1.0), idle_done.set)
            idle = await others(daemon, 8, until=idle_done)
            rows.append((pct(idle, 0.5), pct(idle, 0.99), max(idle), pct(attacked, 0.5), pct(attacked, 0.99),
                         max(attacked), len(idle), len(attacked)))
        team = daemon.stats().team
    grew_peak = vm("VmHWM") - before_peak
    print(f"\n1. a planted bomb: {len(keys)} shared answers overwritten with {len(bomb) / 1e6:.2f} MB of zlib "
          f"(inflating to ~1.5 GB each), asked {bombs} at a time beside 8 clients' warm calls, {trials} trials")
    print(f"   rejected {team.cache_rejected if team else '?'} · misses paid again {misses} · "
          f"Redis errors {team.redis_errors if team else '?'}")
    print(f"   memory: RSS {before_rss:.0f} MB before, peak grew {grew_peak:.1f} MB "
          f"(goal < 50 MB){'' if grew_peak < 50 else '  MISSED'}")
    print(f"   {'trial':6} {'idle p50/p99/max ms':>24} {'beside bombs p50/p99/max ms':>30} {'calls':>12} {'p99 ratio':>10}")
    ratios = []
    for n, (ip50, ip99, imax, ap50, ap99, amax, ni, na) in enumerate(rows, 1):
        ratios.append(ap99 / ip99 if ip99 else float("inf"))
        print(f"   {n:<6} {ip50:8.3f}/{ip99:6.3f}/{imax:7.3f} {ap50:12.3f}/{ap99:6.3f}/{amax:7.3f} {ni:>6}/{na:<5} "
              f"{ratios[-1]:9.2f}x")
    ratio = statistics.median(ratios)
    print(f"   p99 ratio, median of the trials: {ratio:.2f}x (goal <= 3x){'' if ratio <= 3 else '  MISSED'}")


# --- 2. a warm answer, with and without ----------------------------------------------------------


def timed(fn: object, n: int) -> float:
    assert callable(fn)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def side_by_side(rows: dict[str, tuple[object, object, int]], rounds: int) -> None:
    print(f"\n2. a warm answer's pieces, with and without the bounds and escaping (median of {rounds} alternating rounds)")
    print(f"   {'piece':44} {'without us':>11} {'with us':>11} {'added us':>10} {'ratio':>7}")
    for name, (old, new, n) in rows.items():
        a: list[float] = []
        b: list[float] = []
        for _ in range(rounds):
            a.append(timed(old, n))
            b.append(timed(new, n))
        ma, mb = statistics.median(a), statistics.median(b)
        spread = statistics.median([abs(x - y) for x, y in zip(a[1:], a[:-1])])  # round-to-round noise
        print(f"   {name:44} {ma:11.2f} {mb:11.2f} {mb - ma:10.2f} {mb / ma if ma else 0:7.2f}"
              f"   (noise ±{spread:.2f})")


def warm_pieces(base: str, server: FakeServer, rounds: int) -> None:
    answer = CachedResponse(text=("A plan's next step, as a model writes it.\n\t- one\n\t- two\n" * 40),
                            model="fake-model", prompt_tokens=900, completion_tokens=400)
    body = msgspec.msgpack.encode(answer)
    stored = b"\x01" + zlib.compress(body, 6)
    dec = msgspec.msgpack.Decoder(CachedResponse)

    def old_decode() -> object:
        return dec.decode(zlib.decompress(stored[1:]))

    def new_decode() -> object:
        return decode_value(stored, 4 * 1024 * 1024)

    path = os.path.join(base, "bench.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, created REAL, expires REAL, used REAL, body BLOB)")
    conn.execute("INSERT INTO responses VALUES ('k', 0, 1e12, 0, ?)", (body,))
    conn.commit()

    def old_read() -> object:
        row = conn.execute("SELECT expires, body FROM responses WHERE key = ?", ("k",)).fetchone()
        return dec.decode(row[1])

    def new_read() -> object:
        row = conn.execute("SELECT expires, CASE WHEN length(body) <= ? THEN body END FROM responses WHERE key = ?",
                           (4 * 1024 * 1024, "k")).fetchone()
        return dec.decode(row[1])

    class Sink:
        def write(self, text: str, /) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    from perfd.safetext import TerminalText

    raw, term = Sink(), TerminalText(Sink())
    chunks = [answer.text[i:i + 40] for i in range(0, len(answer.text), 40)]

    def old_out() -> None:
        for c in chunks:
            raw.write(c)

    def new_out() -> None:
        for c in chunks:
            term.write(c)

    names = [f"@PLAN-{i}" for i in range(20)] + ["model-gpt-4o-mini", "2026-12-01", "ok"]

    def old_md() -> None:
        for n in names:
            shown(n).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")

    def new_md() -> None:
        for n in names:
            markdown_text(n)

    def old_csv() -> None:
        for n in names:
            c = shown(n)
            "'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c

    def new_csv() -> None:
        for n in names:
            csv_cell(n)

    async def memory_hits(llm: LLMClient, n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            await llm.complete(ask("warm"))
        return (time.perf_counter() - t) / n * 1e6

    async def hits() -> tuple[list[float], list[float]]:  # two clients: the bound out of reach, and 4 MiB
        wide = LLMClient(LLMConfig(base_url=server.base_url, model="fake-model", history=False,
                                   cache_path=os.path.join(base, "a.sqlite3"), cache_max_answer_bytes=2**62),
                         state_dir=base)
        bounded = LLMClient(LLMConfig(base_url=server.base_url, model="fake-model", history=False,
                                      cache_path=os.path.join(base, "b.sqlite3")), state_dir=base)
        a: list[float] = []
        b: list[float] = []
        async with wide, bounded:
            await wide.complete(ask("warm"))
            await bounded.complete(ask("warm"))
            for _ in range(rounds):
                a.append(await memory_hits(wide, 2000))
                b.append(await memory_hits(bounded, 2000))
        return a, b

    from perfd.cli.client import unsafe_on_terminal

    prompt = (("Create the SUBPLAN for achievement 2.1 — “API Reference” of plan \"Docs\".\n\t- read it\n" * 60)
              .encode("utf-8"))

    def old_prompt() -> None:
        pass

    def new_prompt() -> None:
        unsafe_on_terminal(prompt)

    a, b = asyncio.run(hits())
    wa, wb = asyncio.run(warm_runs(base, server, rounds))
    side_by_side({
        "SQLite read of a 3 KB answer (bounded query)": (old_read, new_read, 2000),
        "shared answer decode (bounded inflate)": (old_decode, new_decode, 2000),
        "answer to a terminal, 40-char chunks": (old_out, new_out, 2000),
        "Markdown export cells (23 names)": (old_md, new_md, 2000),
        "CSV export cells (23 names)": (old_csv, new_csv, 2000),
        f"a {len(prompt) // 1000} KB prompt's terminal check (thin client)": (old_prompt, new_prompt, 2000),
    }, rounds)
    ma, mb = statistics.median(a), statistics.median(b)
    spread = statistics.median([abs(x - y) for x, y in zip(a[1:], a[:-1])])
    print(f"   {'model client memory hit (no bound / 4 MiB)':44} {ma:11.2f} {mb:11.2f} {mb - ma:10.2f} "
          f"{mb / ma:7.2f}   (noise ±{spread:.2f})")
    ma, mb = statistics.median(wa), statistics.median(wb)
    spread = statistics.median([abs(x - y) for x, y in zip(wa[1:], wa[:-1])])
    print(f"   {'a warm perfd run (cache hit), raw / terminal':44} {ma:11.2f} {mb:11.2f} {mb - ma:10.2f} "
          f"{mb / ma:7.2f}   (noise ±{spread:.2f})")


async def warm_runs(base: str, server: FakeServer, rounds: int) -> tuple[list[float], list[float]]:
    """A whole warm `perfd run` (the run service's execute: resolve, cache hit, render) with its answer written
    raw beside written through TerminalText, alternating rounds; microseconds per run."""
    from perfd.app.run import prepare
    from perfd.app.run_render import execute
    from perfd.safetext import TerminalText

    class Sink:
        def write(self, text: str, /) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    ws = os.path.join(base, "ws")
    shutil.copytree(os.path.join(REPO, "daemon", "perfd", "example"), ws)
    prepared = prepare(["run", "@DOCS-SITE", "2.1"], ws)
    assert isinstance(prepared, tuple), prepared
    request, engine = prepared
    server.settings.reply_chars = 2500
    llm = LLMClient(LLMConfig(base_url=server.base_url, model="fake-model", history=False,
                              cache_path=os.path.join(base, "run.sqlite3")), state_dir=base)
    raw, term = Sink(), TerminalText(Sink())
    a: list[float] = []
    b: list[float] = []
    async with llm:
        await execute(request, engine, llm, ws, out=raw, err=Sink())  # paid once; every run after is a hit
        for r in range(rounds):
            pairs: list[tuple[object, list[float]]] = [(raw, a), (term, b)]
            for sink, into in (pairs if r % 2 == 0 else pairs[::-1]):  # neither always goes first
                t = time.perf_counter()
                for _ in range(200):
                    await execute(request, engine, llm, ws, out=sink, err=Sink())  # type: ignore[arg-type]
                into.append((time.perf_counter() - t) / 200 * 1e6)
    return a, b


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bombs", type=int, default=40, help="bombed answers asked per trial")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    binary = redis_server_binary()
    if binary is None:
        print("redis-server not found: run tests/setup-tools.sh")
        return 1
    base = tempfile.mkdtemp(prefix="perfd-bb-", dir="/tmp")
    redis_server = RedisServer(os.path.join(base, "redis"), binary=binary).start()
    try:
        with FakeServer(max_lifetime_s=600) as server:
            asyncio.run(bomb_run(base, redis_server.url, server, args.bombs, args.trials))
            warm_pieces(base, server, args.rounds)
    finally:
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
