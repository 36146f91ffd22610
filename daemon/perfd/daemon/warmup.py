"""The daemon's warm-up: every plan parsed right after start, below requests in priority, and the
persistent parse and answer stores it reads first and writes back.

A task object of its own: the daemon gives it the engine, where the stores live,
the signals it sets (perfd.daemon.host.WarmSignals: the requests and the watcher
wait on them) and a count of the open connections (it yields to their requests);
the daemon runs `run` as a task, awaits `save_stores` periodically and calls `save_stores_now` at stop.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from collections.abc import Callable
from functools import partial

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from perfd.daemon.host import WarmSignals
from perfd.engine.engine import Engine
from perfd.engine.cache.memo import StatusKey
from perfd.engine.ownership import PlanRef
from perfd.engine.cache.parse_pool import Parsed, PlanHead, parse_one
from perfd.engine.cache.private_file import write_private

log = logging.getLogger("perfd.daemon")
REQUESTS_FIRST_S = 1.0  # after a restart's first answer, how long the rest of the warm-up waits for clients to go
WATCH_START_WAIT_S = 10.0  # how long the warm-up waits for the watcher before answering without it
SLICE_S = 0.02  # how long a step of the warm-up's end may hold the loop
RECHECK_STEP = 1000  # entries stat-checked between two turns of serving requests (a few ms)
SUMMARY_STEP = 64  # plans' status lines worked out between two turns of serving requests
SAVE_STEP = 500  # entries or answers packed for the stores between two turns of serving requests


class WarmUp:
    """Every plan parsed right after start (`run`), and the stores written back (`save_stores`)."""

    def __init__(self, engine: Engine, *, store_path: str, answers_path: str, signals: WarmSignals,
                 open_connections: Callable[[], int]) -> None:
        self.engine = engine
        self.store_path = store_path
        self.answers_path = answers_path  # see perfd.engine.answer_store
        self.signals = signals
        self.open_connections = open_connections
        self._saved_misses = -1  # the engine's misses when the stores were last written
        self.saved_at = time.monotonic()  # when save_stores last ran
        self._saving = False  # a save_stores is under way (the warm-up's and the periodic one never overlap)

    # -- warm-up and the persistent parse store ----------------------------------------------

    async def run(self) -> None:
        """Right after start, have every plan parsed, below requests in priority.

        The persistent store first (what a previous daemon parsed, still valid by
        stat key), then what is left: when more than a few dozen plans are cold,
        whole plans over worker processes (each lists a plan's folders, parses its
        files and decides its status line; their parts are merged here in between
        requests), else here, a few files at a time with requests served in
        between. A request for one plan is served at once meanwhile; one for every
        plan waits here, and is answered before the watcher starts.
        """
        engine = self.engine
        signals = self.signals
        t0 = time.perf_counter()
        parsed = 0
        # Every object the warm-up makes lives as long as the daemon: collecting (and walking
        # an ever larger heap) while they are made only costs time; they are frozen after.
        gc.disable()
        restored = 0
        try:
            if engine.parse_workers > 1 and not os.path.exists(self.answers_path) and engine.likely_large():
                engine.pool.prestart()  # a new daemon: they start while the plans are listed
            restored, why = engine.load_answers(self.answers_path)
            if why not in ("", "missing"):
                log.info("answer store %s not used (%s): rebuilding it", self.answers_path, why)
            if restored:
                # A restart: the stored answers need one stat per input and nothing parsed (the parse
                # store is read only if an input changed). The request that uses one stat-checks it
                # (as any answer while no watcher runs), so the first status need not wait.
                engine.load_parsed(self.store_path, lazy=True)
                self._saved_misses = engine.cache.misses + engine.memo_misses  # both stores hold this
                signals.warmed.set()
                log.info("warm-up: %d answers restored in %.2f s", restored, time.perf_counter() - t0)
                await self._clients_served()  # the requests that waited for them first
                # The watcher starts. Nothing else is done ahead: a request that needs a parsed file
                # takes it from the parse store (read then), as a pass over every plan would have,
                # but without holding the loop for the requests that come meanwhile.
                signals.parsed.set()
            else:
                why = engine.load_parsed(self.store_path)
                if why not in ("", "missing"):
                    log.info("parse store %s not used (%s): rebuilding it", self.store_path, why)
                await anyio.lowlevel.checkpoint()
                plans = engine.plans()
                engine.fit_capacity(len(plans))
                step = 64  # plans looked at between two turns of serving requests
                cold = []
                for i in range(0, len(plans), step):
                    cold += engine.cold_plan_files(plans[i:i + step])
                    await anyio.lowlevel.checkpoint()
                config = engine.packed_config()
                rest = plans
                if engine.use_workers(len(cold)) and config is not None:
                    # Whole plans to the workers: each lists a plan's folders, parses its files and
                    # decides its status line; here they are only merged.
                    cold_paths = {path for _kind, path in cold}
                    await self._decide([p for p in plans if p.path in cold_paths], config)
                    rest = [p for p in plans if p.path not in cold_paths]
                else:
                    parsed += await self._parse(cold, engine.use_workers(len(cold)))
                cold = []  # the other files of plans whose PLAN was known (the parse store)
                for i in range(0, len(rest), step):
                    cold += engine.cold_work_files(rest[i:i + step])
                    await anyio.lowlevel.checkpoint()
                parsed += await self._parse(cold, engine.use_workers(len(cold) // 16))
                engine.pool.stop_idle()
                # The requests that waited for every plan are answered now, from what was just worked
                # out for them (see Engine.answering). The watcher starts once they are: adding its
                # watches holds the interpreter for a few tenths of a second.
                signals.warmed.set()
                with anyio.move_on_after(REQUESTS_FIRST_S):
                    while signals.waiters:
                        await anyio.sleep(0.005)
                # The workers' parsed files and listings, left packed until now: in slices of SLICE_S, not
                # one per batch (before the watcher is up a status request stat-checks every plan's inputs,
                # and turns given to a client asking again and again would only put the watcher off).
                sliced = time.perf_counter()
                for n in engine.taking_held():
                    parsed += n
                    if time.perf_counter() - sliced > SLICE_S:
                        await anyio.lowlevel.checkpoint()
                        sliced = time.perf_counter()
                signals.parsed.set()
                with anyio.move_on_after(WATCH_START_WAIT_S):
                    await signals.watch_ready.wait()
                # What was read before the watcher started is stat-checked once, now rather than on first
                # use: later answers (memoised, vouched for by the watcher) stat nothing.
                # In slices, requests served in between: at 1,500 plans each of these held the loop for
                # a few tenths of a second (the status line of every plan, then the status, a plan's at a time).
                for _n in engine.cache.rechecking(step=RECHECK_STEP):
                    await anyio.lowlevel.checkpoint()
                all_plans = engine.plans()
                for i in range(0, len(all_plans), SUMMARY_STEP):
                    for plan in all_plans[i:i + SUMMARY_STEP]:
                        engine.plan_summary(plan)
                    await anyio.lowlevel.checkpoint()
                # The status was stat-checked input by input (every plan's, as no watcher vouched for it: at
                # 1,500 plans, 45,000 stats in one go); worked out again from the plans' lines just checked,
                # it costs far less. At a few plans the check is the cheaper (and is no miss).
                if len(all_plans) > SUMMARY_STEP:
                    engine.memos.status.drop(StatusKey())
                engine.status()
                await anyio.lowlevel.checkpoint()
                engine.plan_for_path(engine.root)  # builds the index the watcher's first event asks
                log.info("warm-up: %d plans, %d files parsed (%d from the parse store) in %.2f s", len(plans), parsed,
                         engine.cache.persisted_hits, time.perf_counter() - t0)
        except Exception:
            log.exception("warm-up failed; answers parse what they need")
        finally:
            engine.pool.stop_idle()
            parsed += engine.take_held()  # (a warm-up that failed half-way: what the workers sent is still good)
            if not restored:
                engine.cache.drop_persisted()  # what was not taken is not worth its memory
            gc.freeze()  # out of the collector's sight: later collections walk only what requests make
            gc.enable()
            signals.parsed.set()
            signals.warmed.set()
        if parsed:
            await self.save_stores()

    async def _clients_served(self) -> None:
        """Return once the clients that waited for the warm-up are answered (no connection open).

        Bounded by REQUESTS_FIRST_S: an editor stays connected.
        """
        with anyio.move_on_after(REQUESTS_FIRST_S):
            await anyio.sleep(0.02)
            while self.open_connections():
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
                for batch in engine.pool.parse_many(items, keep=keep):
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

    async def _decide(self, plans: list[PlanRef], config: bytes) -> None:
        """Have the workers work out `plans` whole (see Engine.plan_part); merge their answers as they arrive,
        yielding to requests between batches (their files wait, packed, for Engine.take_held)."""
        engine = self.engine
        stamped = time.monotonic()  # before any worker reads: the conservative side (see Engine.take_parts)
        send, receive = anyio.create_memory_object_stream[list[PlanHead]](math.inf)

        def produce() -> None:
            with send:
                for batch in engine.pool.decide_many(plans, root=engine.root, config=config):
                    anyio.from_thread.run_sync(send.send_nowait, batch)

        async with anyio.create_task_group() as tg:
            # abandoned when the daemon stops: its next hand-over fails, which stops the workers
            tg.start_soon(partial(anyio.to_thread.run_sync, produce, abandon_on_cancel=True))
            async with receive:
                async for batch in receive:
                    engine.take_parts(batch, stamped=stamped)
                    await anyio.lowlevel.checkpoint()

    async def save_stores(self) -> None:
        """Write the persistent parse and answer stores when the cache has parsed something since the last
        write, while requests keep being answered: at 1,500 plans packing them took a few tenths of a second.
        What is written is taken from the engine, and the files packed, on the loop a slice at a time (a
        thread packing them would hold the interpreter as long); only the writes are done in a thread."""
        self.saved_at = time.monotonic()
        engine = self.engine
        misses = engine.cache.misses + engine.memo_misses
        if misses == self._saved_misses or not self.signals.warmed.is_set() or self._saving:
            return
        self._saving = True
        try:
            packing = engine.parse_packing(engine.parsed_to_store())  # (immutable: packed bytes, stat keys)
            for _n in packing.steps(SAVE_STEP):
                await anyio.lowlevel.checkpoint()
            data = packing.data()
            del packing
            try:
                await anyio.to_thread.run_sync(write_private, self.store_path, data)
                self._saved_misses = misses
                log.info("parse store: %d bytes written to %s", len(data), self.store_path)
            except OSError as exc:
                log.warning("cannot write the parse store %s: %s", self.store_path, exc)
            del data
            packer = engine.answer_packer()
            answers = engine.answers_to_store()
            for i in range(0, len(answers), SAVE_STEP):
                await anyio.lowlevel.checkpoint()
                packer.add(answers[i:i + SAVE_STEP])
            del answers
            for _n in packer.steps(SAVE_STEP):
                await anyio.lowlevel.checkpoint()
            try:
                size = await anyio.to_thread.run_sync(packer.write, self.answers_path)
                log.info("answer store: %d bytes written to %s", size, self.answers_path)
            except OSError as exc:
                log.warning("cannot write the answer store %s: %s", self.answers_path, exc)
        finally:
            self._saving = False
            self.saved_at = time.monotonic()

    def save_stores_now(self) -> None:
        """save_stores at once, on the caller's thread: when the daemon stops, with nothing left to answer."""
        self.saved_at = time.monotonic()
        misses = self.engine.cache.misses + self.engine.memo_misses
        if misses == self._saved_misses or not self.signals.warmed.is_set():
            return
        try:
            size = self.engine.save_parsed(self.store_path)
            self._saved_misses = misses
            log.info("parse store: %d bytes written to %s", size, self.store_path)
        except OSError as exc:
            log.warning("cannot write the parse store %s: %s", self.store_path, exc)
        try:
            size = self.engine.save_answers(self.answers_path)
            log.info("answer store: %d bytes written to %s", size, self.answers_path)
        except OSError as exc:
            log.warning("cannot write the answer store %s: %s", self.answers_path, exc)
