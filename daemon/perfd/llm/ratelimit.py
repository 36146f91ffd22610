"""Client-side requests/minute and tokens/minute limits.

A sliding-window log, not a token bucket: a bucket that starts full lets
2x its rate through in the first window. Here every admitted request is an
entry that counts against the limit from the moment it is admitted until
`window_s` after the server has *seen* it (its stamp, taken when the response
headers arrive or the attempt fails). So for any window of length W, at the
admission of the last request inside it every other request inside it was
still counted, which bounds every window at the limit, both as the client
times it and as the server does (the server sees a request between its
admission and its stamp).

Callers wait (FIFO) for capacity instead of failing. Token reservations are an
estimate (prompt chars/4 + max_tokens) reconciled with the server's `usage`;
429s, Retry-After and x-ratelimit-* headers shrink the available capacity.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import time
from collections.abc import Callable, Mapping

import anyio

from .errors import LLMRequestTooLarge

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Reservation:
    """One admitted request's share of the window (an opaque handle)."""

    __slots__ = ("stamp", "requests", "tokens", "_done", "_expired")

    def __init__(self, requests: int, tokens: int, stamp: float | None) -> None:
        self.requests = requests
        self.tokens = tokens
        self.stamp = stamp  # None while in flight: counts until stamped + W
        self._done = False
        self._expired = False  # left the window: no longer in the running sums


class RateLimiter:
    """Sliding-window limits on requests and tokens per `window_s` seconds.

    `rpm`/`tpm` of None disable that dimension; the limiter then only honours
    pauses asked for by the server (429, x-ratelimit-remaining-*: 0).
    """

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._clock = clock
        self._expiring: list[tuple[float, int, Reservation]] = []  # heap by stamp
        self._seq = itertools.count()
        self._requests = 0  # in flight + stamped within the window
        self._tokens = 0
        self._pause_until = 0.0
        self._waiters = 0
        self._line: list[tuple[int, int]] = []  # (priority, arrival) of the callers waiting, a heap
        self._changed = anyio.Event()
        self.waited_s = 0.0  # total time callers spent waiting for capacity

    # -- admission ----------------------------------------------------------

    async def acquire(self, tokens: int, *, priority: int = 0,
                      on_wait: Callable[[float, str], None] | None = None) -> Reservation:
        """Wait until one request of `tokens` fits, then admit it.

        Waiters are served in order of `priority` (lower first: an interactive call before a batch's),
        then of arrival, and only the first in line is admitted: big requests are not starved by small
        ones. `on_wait(seconds, reason)` hears once that the call waits, and about how long."""
        if self.tpm is not None and tokens > self.tpm:
            raise LLMRequestTooLarge(
                f"request needs ~{tokens} tokens but the limit is tpm={self.tpm} per "
                f"{self.window_s:g}s; shorten the prompt or lower max_tokens"
            )
        reservation = self.try_acquire(tokens)
        if reservation is not None:
            return reservation
        me = (priority, next(self._seq))
        heapq.heappush(self._line, me)
        self._waiters += 1
        started = self._clock()
        told = on_wait is None
        try:
            while True:
                now = self._clock()
                delay = self._delay(now, tokens)
                if self._line[0] == me:
                    if delay == 0.0:
                        heapq.heappop(self._line)
                        self._notify()  # the next in line looks again
                        return self._admit(tokens)
                    wait = delay
                else:
                    wait = math.inf  # the first in line is woken by the window; then it wakes us
                if not told and on_wait is not None and math.isfinite(delay) and delay > 0:
                    told = True
                    on_wait(delay, "rate limited" if now < self._pause_until else "rate limit (rpm/tpm) reached")
                changed = self._changed
                with anyio.move_on_after(wait if math.isfinite(wait) else None):
                    await changed.wait()
        finally:
            if me in self._line:  # cancelled while in line
                self._line.remove(me)
                heapq.heapify(self._line)
                self._notify()
            self._waiters -= 1
            self.waited_s += self._clock() - started

    def try_acquire(self, tokens: int) -> Reservation | None:
        """Admit at once if capacity is free and nobody is queued, else None."""
        if self._waiters == 0 and self._delay(self._clock(), tokens) == 0.0:
            return self._admit(tokens)
        return None

    def _admit(self, tokens: int) -> Reservation:
        self._requests += 1
        self._tokens += tokens
        return Reservation(1, tokens, None)

    def _delay(self, now: float, tokens: int) -> float:
        """0 if a request of `tokens` may go now, else how long to wait (inf: until an event)."""
        self._prune(now)
        if now < self._pause_until:
            return self._pause_until - now
        over_requests = self.rpm is not None and self._requests + 1 > self.rpm
        over_tokens = self.tpm is not None and self._tokens + tokens > self.tpm
        if not (over_requests or over_tokens):
            return 0.0
        if not self._expiring:
            return math.inf  # everything counted is in flight: wait for a stamp
        # Wake when the oldest stamped entry leaves the window, then recheck.
        return max(self._expiring[0][0] + self.window_s - now, 1e-4)

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        heap = self._expiring
        while heap and heap[0][0] <= horizon:
            _, _, entry = heapq.heappop(heap)
            entry._expired = True
            self._requests -= entry.requests
            self._tokens -= entry.tokens

    # -- settling -----------------------------------------------------------

    def commit(self, reservation: Reservation) -> None:
        """The server has seen the request (or never will): start its window now.

        Idempotent; call it when the response headers arrive and again (as a
        no-op) on every exit path.
        """
        if reservation._done:
            return
        reservation._done = True
        reservation.stamp = self._clock()
        heapq.heappush(self._expiring, (reservation.stamp, next(self._seq), reservation))
        self._notify()

    def reconcile(self, reservation: Reservation, tokens: int) -> None:
        """Replace the estimate with the tokens the server reported in `usage`."""
        self._prune(self._clock())
        delta = tokens - reservation.tokens
        reservation.tokens = tokens
        if reservation._expired:  # already out of the window: it no longer counts
            return
        self._tokens += delta
        if delta < 0:
            self._notify()

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` (the server said 429 / Retry-After)."""
        if seconds > 0:
            self._pause_until = max(self._pause_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Shrink local capacity to what `x-ratelimit-remaining-*` says is left.

        The server may count requests we cannot see (the same key used
        elsewhere). When it reports fewer remaining than we think, a phantom
        entry takes up the difference until the server's reset time.
        """
        now = self._clock()
        for dim, limit in (("requests", self.rpm), ("tokens", self.tpm)):
            remaining = _int(headers.get(f"x-ratelimit-remaining-{dim}"))
            if remaining is None:
                continue
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{dim}"))
            if reset is None:
                reset = self.window_s
            if limit is None:
                if remaining <= 0:
                    self.pause(reset)
                continue
            self._prune(now)
            used = self._requests if dim == "requests" else self._tokens
            excess = (limit - used) - max(remaining, 0)
            if excess <= 0:
                continue
            phantom = Reservation(excess if dim == "requests" else 0,
                                  excess if dim == "tokens" else 0, None)
            phantom._done = True
            # Stamped so that it leaves the window exactly at the server's reset.
            phantom.stamp = now + min(reset, 3600.0) - self.window_s
            self._requests += phantom.requests
            self._tokens += phantom.tokens
            heapq.heappush(self._expiring, (phantom.stamp, next(self._seq), phantom))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # -- introspection ------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(requests, tokens) currently counted in the window, in flight included."""
        self._prune(self._clock())
        return self._requests, self._tokens

    @property
    def waiting(self) -> int:
        return self._waiters


def estimate_tokens(chars: int) -> int:
    """The usual rough estimate: 4 characters per token, rounded up."""
    return -(-chars // 4)


def parse_reset(value: str | None) -> float | None:
    """Seconds from an x-ratelimit-reset-* value: '1s', '6m0s', '20ms', '1.5'."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
