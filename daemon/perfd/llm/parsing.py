"""Reading what goes in and what comes back: messages, answers, server error bodies."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
import orjson

from .config import LLMConfig
from .errors import LLMRequestError, LLMResponseError
from .providers import read_answer, text_of
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
    """The answer in a plain (not streamed) answer body of the configured protocol; BadAnswer if it is none."""
    try:
        data = orjson.loads(content)
        if isinstance(data, dict) and "error" in data and "choices" not in data and "content" not in data:
            raise BadAnswer(LLMResponseError(f"{config.base_url} returned an error: {redact(describe(data['error']))}"))
        answer = read_answer(data, config)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, AssertionError) as exc:
        snippet = redact(content[:200].decode("utf-8", "replace"))
        what = "a Messages API answer" if config.provider == "anthropic" else "a chat completion"
        raise BadAnswer(LLMResponseError(
            f"{config.base_url} did not return {what} ({type(exc).__name__}): {snippet!r}"
        )) from None
    usage = usage_of(answer.usage, request, answer.text)
    return Completion(
        text=answer.text, model=answer.model, finish_reason=answer.finish_reason, usage=usage, attempts=attempts,
        latency_s=time.perf_counter() - started, cost=cost_of(config, usage), tool_calls=answer.tool_calls,
    )


def cost_of(config: LLMConfig, usage: Usage) -> float:
    return config.cost(usage.prompt_tokens, usage.completion_tokens, cache_read_tokens=usage.cache_read_tokens,
                       cache_write_tokens=usage.cache_write_tokens)


def _count(raw: Mapping[str, object], key: str) -> int:
    value = raw.get(key)
    return int(value) if isinstance(value, (int, float, str)) and value != "" else 0


def usage_of(raw: object, request: PreparedRequest, text: str) -> Usage:
    """The server's `usage` (OpenAI's or Anthropic's shape), or the estimate when it sent none (or nonsense)."""
    if isinstance(raw, Mapping):
        try:
            if "input_tokens" in raw or "output_tokens" in raw:  # Anthropic: input excludes the cache's tokens
                read, write = _count(raw, "cache_read_input_tokens"), _count(raw, "cache_creation_input_tokens")
                return Usage(prompt_tokens=_count(raw, "input_tokens") + read + write,
                             completion_tokens=_count(raw, "output_tokens"),
                             cache_read_tokens=read, cache_write_tokens=write)
            details = raw.get("prompt_tokens_details")
            cached = _count(details, "cached_tokens") if isinstance(details, Mapping) else 0
            return Usage(prompt_tokens=_count(raw, "prompt_tokens"), completion_tokens=_count(raw, "completion_tokens"),
                         cache_read_tokens=cached)
        except (TypeError, ValueError):
            pass
    # No usage from the server: fall back to the estimate.
    prompt = request.tokens - request.completion_reserved
    return Usage(prompt_tokens=prompt, completion_tokens=estimate_tokens(len(text)))
