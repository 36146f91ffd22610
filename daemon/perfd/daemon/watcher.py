"""The one file watcher: the daemon's and `perfd lsp --standalone`'s.

It reports batches of changed paths (debounced) to a callback; what a change
means (which cache entries, which plans, which editors) is the caller's and
the engine's business. Correctness never depends on it (the engine re-stats
inputs on every call); it makes pushes possible and keeps the cache tight.
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
    from watchfiles import awatch

    if on_state is not None:
        on_state(True)
    try:
        async for changes in awatch(folder, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop_event,
                                    recursive=True, ignore_permission_denied=True):
            paths = {os.path.realpath(p) if os.path.exists(p) else p for _c, p in changes}
            try:
                await on_changes(paths)
            except Exception:
                log.exception("handling a batch of file changes")
    except Exception:
        log.exception("watcher stopped")
    finally:
        if on_state is not None:
            on_state(False)
