"""The one file watcher: the daemon's and `perfd lsp --standalone`'s.

It reports batches of changed paths (debounced) to a callback; what a change
means (which cache entries, which plans, which editors) is the caller's and
the engine's business. While it runs, the daemon's engine trusts it (warm
answers are not re-stat'ed; its events drop what they touch); when it stops,
answers are validated by stat again (see Engine.trust_watcher).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

log = logging.getLogger("perfd.daemon")
DEBOUNCE_MS = 50
STEP_MS = 10
TIMEOUT_MS = 1000  # how often the waiting thread looks at the stop event


async def watch(folder: str, on_changes: Callable[[set[str]], Awaitable[None]], *,
                stop_event: anyio.Event | None = None, on_state: Callable[[bool], None] | None = None) -> None:
    """Watch `folder` recursively until `stop_event` (or cancellation); a missing folder is not watched.

    `on_changes` gets each debounced batch as real paths (deleted ones as given);
    `on_state(True/False)` says when watching starts and stops. A failing
    callback is logged and watching goes on; a failing watcher is logged and ends.
    """
    if not os.path.isdir(folder):
        log.info("no plans folder %s: not watching", folder)
        return
    import anyio
    import anyio.to_thread
    from watchfiles._rust_notify import RustNotify  # watchfiles.awatch builds it on the event loop

    polling = bool(os.environ.get("WATCHFILES_FORCE_POLLING"))

    stop = stop_event if stop_event is not None else anyio.Event()
    try:
        # Adding a watch to every folder of a large tree takes a while: off the event loop,
        # so that requests (and the warm-up) go on meanwhile.
        notify = await anyio.to_thread.run_sync(lambda: RustNotify([folder], False, polling, 300, True, True))
    except Exception:
        log.exception("cannot watch %s", folder)
        return
    if on_state is not None:
        on_state(True)
    try:
        with notify:
            while not stop.is_set():
                raw = await anyio.to_thread.run_sync(notify.watch, DEBOUNCE_MS, STEP_MS, TIMEOUT_MS, stop,
                                                     abandon_on_cancel=True)
                if raw == "stop":
                    return
                if not isinstance(raw, set) or not raw:
                    continue  # a timeout: look at the stop event again
                paths = {os.path.realpath(p) if os.path.exists(p) else p for _c, p in raw}
                try:
                    await on_changes(paths)
                except Exception:
                    log.exception("handling a batch of file changes")
    except Exception:
        log.exception("watcher stopped")
    finally:
        if on_state is not None:
            on_state(False)
