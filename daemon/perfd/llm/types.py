"""The shapes of a call: the messages sent, the request prepared from them, the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

Message = Mapping[str, Any]  # {"role": "user", "content": "..."} and friends


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    """One answer of the model."""

    text: str
    model: str
    finish_reason: str | None
    usage: Usage
    cached: bool = False  # served from the response cache, no request sent
    attempts: int = 0  # HTTP attempts made (0 for a cache hit)
    latency_s: float = 0.0
    cost: float = 0.0  # spent on this call (0 for a cache hit)
    tool_calls: list[dict[str, Any]] | None = None


class PreparedRequest(msgspec.Struct, kw_only=True):
    """A prepared call: what is sent, how it is keyed and what it may cost."""

    payload: dict[str, Any]
    body: bytes  # the payload encoded once, reused by every attempt
    key: str | None  # cache key, None when not cacheable
    tokens: int  # reserved against tpm: calibrated prompt estimate + completion_reserved
    prompt_estimate: int  # chars/4 + per-message allowance, before calibration
    completion_reserved: int  # max_tokens, or the configured estimate
    timeout_s: float
    plan: str | None
    achievement: str | None
    state: str | None
    attempts: int = 0  # attempts made so far (for the history)
