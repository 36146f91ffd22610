"""The one file watcher: the daemon's and `perfd lsp --standalone`'s.

It reports batches of changed paths (debounced) to a callback; what a change
means (which cache entries, which plans, which editors) is the caller's and
the engine's business. While it runs, the daemon's engine trusts it (warm
answers are not re-stat'ed; its events drop what they touch); when it stops,
answers are validated by stat again (see Engine.trust_watcher).

On Linux it reads inotify itself (perfd.runtime.inotify): the descriptor is
perfd's, waited on by the event loop (no thread), and a folder it could not
watch or an overflow is known, not guessed. Elsewhere (macOS's FSEvents, the
BSDs' kqueue), with WATCHFILES_FORCE_POLLING set, or when inotify cannot be
set up, it is watchfiles' public `awatch`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

    from perfd.runtime.inotify import Event, InotifyTree

log = logging.getLogger("perfd.daemon")
DEBOUNCE_MS = 50  # a batch is at most this old when it is reported...
STEP_MS = 10  # ...or sooner, once no event came for this long
TIMEOUT_MS = 1000  # watchfiles: how often its waiting thread looks at the stop event

OnChanges = Callable[[set[str]], Awaitable[None]]
OnState = Callable[[bool], None]


async def watch(folder: str, on_changes: OnChanges, *,
                stop_event: anyio.Event | None = None, on_state: OnState | None = None) -> None:
    """Watch `folder` recursively until `stop_event` (or cancellation); a missing folder is not watched.

    `on_changes` gets each debounced batch as real paths (deleted ones as given);
    `on_state(True/False)` says when watching starts and stops. A failing
    callback is logged and watching goes on; a failing watcher is logged and ends.

    With inotify, on_state(True) means every folder under `folder` is watched:
    while one is not (the watch limit, a permission), it is False, and the log
    says which. A dropped-event overflow is reported as a restart, on_state(False)
    then on_state(True) (the caller checks everything again), and a batch
    (maybe empty: anything may have changed).
    """
    if not os.path.isdir(folder):
        log.info("no plans folder %s: not watching", folder)
        return
    import anyio

    stop = stop_event if stop_event is not None else anyio.Event()
    if sys.platform.startswith("linux") and not os.environ.get("WATCHFILES_FORCE_POLLING"):
        from perfd.runtime.inotify import InotifyTree

        try:
            tree = InotifyTree(folder)
        except OSError as exc:
            log.warning("cannot use inotify (%s): watching %s with watchfiles", exc, folder)
        else:
            with tree:
                await _watch_inotify(tree, on_changes, stop, on_state)
            return
    await _watch_portable(folder, on_changes, stop, on_state)


async def _report(paths: set[str], on_changes: OnChanges) -> None:
    real = {os.path.realpath(p) if os.path.exists(p) else p for p in paths}
    try:
        await on_changes(real)
    except Exception:
        log.exception("handling a batch of file changes")


# -- Linux: perfd's own inotify reader -----------------------------------------------------------------


async def _watch_inotify(tree: InotifyTree, on_changes: OnChanges, stop: anyio.Event,
                         on_state: OnState | None) -> None:
    import anyio.to_thread

    try:
        # Adding a watch to every folder of a large tree is a walk (about 100 ms for the 6,000 folders of
        # 1,500 plans): off the event loop, so that requests (and the warm-up) go on meanwhile.
        await anyio.to_thread.run_sync(tree.start)
    except Exception:
        log.exception("cannot watch %s", tree.root)
        return
    if stop.is_set():  # stopped while the watches were being added
        return
    state = tree.complete
    if on_state is not None:
        on_state(state)  # even False (a folder unwatched from the start): the caller knows the watcher is up

    def set_state(on: bool) -> None:
        nonlocal state
        if on != state:
            state = on
            if on_state is not None:
                on_state(on)

    try:
        while tree.root_watched:
            events = await _next_batch(tree, stop)
            if events is None:
                return
            if not events:
                continue
            overflow = any(e.overflow for e in events)
            if overflow and state:
                set_state(False)  # what the dropped events said is unknown: checked again from scratch
            set_state(tree.complete)
            await _report({e.path for e in events if not e.overflow}, on_changes)
    except Exception:
        log.exception("watcher stopped")
    finally:
        set_state(False)


async def _next_batch(tree: InotifyTree, stop: anyio.Event) -> list[Event] | None:
    """The next debounced batch (possibly empty: another reader took the events), or None once stopped."""
    import anyio

    events = tree.read_pending()
    if not events:
        if not await _readable_or_stop(tree, stop):
            return None
        events = tree.read_pending()
        if not events:
            return events
    # Debounce: gather until no event came for STEP_MS, or DEBOUNCE_MS after the first.
    deadline = time.monotonic() + DEBOUNCE_MS / 1000
    while tree.root_watched:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        with anyio.move_on_after(min(STEP_MS / 1000, left)) as quiet:
            await anyio.wait_readable(tree.fileno())
        if quiet.cancelled_caught:
            break
        events += tree.read_pending()
    return events


async def _readable_or_stop(tree: InotifyTree, stop: anyio.Event) -> bool:
    """Wait until an event is pending (True) or `stop` is set (False)."""
    import anyio

    if stop.is_set():
        return False
    async with anyio.create_task_group() as tg:
        async def on_stop() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(on_stop)
        await anyio.wait_readable(tree.fileno())
        tg.cancel_scope.cancel()
    return not stop.is_set()


# -- elsewhere: watchfiles' public API -----------------------------------------------------------------


async def _watch_portable(folder: str, on_changes: OnChanges, stop: anyio.Event, on_state: OnState | None) -> None:
    try:
        import watchfiles
    except ImportError:
        log.warning("watchfiles is not installed: not watching %s", folder)
        return
    polling = True if os.environ.get("WATCHFILES_FORCE_POLLING") else None
    started = False
    try:
        # yield_on_timeout: the first (empty) batch says the watches are in place.
        async for changes in watchfiles.awatch(folder, watch_filter=None, stop_event=stop, debounce=DEBOUNCE_MS,
                                               step=STEP_MS, rust_timeout=TIMEOUT_MS, yield_on_timeout=True,
                                               force_polling=polling, recursive=True,
                                               ignore_permission_denied=True):
            if not started:
                started = True
                if on_state is not None:
                    on_state(True)
            if changes:
                await _report({p for _change, p in changes}, on_changes)
    except Exception:
        log.exception("watcher stopped" if started else f"cannot watch {folder}")
    finally:
        if started and on_state is not None:
            on_state(False)
