"""Small helpers shared by the perfd.llm tests (imported by module name)."""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import orjson

from perfd.llm import LLMClient, LLMConfig


def make_config(base_url: str, **overrides: Any) -> LLMConfig:
    """A config tuned for tests: fast retries and cool-downs, short timeouts."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "model": "fake-model",
        "retry_base_s": 0.01,
        "retry_max_s": 0.05,
        "breaker_cooldown_s": 0.3,
        "timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return msgspec.convert(values, LLMConfig)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def files_under(path: str) -> list[str]:
    out = []
    for root, _, names in os.walk(path):
        out.extend(os.path.join(root, n) for n in names)
    return out


def ceil4(n: int) -> int:
    return math.ceil(n / 4)


# -- the one transport seam (httpx.MockTransport) ------------------------------

URL = "http://llm.test/v1"
Handler = Callable[[httpx.Request], Any]


def completion_body(text: str, *, usage: dict[str, int] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "x", "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage is not None:
        body["usage"] = usage
    body.update(extra)
    return body


def sse(*events: dict[str, Any] | str) -> bytes:
    out = b""
    for e in events:
        out += b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n"
    return out


def delta(text: str | None = None, finish: str | None = None, **d: Any) -> dict[str, Any]:
    body: dict[str, Any] = dict(d)
    if text is not None:
        body["content"] = text
    return {"choices": [{"index": 0, "delta": body, "finish_reason": finish}]}


class Recorder:
    """A MockTransport handler that answers from a list and records requests."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.content) for r in self.requests]


def client_for(handler: Any, *, env: dict[str, str] | None = None, **overrides: Any) -> LLMClient:
    overrides.setdefault("history", False)
    return LLMClient(make_config(URL, **overrides), transport=httpx.MockTransport(handler), env=env or {})


class Chunks(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes], error_after: int | None = None) -> None:
        self.pieces = pieces
        self.error_after = error_after
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if self.error_after is not None and i >= self.error_after:
                raise httpx.ReadError("connection reset by peer")
            yield piece
        if self.error_after is not None and self.error_after >= len(self.pieces):
            raise httpx.ReadError("connection reset by peer")

    async def aclose(self) -> None:
        self.closed = True


def stream_response(pieces: list[bytes], error_after: int | None = None) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks(pieces, error_after))


STREAM_BODY = (
    b": ping\n\n"
    + sse(delta("Hel"), delta("lo, "), delta("wor"), delta("ld", finish=None), delta(finish="stop"))
    + b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}) + b"\n\n"
    + b"data: [DONE]\n\n"
)
