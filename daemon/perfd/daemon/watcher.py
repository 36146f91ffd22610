"""Watch the plans folder: invalidate exactly what changed, recompute the plan, notify subscribers.

Correctness never depends on the watcher (the engine re-stats inputs on every
call); the watcher makes pushes possible and keeps the cache tight.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from perfd.wire.protocol import PlanChanged

if TYPE_CHECKING:
    from perfd.daemon.server import Daemon

log = logging.getLogger("perfd.daemon")
DEBOUNCE_MS = 50
STEP_MS = 10


def affected_plans(daemon: Daemon, paths: set[str]) -> dict[str, tuple[object, list[str]]]:
    """plan path -> (PlanRef, changed paths in it)."""
    ws = daemon.engine.workspace
    out: dict[str, tuple[object, list[str]]] = {}
    for plan in ws.plans():
        flat = plan.folder == ws.plans_dir
        for p in paths:
            inside = (p == plan.path) if flat else (p == plan.folder or p.startswith(plan.folder + os.sep))
            if flat and not inside and os.path.dirname(p) == plan.folder and not os.path.basename(p).startswith("PLAN_"):
                inside = True  # flat layouts share one folder
            if inside:
                out.setdefault(plan.path, (plan, []))[1].append(p)
    return out


async def handle_changes(daemon: Daemon, paths: set[str]) -> None:
    engine = daemon.engine
    engine.changed(sorted(paths))  # exactly these files and their folders' listings
    daemon.refresh_editors()
    for _key, (plan, changed) in affected_plans(daemon, paths).items():
        try:
            st = engine.plan_status(plan)  # type: ignore[arg-type]
        except Exception:  # a half-written file: the next event or call fixes it
            log.exception("recomputing %s", getattr(plan, "path", plan))
            continue
        await daemon.notify("planChanged", PlanChanged(
            plan=st.plan, path=st.path, state=st.state, next=st.next, done=st.done, total=st.total,
            changed=sorted(changed)))


async def watch(daemon: Daemon) -> None:
    plans_dir = daemon.engine.workspace.plans_dir
    if not os.path.isdir(plans_dir):
        log.info("no plans folder %s: not watching", plans_dir)
        return
    from watchfiles import awatch

    daemon.watching = True
    try:
        async for changes in awatch(plans_dir, debounce=DEBOUNCE_MS, step=STEP_MS,
                                    stop_event=daemon._stop_event, ignore_permission_denied=True):
            daemon.stats.watcher_batches += 1
            daemon.stats.watcher_events += len(changes)
            await handle_changes(daemon, {os.path.realpath(p) if os.path.exists(p) else p for _c, p in changes})
    except Exception:
        log.exception("watcher stopped")
    finally:
        daemon.watching = False
