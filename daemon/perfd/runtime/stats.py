"""Daemon counters and latency percentiles (perfd.app.stats_view renders them)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from perfd.latency import Window
from perfd.wire.protocol import CacheLevel, MethodStats, StatsSnapshot, WatcherReport
from perfd.engine.types import LatencyStats

if TYPE_CHECKING:
    import psutil

    from perfd.engine.engine import Engine
    from perfd.llm.stats import LLMStats

_SAMPLES = 4096  # latest latencies kept per method


class _Method:
    __slots__ = ("requests", "errors", "samples", "max_ns", "total_ns")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.samples = Window(_SAMPLES)  # nanoseconds
        self.max_ns = 0
        self.total_ns = 0


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
        m.total_ns += elapsed_ns
        if elapsed_ns > m.max_ns:
            m.max_ns = elapsed_ns

    def method_stats(self) -> list[MethodStats]:
        out = []
        for name in sorted(self.methods):
            m = self.methods[name]
            p50, p95, p99 = m.samples.percentiles(0.50, 0.95, 0.99)
            out.append(MethodStats(name, m.requests, m.errors, LatencyStats(
                count=m.requests, errors=m.errors, p50_ms=p50 / 1e6, p95_ms=p95 / 1e6,
                p99_ms=p99 / 1e6, max_ms=m.max_ns / 1e6), total_s=m.total_ns / 1e9))
        return out

    def uptime(self) -> float:
        return time.monotonic() - self.started


_self: psutil.Process | None = None


def rss_bytes() -> int:
    """This process's resident set size now (not its peak), on every system psutil knows."""
    global _self
    if _self is None:
        import psutil

        _self = psutil.Process()
    return int(_self.memory_info().rss)


def level(name: str, hits: int, misses: int) -> CacheLevel:
    lookups = hits + misses
    return CacheLevel(name=name, hits=hits, misses=misses, hit_rate=hits / lookups if lookups else 0.0)


def cache_levels(*, memo_hits: int, memo_misses: int, file_hits: int, file_misses: int,
                 llm: LLMStats | None) -> tuple[list[CacheLevel], float]:
    """Each cache level, and the headline rate: every level's hits over every level's lookups.

    A warm answer is served by the answer memo without a single file lookup, so
    a rate of the file level alone reads 0% on a perfectly warm daemon.
    """
    levels = [level("answers", memo_hits, memo_misses), level("files", file_hits, file_misses)]
    if llm is not None:
        levels.append(level("model responses", llm.cache_hits, llm.cache_misses))
    hits = sum(lv.hits for lv in levels)
    lookups = hits + sum(lv.misses for lv in levels)
    return levels, hits / lookups if lookups else 0.0


def snapshot(*, root: str, engine: Engine, stats: Stats, connections: int = 0, subscribers: int = 0,
             sessions: int = 0, llm: LLMStats | None = None, metrics_addr: str | None = None,
             metrics_error: str | None = None, watcher: WatcherReport | None = None) -> StatsSnapshot:
    """The one stats payload (`perfd stats`, the `stats` method, every editor's perfd/stats), daemon or standalone."""
    import perfd

    methods = stats.method_stats()
    cache = engine.cache_stats()  # the file cache, with how its hits were validated (watcher or stat)
    levels, hit_rate = cache_levels(memo_hits=engine.memo_hits, memo_misses=engine.memo_misses, file_hits=cache.hits,
                                    file_misses=cache.misses, llm=llm)
    return StatsSnapshot(
        version=perfd.__version__, pid=os.getpid(), root=root, uptime_s=stats.uptime(), rss_bytes=rss_bytes(),
        connections=connections, subscribers=subscribers, watcher_events=stats.watcher_events,
        watcher_batches=stats.watcher_batches, cache=cache, memo_hits=engine.memo_hits,
        methods=methods, llm=llm, sessions=sessions, latency={m.method: m.latency for m in methods},
        levels=levels, hit_rate=hit_rate, memo_misses=engine.memo_misses, metrics_addr=metrics_addr,
        metrics_error=metrics_error, watcher=watcher)
