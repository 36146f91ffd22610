"""A parse worker's entry point (`python -m perfd.engine.cache.parse_worker`): see perfd.engine.cache.parse_pool."""

from __future__ import annotations

import gc
import os
import sys

import msgspec

from perfd.engine.cache.parse_pool import PlanJob, PlanPart, serve

_engines: dict[tuple[str, bytes], object] = {}  # (root, packed configuration) -> its Engine, made on the first job


def work_out(job: PlanJob) -> list[PlanPart]:
    """The plans of `job`, each worked out from nothing by an engine of the job's workspace and configuration."""
    from perfd.engine.engine import Engine  # only for plan jobs: a file-only worker starts lighter

    key = (job.root, bytes(job.config))
    engine = _engines.get(key)
    if not isinstance(engine, Engine):
        engine = _engines[key] = Engine(job.root, config=msgspec.msgpack.decode(job.config))
    parts = []
    for plan in job.plans:
        try:
            parts.append(engine.cold.plan_part(plan))
        except Exception:  # a plan this worker cannot work out is left to the engine, which reports its problem
            parts.append(PlanPart(plan))
    return parts


if __name__ == "__main__":
    # A worker lives for one cold parse, and what it makes is freed by reference counting
    # (parsed values hold no cycles): the collector would only walk its heap for nothing.
    gc.disable()
    if "--plans" in sys.argv[1:]:
        import perfd.engine.engine  # noqa: F401  (started ahead of its plan jobs: loaded while it waits)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer, work_out=work_out)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    # Every answer is flushed: exit without tearing the interpreter down (tens of ms that the
    # caller, which reaps its workers before going on, would wait for).
    os._exit(0)
