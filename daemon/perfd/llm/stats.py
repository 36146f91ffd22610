"""Counters of one provider and their snapshot (`LLMStats`)."""

from __future__ import annotations

from collections import Counter

import msgspec

from perfd.latency import Window


class TeamStats(msgspec.Struct, frozen=True, kw_only=True):
    """The team's shared limits as this daemon sees them ([team] in perfd.toml). Never holds secrets."""

    redis: str  # the Redis URL without user or password
    namespace: str
    fail: str  # "open" | "closed"
    state: str  # "connecting" | "up" | "down"
    down_since: float | None  # Unix time Redis became unreachable
    last_error: str | None
    peers: int  # daemons that used the shared limit within the last two windows
    window_requests: int  # requests in the team's current window (as of seen_at)
    window_tokens: int
    rpm: int | None
    tpm: int | None
    window_s: float
    seen_at: float | None  # Unix time of the figures above
    cache_hits: int  # answers found in the shared cache (paid for by any daemon)
    cache_misses: int
    budget_usd_per_day: float | None
    budget_used_usd: float  # spent today (UTC) by the whole team
    budget_left_usd: float | None
    redis_ops: int
    redis_errors: int
    redis_rtt_p50_ms: float | None  # round trip of one Redis operation
    redis_rtt_p95_ms: float | None
    fallbacks: int  # attempts admitted by local limits while Redis was down
    refused: int  # attempts refused while Redis was down (fail = "closed")
    waited_s: float  # time callers waited for the team's capacity
    cache_rejected: int = 0  # shared values refused as too large or malformed (each also a miss)


class LLMStats(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time snapshot of one provider's client. Never holds secrets."""

    base_url: str
    model: str
    calls: int  # complete()/stream() calls, cache hits included
    requests: int  # HTTP requests sent (attempts)
    retries: int
    errors: dict[str, int]  # failed calls by error kind
    attempt_errors: dict[str, int]  # failed attempts (retried or not) by kind
    rate_limited: int  # 429 responses received
    rate_limit_wait_s: float  # time callers spent waiting for rpm/tpm capacity
    window_requests: int  # requests counted in the current rate window
    window_tokens: int
    breaker_state: str  # "closed" | "open" | "half_open"
    breaker_opened: int
    cache_hits: int
    cache_misses: int
    cache_rebuilt: int  # corrupt cache files set aside
    tokens_saved: int  # tokens of answers served from the cache
    cost_saved: float
    prompt_tokens: int  # tokens actually paid for
    completion_tokens: int
    cost: float
    connections_opened: int  # new TCP connections (reuse keeps this low)
    in_flight: int  # HTTP requests currently out
    latency_p50_ms: float | None  # of calls answered by the provider
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    # --- team (issue: shared limits through Redis) ---
    # Response cache hits per level: "memory", "disk", "shared" (the team's Redis).
    cache_hits_by_level: dict[str, int] = msgspec.field(default_factory=dict)
    served_by_fallback: dict[str, int] = msgspec.field(default_factory=dict)  # [llm] fallback model -> calls
    priced: bool = True  # a price is known for the model (else its cost is unknown, not 0)
    budget_used_usd: float | None = None  # today (UTC); the team's with [team]
    team: TeamStats | None = None  # None without a [team] table


class Counters:
    """The mutable side; only touched from the event loop."""

    def __init__(self, latency_window: int = 2048) -> None:
        self.calls = 0
        self.requests = 0
        self.retries = 0
        self.errors: Counter[str] = Counter()
        self.attempt_errors: Counter[str] = Counter()
        self.rate_limited = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.tokens_saved = 0
        self.cost_saved = 0.0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0
        self.connections_opened = 0
        self.in_flight = 0
        self.latencies_ms = Window(latency_window)
        self.served_by_fallback: Counter[str] = Counter()  # model -> calls it served after this one failed

    def percentiles(self) -> tuple[float | None, float | None, float | None]:
        if not self.latencies_ms:
            return None, None, None
        p50, p95, p99 = self.latencies_ms.percentiles(0.50, 0.95, 0.99)
        return p50, p95, p99
