"""One way to start background tasks, so that no failure in one goes unseen.

A task created with asyncio.create_task and then forgotten can be garbage
collected mid-flight, and its exception is only printed (if at all) when it
is. spawn() keeps a reference until the task ends and logs its failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TypeVar

log = logging.getLogger("perfd")
_tasks: set[asyncio.Task[object]] = set()
T = TypeVar("T")


def spawn(coro: Coroutine[object, None, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _tasks.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[object]) -> None:
    _tasks.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)
