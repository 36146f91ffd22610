"""Run many prompt jobs at once, each isolated from the others' failures.

Which jobs may run together (plan dependencies) is decided elsewhere; this
helper takes a ready list, runs at most `concurrency` of them at a time on
one shared client and returns one outcome per job, in the jobs' order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
import msgspec

from .client import LLMClient
from .types import ChatOptions, Completion, Message
from .errors import LLMError


class PromptJob(msgspec.Struct, frozen=True, kw_only=True):
    """One call to make: messages plus the options (labels included) for `complete`."""

    id: str
    messages: list[Message]
    options: ChatOptions = ChatOptions()


class JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one job ended: a completion, or the error that stopped it."""

    id: str
    completion: Completion | None = None
    error: str | None = None
    error_kind: str | None = None
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.completion is not None


async def run_jobs(
    client: LLMClient,
    jobs: Sequence[PromptJob],
    *,
    concurrency: int = 4,
    on_outcome: Callable[[JobOutcome], Awaitable[None] | None] | None = None,
) -> list[JobOutcome]:
    """Run `jobs` with at most `concurrency` in flight; outcomes[i] belongs to jobs[i].

    A failing job (any Exception) becomes an outcome with `error` set and
    the others go on. Cancelling the caller cancels every job.
    `on_outcome` is told about each job as it ends (progress display).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    outcomes: list[JobOutcome | None] = [None] * len(jobs)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(jobs):
            index = next_index
            next_index += 1
            outcome = await _run_one(client, jobs[index])
            outcomes[index] = outcome
            if on_outcome is not None:
                maybe = on_outcome(outcome)
                if maybe is not None:
                    await maybe

    # A fixed pool of workers rather than one task per job: memory stays flat
    # for thousands of jobs and jobs start in order.
    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, len(jobs))):
            tg.start_soon(worker)
    return [o for o in outcomes if o is not None]


async def _run_one(client: LLMClient, job: PromptJob) -> JobOutcome:
    started = anyio.current_time()
    try:
        completion = await client.complete(job.messages, job.options)
    except Exception as exc:  # isolation is the point: report it, let the others run
        kind = exc.kind if isinstance(exc, LLMError) else type(exc).__name__
        return JobOutcome(id=job.id, error=str(exc), error_kind=kind, elapsed_s=anyio.current_time() - started)
    return JobOutcome(id=job.id, completion=completion, elapsed_s=anyio.current_time() - started)
