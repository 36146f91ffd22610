"""Stats benchmark: `perfd stats --history` at several history sizes, and the cost of a /metrics scrape.

Run: python tests/bench/bench_stats.py [--rounds N]

- History: the time to answer `stats --history` (text with charts, CSV, JSON) for one
  workspace out of four, at 1,000, 10,000 and 100,000 recorded calls (the table's cap),
  interleaved round by round and reported as medians; the ratio is against a floor measured
  in the same rounds (a bare `SELECT count(*)` on the same file), so machine noise moves both.
- Metrics: a scrape of the daemon's /metrics over HTTP (loopback) beside the same snapshot
  rendered in-process, both medians of the same rounds: what HTTP adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "daemon"))

import anyio  # noqa: E402
import anyio.abc  # noqa: E402

from perfd.app import history_view as hv  # noqa: E402
from perfd.app.stats_view import render_prometheus  # noqa: E402
from perfd.daemon import metrics_http  # noqa: E402
from perfd.runtime.stats import Stats, snapshot  # noqa: E402
from perfd.engine.engine import Engine  # noqa: E402
from perfd.llm import CallRecord, History  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")


def seed(path: str, n: int) -> None:
    history = History(path, max_rows=n)
    now = time.time()
    plans = [f"PLAN-{i:02d}" for i in range(12)]
    for i in range(n):
        history.record(CallRecord(ts=now - (i % 60) * 86400 - i, model=("m1", "m2")[i % 2], latency_ms=100 + i % 900,
                                  outcome="ok" if i % 17 else "timeout", plan=plans[i % 12], prompt_tokens=500,
                                  completion_tokens=200, cost=0.001, cache_hit=i % 3 == 0, workspace=f"/ws{i % 4}"))
    anyio.run(history.flush)
    history.close()


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_history(rounds: int) -> None:
    print("stats --history, one workspace of four (median of %d rounds)" % rounds)
    print(f"{'calls recorded':>15} {'floor ms':>9} {'text ms':>9} {'csv ms':>9} {'json ms':>9} {'text/floor':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            path = os.path.join(tmp, f"h{n}.sqlite3")
            seed(path, n)
            q = hv.HistoryQuery(path=path, workspace="/ws1")

            def floor() -> None:
                h = History(path)
                h.count()
                h.close()

            cases = {"floor": floor, "text": lambda: hv.render(q, tty=True),
                     "csv": lambda: hv.render(hv.HistoryQuery(path=path, workspace="/ws1", format="csv")),
                     "json": lambda: hv.render(hv.HistoryQuery(path=path, workspace="/ws1", format="json"))}
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(rounds):
                for k, fn in cases.items():
                    times[k].append(timed(fn))
            med = {k: statistics.median(v) * 1000 for k, v in times.items()}
            print(f"{n:>15,} {med['floor']:>9.2f} {med['text']:>9.2f} {med['csv']:>9.2f} {med['json']:>9.2f} "
                  f"{med['text'] / med['floor']:>10.1f}x")


def bench_metrics(rounds: int) -> None:
    engine = Engine(EXAMPLE)
    engine.status()
    stats = Stats()
    for m in ("generate", "status", "run", "stats", "ping"):
        for i in range(500):
            stats.record(m, 100_000 + i * 1000, error=i % 50 == 0)

    def render() -> str:
        return render_prometheus(snapshot(root=EXAMPLE, engine=engine, stats=stats))

    ready = threading.Event()
    port: list[int] = []
    stop = threading.Event()

    async def serve() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port.append(listener.extra(anyio.abc.SocketAttribute.local_port))
        ready.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(metrics_http.serve, listener, render)
            while not stop.is_set():
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    thread = threading.Thread(target=anyio.run, args=(serve,), daemon=True)
    thread.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port[0]}/metrics"

    def scrape() -> None:
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()

    times: dict[str, list[float]] = {"render": [], "scrape": []}
    for _ in range(rounds):
        times["render"].append(timed(render))
        times["scrape"].append(timed(scrape))
    stop.set()
    thread.join(5)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    size = len(render().encode())
    print(f"\n/metrics ({size:,} bytes, 5 commands), median of {rounds} rounds")
    print(f"{'rendered in-process ms':>24} {'scraped over HTTP ms':>22} {'HTTP adds ms':>14}")
    print(f"{med['render']:>24.3f} {med['scrape']:>22.3f} {med['scrape'] - med['render']:>14.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    bench_history(args.rounds)
    bench_metrics(max(args.rounds, 50))


if __name__ == "__main__":
    main()
