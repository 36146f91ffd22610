"""The single retry layer's rules: what is retried and how long to wait.

Retried: 408, 409, 429, 5xx, connect/read/write timeouts and dropped
connections. The server can override with `x-should-retry: true|false` and
set the wait with `retry-after-ms` or `Retry-After` (seconds or HTTP date);
otherwise exponential backoff with full jitter spreads retrying callers out.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping

import httpx

RETRYABLE_STATUS = frozenset({408, 409, 429})


def status_is_retryable(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an error response should be retried (the server may override)."""
    override = headers.get("x-should-retry", "").strip().lower()
    if override == "true":
        return True
    if override == "false":
        return False
    return status in RETRYABLE_STATUS or status >= 500


def exception_is_retryable(exc: BaseException) -> bool:
    """Transient transport failures: timeouts and connections that failed or dropped."""
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, TimeoutError))


def server_delay(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asked us to wait, from retry-after-ms or Retry-After."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    after = headers.get("retry-after")
    if not after:
        return None
    after = after.strip()
    try:
        return max(float(after), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(after)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - now(), 0.0)


def backoff(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for retry number `attempt` (0-based)."""
    ceiling = min(max_s, base_s * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0.0, ceiling)
