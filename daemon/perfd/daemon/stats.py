"""Daemon counters and latency percentiles (perfd.app.stats_view renders them)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from perfd.latency import Window
from perfd.wire.protocol import MethodStats, StatsSnapshot
from perfd.engine.types import LatencyStats

if TYPE_CHECKING:
    from perfd.engine.engine import Engine
    from perfd.llm.stats import LLMStats

_SAMPLES = 4096  # latest latencies kept per method


class _Method:
    __slots__ = ("requests", "errors", "samples", "max_ns")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.samples = Window(_SAMPLES)  # nanoseconds
        self.max_ns = 0


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.methods: dict[str, _Method] = {}
        self.watcher_events = 0
        self.watcher_batches = 0

    def record(self, method: str, elapsed_ns: int, error: bool = False) -> None:
        m = self.methods.get(method)
        if m is None:
            m = self.methods[method] = _Method()
        m.requests += 1
        if error:
            m.errors += 1
        m.samples.add(elapsed_ns)
        if elapsed_ns > m.max_ns:
            m.max_ns = elapsed_ns

    def method_stats(self) -> list[MethodStats]:
        out = []
        for name in sorted(self.methods):
            m = self.methods[name]
            p50, p95, p99 = m.samples.percentiles(0.50, 0.95, 0.99)
            out.append(MethodStats(name, m.requests, m.errors, LatencyStats(
                count=m.requests, errors=m.errors, p50_ms=p50 / 1e6, p95_ms=p95 / 1e6,
                p99_ms=p99 / 1e6, max_ms=m.max_ns / 1e6)))
        return out

    def uptime(self) -> float:
        return time.monotonic() - self.started


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def snapshot(*, root: str, engine: Engine, stats: Stats, connections: int = 0, subscribers: int = 0,
             sessions: int = 0, llm: LLMStats | None = None) -> StatsSnapshot:
    """The one stats payload (`perfd stats`, the `stats` method, every editor's perfd/stats), daemon or standalone."""
    import perfd

    methods = stats.method_stats()
    return StatsSnapshot(
        version=perfd.__version__, pid=os.getpid(), root=root, uptime_s=stats.uptime(), rss_bytes=rss_bytes(),
        connections=connections, subscribers=subscribers, watcher_events=stats.watcher_events,
        watcher_batches=stats.watcher_batches, cache=engine.cache_stats(), memo_hits=engine.memo_hits,
        methods=methods, llm=llm, sessions=sessions, latency={m.method: m.latency for m in methods})
