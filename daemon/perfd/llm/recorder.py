"""The public life of one model call, the same for a plain call (client.py) and a streamed one (stream.py).

A call starts (counted, its deadline set), may be answered from the response
cache, and ends once: answered by the provider (counters, cache, history),
replayed from the cache (history), or failed (error counters, history). Both
kinds of call go through these steps, so neither needs the other's insides.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from .cache import CachedResponse, ResponseCache
from .config import LLMConfig
from .errors import LLMError
from .history import CallRecord, History
from .stats import Counters
from .types import Completion, PreparedRequest, Usage


class CallRecorder:
    """Where the calls of one provider are counted, cached and recorded (shared by all its calls)."""

    def __init__(self, config: LLMConfig, counters: Counters, *, cache: ResponseCache | None,
                 history: History | None, redact: Callable[[str], str]) -> None:
        self.config = config
        self.counters = counters
        self.cache = cache
        self.history = history
        self.redact = redact  # the API key out of any text kept

    def begin(self, request: PreparedRequest, *, stream: bool) -> Call:
        """A call starts now: counted, and its whole-call deadline set."""
        request.deadline = time.monotonic() + self.config.total_timeout_s
        self.counters.calls += 1
        return Call(self, request, stream=stream)


class Call:
    """One call from `CallRecorder.begin` to its outcome."""

    __slots__ = ("recorder", "request", "stream", "started", "wall")

    def __init__(self, recorder: CallRecorder, request: PreparedRequest, *, stream: bool) -> None:
        self.recorder = recorder
        self.request = request
        self.stream = stream
        self.started = time.perf_counter()  # for latencies
        self.wall = time.time()  # for the history

    async def lookup(self) -> CachedResponse | None:
        """The cached answer, if the call is cacheable and the cache holds it (a miss is counted)."""
        cache, key = self.recorder.cache, self.request.key
        if key is None or cache is None or not self.request.options.use_cache:
            return None  # (with use_cache=False the answer still replaces the cached one)
        hit = await cache.get(key)
        if hit is None:
            self.recorder.counters.cache_misses += 1
        return hit

    def hit(self, hit: CachedResponse) -> Completion:
        """The cached answer as this call's completion; the hit and what it saved are counted."""
        c, config = self.recorder.counters, self.recorder.config
        c.cache_hits += 1
        c.tokens_saved += hit.prompt_tokens + hit.completion_tokens
        c.cost_saved += config.cost(hit.prompt_tokens, hit.completion_tokens)
        return Completion(
            text=hit.text, model=hit.model, finish_reason=hit.finish_reason,
            usage=Usage(prompt_tokens=hit.prompt_tokens, completion_tokens=hit.completion_tokens),
            cached=True, attempts=0, latency_s=time.perf_counter() - self.started, cost=0.0, tool_calls=hit.tool_calls,
        )

    def finished(self, result: Completion, *, chunks: list[str] | None = None) -> None:
        """The provider answered: usage, cost and latency counted, the answer cached and recorded."""
        recorder = self.recorder
        c = recorder.counters
        c.prompt_tokens += result.usage.prompt_tokens
        c.completion_tokens += result.usage.completion_tokens
        c.cost += result.cost
        c.latencies_ms.add(result.latency_s * 1000.0)
        key = self.request.key
        if key is not None and recorder.cache is not None:
            recorder.cache.put(key, CachedResponse(
                text=result.text, model=result.model, finish_reason=result.finish_reason,
                prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens,
                chunks=chunks, tool_calls=result.tool_calls, created=time.time(),
            ))
        self.replayed(result)

    def replayed(self, result: Completion) -> None:
        """The answer (from the provider or the cache) reached the caller: recorded in the history."""
        history = self.recorder.history
        if history is None:
            return
        config, labels = self.recorder.config, self.request.options
        history.record(CallRecord(
            ts=self.wall, model=result.model, latency_ms=result.latency_s * 1000.0, outcome="ok",
            plan=labels.plan, achievement=labels.achievement, state=labels.state, workspace=labels.workspace,
            prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens,
            # a cache hit cost nothing; an answer of a model with no known price cost what is unknown, not 0
            cost=result.cost if result.cached or config.priced else None,
            cache_hit=result.cached, attempts=result.attempts, stream=self.stream,
            cost_saved=(config.cost(result.usage.prompt_tokens, result.usage.completion_tokens)
                        if config.priced else None) if result.cached else 0.0,
        ))

    def failed(self, exc: BaseException) -> None:
        """The call ended without an answer: counted by kind (a cancellation is not an error) and recorded."""
        recorder = self.recorder
        if isinstance(exc, (anyio.get_cancelled_exc_class(), GeneratorExit, KeyboardInterrupt)):
            outcome, message = "cancelled", None
        else:
            outcome = exc.kind if isinstance(exc, LLMError) else "error"
            message = recorder.redact(str(exc))[:500]
            recorder.counters.errors[outcome] += 1
        if recorder.history is None:
            return
        labels = self.request.options
        recorder.history.record(CallRecord(
            ts=self.wall, model=recorder.config.model, latency_ms=(time.perf_counter() - self.started) * 1000.0,
            outcome=outcome, plan=labels.plan, achievement=labels.achievement, state=labels.state,
            workspace=labels.workspace, error=message, attempts=self.request.attempts, stream=self.stream,
        ))
