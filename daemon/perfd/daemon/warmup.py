"""The daemon's warm-up: every plan parsed right after start, below requests in priority, and the
persistent parse and answer stores it reads first and writes back.

A part of perfd.daemon.server.Daemon (which inherits it), kept in its own module so that each
file reads in one go; the attributes below are the daemon's, set in Daemon.__init__.
"""

from __future__ import annotations

import gc
import logging
import math
import queue
import time
from collections.abc import Sequence
from functools import partial

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from perfd.engine.engine import Engine
from perfd.engine.ownership import PlanRef
from perfd.engine.parse_pool import Parsed, parse_many, parse_one, sendable, stop_idle

log = logging.getLogger("perfd.daemon")
REQUESTS_FIRST_S = 1.0  # after a restart's first answer, how long the rest of the warm-up waits for clients to go
WATCH_START_WAIT_S = 10.0  # how long the warm-up waits for the watcher before answering without it


class WarmUp:
    engine: Engine
    store_path: str
    answers_path: str
    warmed: anyio.Event
    parsed: anyio.Event
    watch_ready: anyio.Event
    connections: int
    _store_saved_misses: int
    _store_saved_at: float

    # -- warm-up and the persistent parse store ----------------------------------------------

    async def _warm_up(self) -> None:
        """Right after start, have every plan parsed, below requests in priority.

        The persistent store first (what a previous daemon parsed, still valid by
        stat key), then what is left: over worker processes when more than a few
        dozen plans are cold (their results are taken in between requests), else
        here, a few files at a time with requests served in between. A request
        for one plan is served at once meanwhile; one for every plan waits here.
        """
        engine = self.engine
        t0 = time.perf_counter()
        parsed = 0
        # Every object the warm-up makes lives as long as the daemon: collecting (and walking
        # an ever larger heap) while they are made only costs time; they are frozen after.
        gc.disable()
        restored = 0
        try:
            restored, why = engine.load_answers(self.answers_path)
            if why not in ("", "missing"):
                log.info("answer store %s not used (%s): rebuilding it", self.answers_path, why)
            if restored:
                # A restart: the stored answers need one stat per input and nothing parsed (the parse
                # store is read only if an input changed). The request that uses one stat-checks it
                # (as any answer while no watcher runs), so the first status need not wait.
                engine.load_parsed(self.store_path, lazy=True)
                self._store_saved_misses = engine.cache.misses + engine.memo_misses  # both stores hold this
                self.warmed.set()
                log.info("warm-up: %d answers restored in %.2f s", restored, time.perf_counter() - t0)
                await self._clients_served()  # the requests that waited for them first
                # The watcher starts. Nothing else is done ahead: a request that needs a parsed file
                # takes it from the parse store (read then), as a pass over every plan would have,
                # but without holding the loop for the requests that come meanwhile.
                self.parsed.set()
            else:
                why = engine.load_parsed(self.store_path)
                if why not in ("", "missing"):
                    log.info("parse store %s not used (%s): rebuilding it", self.store_path, why)
                await anyio.lowlevel.checkpoint()
                plans = engine.workspace.plans()
                engine.fit_capacity(len(plans))
                step = 64  # plans looked at between two turns of serving requests
                cold = []
                for i in range(0, len(plans), step):
                    cold += engine.cold_plan_files(plans[i:i + step])
                    await anyio.lowlevel.checkpoint()
                workers = engine.use_workers(len(cold))
                if workers:
                    parsed += await self._parse_plans(cold, plans, step)
                else:
                    parsed += await self._parse(cold, False)
                    cold = []
                    for i in range(0, len(plans), step):
                        cold += engine.cold_work_files(plans[i:i + step])
                        await anyio.lowlevel.checkpoint()
                    parsed += await self._parse(cold, engine.use_workers(len(cold) // 16))
                stop_idle()
                self.parsed.set()
                with anyio.move_on_after(WATCH_START_WAIT_S):
                    await self.watch_ready.wait()
                engine.status()  # memoised (and vouched for by the watcher): the first status is an answer from memory
                engine.plan_for_path(engine.root)  # builds the index the watcher's first event asks
                log.info("warm-up: %d plans, %d files parsed (%d from the parse store) in %.2f s", len(plans), parsed,
                         engine.cache.persisted_hits, time.perf_counter() - t0)
        except Exception:
            log.exception("warm-up failed; answers parse what they need")
        finally:
            stop_idle()
            if not restored:
                engine.cache.persisted = {}  # what was not taken is not worth its memory
            gc.freeze()  # out of the collector's sight: later collections walk only what requests make
            gc.enable()
            self.parsed.set()
            self.warmed.set()
        if parsed:
            await self._clients_served()  # writing the stores takes a few tenths of a second at 1,500 plans
            self.save_parsed()

    async def _clients_served(self) -> None:
        """Return once the clients that waited for the warm-up are answered (no connection open).

        Bounded by REQUESTS_FIRST_S: an editor stays connected.
        """
        with anyio.move_on_after(REQUESTS_FIRST_S):
            await anyio.sleep(0.02)
            while self.connections:
                await anyio.sleep(0.01)

    async def _parse(self, items: list[tuple[str, str]], workers: bool, *, keep: bool = False) -> int:
        """Parse `items` into the engine's cache, yielding to requests between batches."""
        engine = self.engine
        if not workers:
            for i in range(0, len(items), 8):
                engine.store_parsed([parse_one(kind, path) for kind, path in items[i:i + 8]])
                await anyio.lowlevel.checkpoint()
            return len(items)
        send, receive = anyio.create_memory_object_stream[list[Parsed]](math.inf)

        def produce() -> None:
            with send:
                for batch in parse_many(items, workers=engine.parse_workers, keep=keep):
                    anyio.from_thread.run_sync(send.send_nowait, batch)

        n = 0
        async with anyio.create_task_group() as tg:
            # abandoned when the daemon stops: its next hand-over fails, which stops the workers
            tg.start_soon(partial(anyio.to_thread.run_sync, produce, abandon_on_cancel=True))
            async with receive:
                async for batch in receive:
                    n += engine.store_parsed(batch)
                    await anyio.lowlevel.checkpoint()
        return n

    async def _parse_plans(self, cold: list[tuple[str, str]], plans: list[PlanRef], step: int) -> int:
        """Parse the `cold` PLAN files over the workers and, in the same run, every plan's other files.

        A pipeline: as PLAN files arrive (held here, on the loop), their plans' SUBPLAN,
        EXECUTION_TASK and parallel.json files are worked out and fed to the workers,
        which parse meanwhile; nothing waits for a phase to end.
        """
        engine = self.engine
        feed: queue.SimpleQueue[Sequence[tuple[str, str]] | None] = queue.SimpleQueue()
        send, receive = anyio.create_memory_object_stream[list[Parsed]](math.inf)

        def produce() -> None:
            with send:
                for batch in parse_many(cold, workers=engine.parse_workers, feed=feed):
                    anyio.from_thread.run_sync(send.send_nowait, batch)

        by_path = {p.path: p for p in plans}
        pending = {path for _kind, path in cold if path in by_path and sendable(path)}  # what the workers answer
        seen: set[str] = set()
        arrived: list[PlanRef] = []
        closed = False

        async def feed_rest() -> None:
            nonlocal closed
            rest = [p for p in plans if p.path not in seen]  # fresh PLANs, and any the workers could not take
            for i in range(0, len(rest), step):
                feed.put(engine.cold_work_files(rest[i:i + step]))
                await anyio.lowlevel.checkpoint()
            feed.put(None)
            closed = True

        n = 0
        try:
            async with anyio.create_task_group() as tg:
                # abandoned when the daemon stops: its next hand-over fails, which stops the workers
                tg.start_soon(partial(anyio.to_thread.run_sync, produce, abandon_on_cancel=True))
                if not pending:
                    await feed_rest()
                async with receive:
                    async for batch in receive:
                        n += engine.store_parsed(batch)
                        for p in batch:
                            if p.kind == "plan" and p.path in pending:
                                pending.discard(p.path)
                                seen.add(p.path)
                                arrived.append(by_path[p.path])
                        while len(arrived) >= step or (arrived and not pending):
                            feed.put(engine.cold_work_files(arrived[:step]))
                            del arrived[:step]
                            await anyio.lowlevel.checkpoint()
                        if not pending and not closed:
                            await feed_rest()
                        await anyio.lowlevel.checkpoint()
        finally:
            if not closed:
                feed.put(None)  # the producer ends
        return n

    def save_parsed(self) -> None:
        """Write the persistent parse store when the cache has parsed something since the last write."""
        self._store_saved_at = time.monotonic()
        misses = self.engine.cache.misses + self.engine.memo_misses
        if misses == self._store_saved_misses or not self.warmed.is_set():
            return
        try:
            size = self.engine.save_parsed(self.store_path)
            self._store_saved_misses = misses
            log.info("parse store: %d bytes written to %s", size, self.store_path)
        except OSError as exc:
            log.warning("cannot write the parse store %s: %s", self.store_path, exc)
        try:
            size = self.engine.save_answers(self.answers_path)
            log.info("answer store: %d bytes written to %s", size, self.answers_path)
        except OSError as exc:
            log.warning("cannot write the answer store %s: %s", self.answers_path, exc)

