"""A circuit breaker per provider, so a dead server costs one fast error.

closed -> (N consecutive failed attempts) -> open -> (cool-down) -> half_open:
one probe request goes through; its success closes the breaker, its failure
opens it again. While open (or while the probe is out) calls fail fast with
LLMCircuitOpen instead of piling up timeouts and retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from .errors import LLMCircuitOpen

BreakerState = Literal["closed", "open", "half_open"]
# What an attempt says about the provider's health: "neutral" for answers
# that prove nothing either way (429 rate limiting, cancellation, 409).
Health = Literal["success", "failure", "neutral"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int,
        cooldown_s: float,
        name: str = "provider",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_out = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_attempt(self) -> bool:
        """Let an attempt through or raise LLMCircuitOpen; True if it is the probe."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probe_out:
            self._probe_out = True
            return True
        assert self._opened_at is not None
        retry_in = max(self.cooldown_s - (self._clock() - self._opened_at), 0.0)
        why = "a probe request is in flight" if state == "half_open" else f"retrying in {retry_in:.1f}s"
        raise LLMCircuitOpen(
            f"LLM provider {self.name} is failing ({self._failures} consecutive failures); "
            f"circuit open, failing fast: {why}",
            retry_in_s=retry_in,
        )

    def record(self, health: Health, *, probe: bool) -> None:
        """Settle one attempt that `before_attempt` let through."""
        if health == "success":
            self.success()
        elif health == "failure":
            self.failure(probe)
        else:
            self.neutral(probe)

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_out = False

    def failure(self, probe: bool = False) -> None:
        self._failures += 1
        if probe:
            self._probe_out = False
        if probe or (self._opened_at is None and self._failures >= self.threshold):
            if self._opened_at is None:
                self.times_opened += 1
            self._opened_at = self._clock()

    def neutral(self, probe: bool = False) -> None:
        """The attempt said nothing about health (cancelled, 429): free the probe slot."""
        if probe:
            self._probe_out = False
