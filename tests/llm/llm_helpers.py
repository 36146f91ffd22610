"""Small helpers shared by the perfd.llm tests (imported by module name)."""

from __future__ import annotations

import math
import os
from typing import Any

import msgspec

from perfd.llm import LLMConfig


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
