"""Reading what goes in and what comes back: messages, answer text, server error bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from .errors import LLMRequestError
from .types import Message


def error_message(body: str) -> str | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, dict) and "error" in data:
        return describe(data["error"])
    return None


def describe(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("message") or error.get("type") or error)[:300]
    return str(error)[:300]


def text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content)


def check_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise LLMRequestError("messages must be a non-empty list of {'role': ..., 'content': ...} mappings")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise LLMRequestError(f"messages[{i}] must be a mapping with a string 'role'")
        out.append(dict(message))
    return out


def content_chars(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return len(str(content))
