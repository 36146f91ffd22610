"""The background verification pass: catches the changes that raise no event.

A write through a hard link made outside the watched folders, through mmap,
an edit whose mtime was put back while nobody watched, a file system that
sends no events: none reaches the watcher, but each changes what stat says
(st_ctime_ns at least). Every `interval_s`, the pass stats every file and
folder an answer or a cached value holds, a slice at a time (the event loop
serves requests between slices), and hands what changed to the engine.

Its cost grows with the workspace: one stat per file and folder held (about
45,000 at 1,500 plans: 0.1 to 0.2 s of CPU a pass). The interval bounds its
CPU share (30 s: under 1% of one core at 1,500 plans; see
tests/bench/bench_freshness.py), and so does MAX_SHARE at any size: the next
pass waits at least its cost over MAX_SHARE. A change that raises no event is
seen within max(interval, cost / MAX_SHARE) and one pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import NamedTuple

log = logging.getLogger("perfd.daemon")
MIN_INTERVAL_S = 1.0  # a setting below this (a cloned repository's, say) does not get to burn a core
MAX_SHARE = 0.01  # of one core, whatever the workspace's size: a larger one is verified less often

Pass = Callable[[], Iterator[list[str]]]
"""One verification pass, a slice at a time: each yield gives the paths found changed (already dropped)."""
OnFound = Callable[[set[str]], Awaitable[None]]


class VerifyReport(NamedTuple):
    """What the verification pass did, for perfd stats."""

    interval_s: float
    passes: int
    found: int
    cpu_s: float
    wall_s: float

    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class Verifier:
    """Runs `one_pass` every `interval_s` seconds (0: never) until cancelled; `on_found` is told what it found."""

    def __init__(self, one_pass: Pass, *, interval_s: float, on_found: OnFound | None = None) -> None:
        self.one_pass = one_pass
        self.interval_s = 0.0 if interval_s <= 0 else max(MIN_INTERVAL_S, interval_s)
        self.on_found = on_found
        self.passes = 0
        self.found = 0
        self.cpu_s = 0.0
        self._since: float | None = None

    def run_once(self) -> set[str]:
        """One whole pass, at once (tests, and the benchmark's measure of its cost)."""
        found: set[str] = set()
        t0 = time.process_time()
        for changed in self.one_pass():
            found.update(changed)
        self._count(found, time.process_time() - t0)
        return found

    async def run(self) -> None:
        import anyio
        import anyio.lowlevel

        if self.interval_s <= 0:
            return
        self._since = time.monotonic()
        wait = self.interval_s
        while True:
            await anyio.sleep(wait)
            found: set[str] = set()
            cpu = 0.0
            slices = self.one_pass()
            while True:
                t0 = time.process_time()
                try:
                    changed = next(slices)
                except StopIteration:
                    break
                except Exception:
                    log.exception("verification pass")
                    break
                finally:
                    cpu += time.process_time() - t0
                found.update(changed)
                await anyio.lowlevel.checkpoint()  # requests go first
            self._count(found, cpu)
            wait = max(self.interval_s, cpu / MAX_SHARE)
            if found:
                log.info("verification pass: %d changes no event reported (e.g. %s)", len(found), min(found))
                if self.on_found is not None:
                    try:
                        await self.on_found(found)
                    except Exception:
                        log.exception("handling what the verification pass found")

    def _count(self, found: set[str], cpu_s: float) -> None:
        self.passes += 1
        self.found += len(found)
        self.cpu_s += cpu_s

    def report(self) -> VerifyReport:
        wall = time.monotonic() - self._since if self._since is not None else 0.0
        return VerifyReport(self.interval_s, self.passes, self.found, self.cpu_s, wall)
