"""Reading what goes in and what comes back: messages, answers, server error bodies."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
import orjson

from .config import LLMConfig
from .errors import LLMRequestError, LLMResponseError
from .ratelimit import estimate_tokens
from .types import Completion, JSONObject, Message, PreparedRequest, Usage


class BadAnswer(Exception):
    """The server answered, but not with a usable chat completion.

    Raised by the readers below inside an attempt: the attempt counts as
    failed (the provider is unwell) and `retryable` says whether asking
    again may help (a mid-stream error event) or not (a body that is no
    completion at all).
    """

    def __init__(self, error: LLMResponseError, *, retryable: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable


def error_message(body: str) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and "error" in data:
        return describe(data["error"])
    return None


def describe(error: object) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("type") or error)[:300]
    return str(error)[:300]


def text_of(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def check_messages(messages: Sequence[Message]) -> list[JSONObject]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise LLMRequestError("messages must be a non-empty list of {'role': ..., 'content': ...} mappings")
    out: list[JSONObject] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise LLMRequestError(f"messages[{i}] must be a mapping with a string 'role'")
        out.append(dict(message))
    return out


def content_chars(content: object) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return len(str(content))


def read_completion(content: bytes, request: PreparedRequest, config: LLMConfig, redact: Callable[[str], str], *,
                    started: float, attempts: int) -> Completion:
    """The answer in a plain (not streamed) chat-completion body; BadAnswer if it is none."""
    try:
        data = orjson.loads(content)
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            raise BadAnswer(LLMResponseError(f"{config.base_url} returned an error: {redact(describe(data['error']))}"))
        choice = data["choices"][0]
        message = choice.get("message") or {}
        text = text_of(message.get("content"))
        tool_calls = message.get("tool_calls") or None
        finish_reason = choice.get("finish_reason")
        model = str(data.get("model") or config.model)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
        snippet = redact(content[:200].decode("utf-8", "replace"))
        raise BadAnswer(LLMResponseError(
            f"{config.base_url} did not return a chat completion ({type(exc).__name__}): {snippet!r}"
        )) from None
    usage = usage_of(data.get("usage"), request, text)
    return Completion(
        text=text, model=model, finish_reason=finish_reason, usage=usage, attempts=attempts,
        latency_s=time.perf_counter() - started, cost=config.cost(usage.prompt_tokens, usage.completion_tokens),
        tool_calls=tool_calls,
    )


def usage_of(raw: object, request: PreparedRequest, text: str) -> Usage:
    """The server's `usage`, or the estimate when it sent none (or nonsense)."""
    if isinstance(raw, Mapping):
        try:
            return Usage(prompt_tokens=int(raw.get("prompt_tokens") or 0),
                         completion_tokens=int(raw.get("completion_tokens") or 0))
        except (TypeError, ValueError):
            pass
    # No usage from the server: fall back to the estimate.
    prompt = request.tokens - request.completion_reserved
    return Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens(len(text)))
