"""A streamed answer (`LLMClient.stream`): server-sent events read as they arrive.

The stream is given what it needs of its client, each a public collaborator:
the call recorder (counters, cache, history; recorder.py) and the attempt
wrapper (attempt.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing
from types import TracebackType
import anyio
import httpx
import orjson

from .attempt import AttemptFailed, Attempts
from .errors import LLMError, LLMResponseError, LLMStreamInterrupted
from .parsing import BadAnswer, cost_of, describe, read_completion, usage_of
from .providers import text_of
from .recorder import Call, CallRecorder
from .sse import iter_events
from .types import Completion, JSONObject, PreparedRequest

# After [DONE], how long to wait for the server to end the body so the connection can be reused.
_DRAIN_AFTER_DONE_S = 1.0


class ChatStream:
    """A streamed answer; see `LLMClient.stream`. Iterate it inside `async with`."""

    def __init__(self, request: PreparedRequest, recorder: CallRecorder, attempts: Attempts, *,
                 fallback: Callable[[], ChatStream] | None = None) -> None:
        self._request = request
        self._recorder = recorder
        self._attempts = attempts
        # The next model's stream for the same call: used when this one fails before any byte arrived.
        self._fallback = fallback
        self.fell_back: list[str] = []  # the errors of the models that failed before the one that answered
        self.answered_by = recorder.config.model  # the configured model of the client that answered
        self._gen: AsyncGenerator[str, None] | None = None
        self._entered = False
        self._parts: list[str] = []
        self.completion: Completion | None = None
        self.first_token_s: float | None = None  # latency to the first delta

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._parts)

    async def __aenter__(self) -> ChatStream:
        self._entered = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gen = self._gen
        if gen is None:
            return
        self._gen = None
        # Closes the response (and frees its connection) if the caller left early.
        await gen.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        if not self._entered:
            raise LLMError("use `async with client.stream(...) as s: async for delta in s` so the "
                           "connection is always released", kind="bad_request")
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    async def read(self) -> Completion:
        """Consume the rest of the stream and return the whole answer."""
        async for _ in self:
            pass
        assert self.completion is not None
        return self.completion

    async def _run(self) -> AsyncGenerator[str, None]:
        try:
            async with aclosing(self._own()) as own:
                async for delta in own:
                    yield delta
            return
        except LLMError as exc:
            if self._fallback is None or self._parts or not falls_back(exc):
                raise
            failed = f"{self._recorder.config.model}: {exc}"
        # Nothing of an answer arrived and nothing was paid: the next model serves the call.
        try:
            async with self._fallback() as other:
                async for delta in other:
                    if self.first_token_s is None:
                        self.first_token_s = other.first_token_s
                    self._parts.append(delta)
                    yield delta
        except LLMError as exc:
            exc.args = (f"{exc} (the [llm] fallback; before it, {failed})",)  # what every model said
            raise
        else:
            self.completion = other.completion
            self.fell_back = [failed, *other.fell_back]
            self.answered_by = other.answered_by
            self._recorder.counters.served_by_fallback[other.answered_by] += 1

    async def _own(self) -> AsyncGenerator[str, None]:
        request, attempts = self._request, self._attempts
        call = self._recorder.begin(request, stream=True)
        number = 0
        try:
            hit = await call.lookup()
            if hit is not None:
                self.completion = call.hit(hit)
                for chunk in hit.chunks if hit.chunks is not None else [hit.text]:
                    if self.first_token_s is None:
                        self.first_token_s = time.perf_counter() - call.started
                    self._parts.append(chunk)
                    yield chunk
                call.replayed(self.completion)
                return
            while True:
                number += 1
                try:
                    # aclosing: an early exit must close the inner generator (and
                    # with it the response) now, not when the GC gets to it.
                    async with aclosing(self._attempt(call, number)) as deltas:
                        async for delta in deltas:
                            yield delta
                    break
                except AttemptFailed as failed:
                    await attempts.retry_or_raise(failed, number, deadline=request.deadline,
                                                  on_wait=request.options.on_wait)
            assert self.completion is not None
            call.finished(self.completion, chunks=list(self._parts))
        except BaseException as exc:
            call.failed(exc)
            raise

    async def _attempt(self, call: Call, number: int) -> AsyncGenerator[str, None]:
        request, attempts, started = self._request, self._attempts, call.started
        cfg, redact = self._recorder.config, self._recorder.redact
        try:
            async with attempts.attempt(request, number) as attempt:
                response = await attempt.send(stream=True)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignored stream=true and answered in one piece.
                    result = read_completion(await response.aread(), request, cfg, redact,
                                             started=started, attempts=number)
                    attempt.succeeded(result.usage)
                    self.completion = result
                    if result.text:
                        self.first_token_s = time.perf_counter() - started
                        self._parts.append(result.text)
                        yield result.text
                    return
                acc = StreamState(model=cfg.model)
                read = read_anthropic_event if cfg.provider == "anthropic" else read_chunk
                async with aclosing(iter_events(response.aiter_lines())) as events:
                    async for event in events:
                        if event.data.strip() == "[DONE]":
                            acc.done = True
                            break
                        if request.deadline is not None and time.monotonic() > request.deadline:
                            raise attempts.total_timeout(number)  # a server trickling forever
                        delta = read(event.event, event.data, acc, cfg.base_url, redact)
                        if acc.done:  # Anthropic's message_stop
                            break
                        if delta:
                            if self.first_token_s is None:
                                self.first_token_s = time.perf_counter() - started
                            self._parts.append(delta)
                            yield delta
                    if acc.done:
                        # Read the body to its end (the server closes it right after
                        # [DONE]): only a fully read response returns its connection to
                        # the pool for the next call. A server that keeps the stream open
                        # costs a new connection, not a hang.
                        with anyio.move_on_after(_DRAIN_AFTER_DONE_S):
                            async for _ in events:
                                pass
                if not acc.done and acc.finish_reason is None:
                    raise httpx.RemoteProtocolError("the stream ended before the answer was complete")
                text = "".join(self._parts)
                usage = usage_of(acc.usage, request, text)
                attempt.succeeded(usage, calibrate=acc.usage is not None)
                self.completion = Completion(
                    text=text, model=acc.model, finish_reason=acc.finish_reason, usage=usage, attempts=number,
                    latency_s=time.perf_counter() - started,
                    cost=cost_of(cfg, usage),
                    tool_calls=acc.tool_list(),
                )
        except AttemptFailed as failed:
            if self._parts:  # the caller has tokens already: a retry would repeat them
                raise self._interrupted(failed.error) from None
            raise

    def _interrupted(self, error: LLMError) -> LLMStreamInterrupted:
        return LLMStreamInterrupted(
            f"the stream broke after {len(self._parts)} chunks: {error}", partial_text="".join(self._parts)
        )


# Failures the next model cannot mend (the caller's request, settings or budget) or that came too late.
_NO_FALLBACK = frozenset({"config", "bad_request", "too_large", "budget", "stream_interrupted", "closed"})


def falls_back(error: LLMError) -> bool:
    """Whether a call that failed with `error` (before any byte of an answer) goes to the next model."""
    return error.kind not in _NO_FALLBACK


class ToolCallParts:
    """One tool call as its fragments arrive: the name and arguments are concatenated."""

    __slots__ = ("id", "type", "name", "arguments")

    def __init__(self) -> None:
        self.id: object = None
        self.type: object = "function"
        self.name = ""
        self.arguments = ""

    def as_json(self) -> JSONObject:
        """The call in the shape of a plain answer's `tool_calls` entry."""
        return {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": self.arguments}}


class StreamState:
    """What a stream has told us besides the text."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: object = None  # the server's `usage` as sent (usage_of reads it)
        self.finish_reason: str | None = None
        self.done = False
        self.tools: dict[int, ToolCallParts] = {}

    def merge_tools(self, deltas: object) -> None:
        # Tool calls arrive as fragments keyed by index; arguments are concatenated.
        if not isinstance(deltas, list):
            return
        for d in deltas:
            if not isinstance(d, Mapping):
                continue
            slot = self.tools.setdefault(int(d.get("index", len(self.tools))), ToolCallParts())
            if d.get("id"):
                slot.id = d["id"]
            if d.get("type"):
                slot.type = d["type"]
            fn = d.get("function") or {}
            if fn.get("name"):
                slot.name += fn["name"]
            if fn.get("arguments"):
                slot.arguments += fn["arguments"]

    def tool_list(self) -> list[JSONObject] | None:
        return [self.tools[i].as_json() for i in sorted(self.tools)] or None


def read_chunk(event: str, data: str, acc: StreamState, where: str, redact: Callable[[str], str]) -> str:
    """Fold one SSE event from the server at `where` into `acc`; return its text delta ("" if none)."""
    chunk = _event_object(data, where, redact)
    if event == "error" or ("error" in chunk and not chunk.get("choices")):
        # vLLM, LiteLLM and others report mid-stream failures this way.
        message = redact(describe(chunk.get("error", chunk)))
        raise BadAnswer(LLMResponseError(f"{where} reported an error mid-stream: {message}", kind="stream_error"),
                        retryable=True)
    if chunk.get("model"):
        acc.model = str(chunk["model"])
    if chunk.get("usage"):
        acc.usage = chunk["usage"]
    delta_text = ""
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():  # (JSON: anything else holds no choice)
        if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if content:
            delta_text += text_of(content)
        if delta.get("tool_calls"):
            acc.merge_tools(delta["tool_calls"])
        if choice.get("finish_reason"):
            acc.finish_reason = str(choice["finish_reason"])
    return delta_text


def _event_object(data: str, where: str, redact: Callable[[str], str]) -> dict[str, object]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadAnswer(LLMResponseError(
            f"{where} sent a stream event that is not JSON: {redact(data[:200])!r}"
        ), retryable=False) from None
    if not isinstance(chunk, dict):
        raise BadAnswer(LLMResponseError(f"{where} sent a stream event that is not an object"), retryable=False)
    return chunk


def read_anthropic_event(event: str, data: str, acc: StreamState, where: str, redact: Callable[[str], str]) -> str:
    """Fold one event of an Anthropic Messages stream into `acc`; return its text delta ("" if none).

    message_start carries the model and the input usage (cache tokens included), content_block_delta
    the text, message_delta the stop reason and output tokens, message_stop the end."""
    chunk = _event_object(data, where, redact)
    kind = chunk.get("type") or event
    if kind == "error" or event == "error":
        said = redact(describe(chunk.get("error", chunk)))
        raise BadAnswer(LLMResponseError(f"{where} reported an error mid-stream: {said}", kind="stream_error"),
                        retryable=True)
    usage = acc.usage if isinstance(acc.usage, dict) else {}
    if kind == "message_start":
        message = chunk.get("message")
        if isinstance(message, Mapping):
            if message.get("model"):
                acc.model = str(message["model"])
            if isinstance(message.get("usage"), Mapping):
                usage.update(message["usage"])
                acc.usage = usage
        return ""
    if kind == "content_block_delta":
        delta = chunk.get("delta")
        if isinstance(delta, Mapping) and delta.get("type", "text_delta") == "text_delta":
            return str(delta.get("text") or "")
        return ""
    if kind == "message_delta":
        delta = chunk.get("delta")
        if isinstance(delta, Mapping) and delta.get("stop_reason"):
            acc.finish_reason = str(delta["stop_reason"])
        more = chunk.get("usage")
        if isinstance(more, Mapping):
            usage.update({k: v for k, v in more.items() if v is not None})
            acc.usage = usage
        return ""
    if kind == "message_stop":
        acc.done = True
    return ""  # ping, content_block_start/stop
