"""One HTTP attempt of a call, the same for plain and streamed calls.

Every attempt passes the same layers, outermost first:

    circuit breaker -> concurrency slot -> gate (rate limits, budget) -> pooled HTTP request

`Attempts.attempt()` enters them, and on every way out (answer, failure,
cancellation, a caller leaving a stream early) settles them again: the
response is closed, the gate's ticket settled (stamped, reconciled with the
reported usage, released if nothing was sent), the slot given back and the
breaker told what the attempt said about the provider's health. The gate is
local (gate.LocalGate) or the team's in Redis (team.TeamGate); nothing here
knows which. A
failure leaves it as `AttemptFailed`, classified once here; the caller's
retry loop hands it to `retry_or_raise`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
import anyio
import httpx

from perfd import __version__

from .apikey import ApiKey
from .breaker import CircuitBreaker, Health
from .config import LLMConfig
from .errors import LLMConnectionError, LLMError, LLMHTTPError, LLMTimeout
from .parsing import BadAnswer, error_message
from .providers import wire_for
from .gate import Gate, LocalGate, Ticket
from .ratelimit import RateLimiter
from .retry import backoff, exception_is_retryable, server_delay, status_is_retryable
from .stats import Counters
from .transport import ShardedPool
from .types import PreparedRequest, Usage

log = logging.getLogger("perfd.llm")

_MAX_ERROR_BODY = 2000


class AttemptFailed(Exception):
    """One attempt failed; the retry loop decides what happens next."""

    def __init__(self, error: LLMError, *, retryable: bool, delay: float | None = None, status: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.delay = delay
        self.status = status


def status_health(status: int) -> Health:
    if status >= 500 or status == 408:
        return "failure"
    if status in (409, 429):
        return "neutral"
    return "success"  # other 4xx: the server is up and answering


class Attempt:
    """An attempt inside `Attempts.attempt`: holds its slot and reservation until the block ends."""

    def __init__(self, owner: Attempts, request: PreparedRequest, number: int, headers: dict[str, str],
                 ticket: Ticket) -> None:
        self.number = number
        self.request = request
        self.ticket = ticket
        self.sent = False  # bytes may have reached the server
        self.usage: Usage | None = None  # as reported (or estimated) once the answer is complete
        # What the breaker is told; "neutral" unless the attempt proved something.
        self.health: Health = "neutral"
        self.response: httpx.Response | None = None  # closed when the block ends
        self._owner = owner
        self._headers = headers

    async def send(self, *, stream: bool) -> httpx.Response:
        """POST the request; an error status raises AttemptFailed.

        A plain request is bounded by timeout_s as a whole, body included; a
        streamed one by the same timeout per read, so a long answer may take longer.
        """
        owner, request = self._owner, self.request
        headers = {**self._headers, "accept": "text/event-stream"} if stream else self._headers
        http_request = owner.http.build_request(
            "POST", owner.config.chat_url, content=request.body, headers=headers,
            extensions={"trace": owner.trace}, timeout=owner.timeout(request),
        )
        self.sent = True
        try:
            if stream:
                response = await owner.http.send(http_request, stream=True)
            else:
                with anyio.fail_after(request.timeout_s):
                    response = await owner.http.send(http_request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            self.sent = False  # no connection: the server never saw it, its share is released
            raise
        self.response = response
        await owner.gate.sent(self.ticket)  # the server has seen it: its window starts now
        await owner.gate.observe(response.headers)
        if not response.is_success:
            await response.aread()
            self.health = status_health(response.status_code)
            raise owner.status_failure(response.status_code, response.headers, response.text, self.number)
        return response

    def succeeded(self, usage: Usage, *, calibrate: bool = True) -> None:
        """The answer is complete: charge its real tokens and count the attempt healthy.

        `calibrate=False` when `usage` is only our estimate: learning from it
        would feed the estimate back into itself.
        """
        self.health = "success"
        self.usage = usage  # charged to the window and the budget when the attempt settles
        if calibrate:
            self._owner.calibrate(self.request, usage)


class Attempts:
    """The layers every attempt at one provider passes; one per LLMClient, shared by its calls."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        key: ApiKey,
        counters: Counters,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._key = key
        self._counters = counters
        self._rng = rng or random.Random()
        self._prompt_ratio = 1.0  # see calibrate
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.keepalive_connections,
            keepalive_expiry=config.keepalive_expiry_s,
        )
        self._default_timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s, pool=None)
        if transport is None:
            transport = ShardedPool(
                max_connections=config.max_connections,
                max_keepalive_connections=config.keepalive_connections,
                keepalive_expiry=config.keepalive_expiry_s,
            )
        self.http = httpx.AsyncClient(
            transport=transport,
            limits=limits,  # only for proxies from HTTP(S)_PROXY, which get their own transport
            # Pool waits are unbounded on purpose: the concurrency slot below
            # never lets more requests out than there are connections.
            timeout=self._default_timeout,
            # The body is JSON bytes, which httpx sends with no content-type: say it (Anthropic's API requires it).
            headers={"user-agent": f"perfd/{__version__}", "accept": "application/json",
                     "content-type": "application/json", **config.headers,
                     **wire_for(config).fixed_headers(config)},
            follow_redirects=False,
        )
        # A Semaphore, not a CapacityLimiter: a stream may be closed from another
        # task (async generator finalisation) and must still give its slot back.
        self.slots = anyio.Semaphore(config.concurrency)
        self.limiter = RateLimiter(rpm=config.rpm, tpm=config.tpm, window_s=config.window_s)
        # The team's gate (team.TeamGate) replaces this one when [team] is configured.
        self.gate: Gate = LocalGate(config, self.limiter)
        self.breaker = CircuitBreaker(
            failures=config.breaker_failures, cooldown_s=config.breaker_cooldown_s, name=config.base_url
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    @asynccontextmanager
    async def attempt(self, request: PreparedRequest, number: int) -> AsyncIterator[Attempt]:
        """Attempt `number` of `request`: breaker, slot and reservation for the block's duration.

        The block sends with `Attempt.send` and calls `Attempt.succeeded` once
        it has the whole answer. A transport error or a BadAnswer raised in the
        block leaves as AttemptFailed; LLMCircuitOpen, a missing API key, a
        request over tpm or over budget, and LLMTeamUnavailable (the team's
        Redis is down with fail = "closed") are raised as they are, before
        anything is sent.
        """
        request.attempts = number
        remaining = self.remaining(request, number)
        probe = self.breaker.before_attempt()
        health: Health = "neutral"
        try:
            async with self.slots:
                headers = self._key.headers()
                try:
                    with anyio.fail_after(None if remaining == math.inf else remaining):
                        ticket = await self.gate.admit(request)
                except TimeoutError:
                    raise self.total_timeout(number - 1) from None
                self._counters.requests += 1
                self._counters.in_flight += 1
                current = Attempt(self, request, number, headers, ticket)
                try:
                    yield current
                except (httpx.HTTPError, TimeoutError) as exc:
                    failed = self.transport_failure(exc, request, number)
                    current.health = "failure" if failed.retryable else "neutral"
                    raise failed from None
                except BadAnswer as exc:
                    current.health = "failure"
                    self._counters.attempt_errors[exc.error.kind] += 1
                    raise AttemptFailed(exc.error, retryable=exc.retryable) from None
                finally:
                    health = current.health
                    try:
                        if current.response is not None:
                            await current.response.aclose()  # frees the connection if the block left early
                    finally:
                        self._counters.in_flight -= 1
                        with anyio.CancelScope(shield=True):  # a cancelled call still settles its share
                            await self.gate.settle(ticket, sent=current.sent, usage=current.usage,
                                                   health=current.health)
        finally:
            self.breaker.record(health, probe=probe)

    def remaining(self, request: PreparedRequest, number: int) -> float:
        """Seconds left of the call's total_timeout_s; clips this attempt's timeout to them."""
        if request.deadline is None:
            return math.inf
        left = request.deadline - time.monotonic()
        if left <= 0:
            raise self.total_timeout(number - 1)
        request.timeout_s = min(request.options.timeout_s or self.config.timeout_s, left)
        return left

    def total_timeout(self, attempts: int) -> LLMTimeout:
        self._counters.attempt_errors["timeout"] += 1
        return LLMTimeout(f"no answer within total_timeout_s={self.config.total_timeout_s:g} "
                          f"({attempts} attempt{'s' if attempts != 1 else ''})")

    async def retry_or_raise(self, failed: AttemptFailed, attempt: int, *, deadline: float | None = None,
                             on_wait: Callable[[float, str], None] | None = None) -> None:
        """Sleep before the next attempt, or raise the failure's error if none is due."""
        cfg = self.config
        if failed.status == 429:
            # Everyone waits, not just this caller (and even if it gives up): the server is saturated.
            await self.gate.pause(failed.delay if failed.delay is not None else
                                  backoff(attempt - 1, base_s=cfg.retry_base_s, max_s=cfg.retry_max_s, rng=self._rng))
        if not failed.retryable:
            raise failed.error
        if attempt > cfg.max_retries:
            failed.error.args = (f"{failed.error}; gave up after {attempt} attempts (max_retries={cfg.max_retries})",)
            raise failed.error
        delay = failed.delay
        if delay is not None and delay > cfg.max_retry_after_s:
            failed.error.args = (
                f"{failed.error} (the server asked to retry after {delay:.0f}s, more than "
                f"max_retry_after_s={cfg.max_retry_after_s:g})",
            )
            raise failed.error
        if delay is None:
            delay = backoff(attempt - 1, base_s=cfg.retry_base_s, max_s=cfg.retry_max_s, rng=self._rng)
        if deadline is not None and time.monotonic() + delay >= deadline:
            failed.error.args = (f"{failed.error}; gave up: total_timeout_s={cfg.total_timeout_s:g} would pass "
                                 f"before the next attempt",)
            raise failed.error
        self._counters.retries += 1
        log.debug("LLM attempt %d failed (%s); retrying in %.3fs", attempt, failed.error.kind, delay)
        if on_wait is not None:
            on_wait(delay, "rate limited (HTTP 429)" if failed.status == 429 else
                    f"retrying after {f'HTTP {failed.status}' if failed.status else failed.error.kind.replace('_', ' ') + ' error'}"
                    + (" (the server's Retry-After)" if failed.delay is not None and failed.status != 429 else ""))
        await anyio.sleep(delay)

    # -- tokens --------------------------------------------------------------

    def tokens_for(self, prompt_estimate: int, completion: int) -> int:
        """Tokens to reserve against tpm: the prompt estimate scaled by what usage taught us."""
        return math.ceil(prompt_estimate * self._prompt_ratio) + completion

    def calibrate(self, request: PreparedRequest, usage: Usage) -> None:
        """Learn how far chars/4 undercounts this provider's tokenizer.

        Code and non-English text run well below 4 characters per token; an
        estimate that is too low would let a window exceed tpm. The factor
        only ever scales estimates up, jumps to any higher observation and
        decays slowly back toward 1.
        """
        if usage.prompt_tokens <= 0 or request.prompt_estimate <= 0:
            return
        observed = usage.prompt_tokens / request.prompt_estimate
        self._prompt_ratio = max(observed, 1.0 + (self._prompt_ratio - 1.0) * 0.98, 1.0)

    # -- the request ---------------------------------------------------------

    def timeout(self, request: PreparedRequest) -> httpx.Timeout:
        if request.timeout_s == self.config.timeout_s:
            return self._default_timeout
        return httpx.Timeout(request.timeout_s, connect=min(self.config.connect_timeout_s, request.timeout_s), pool=None)

    async def trace(self, name: str, info: Mapping[str, object]) -> None:
        # httpcore reports each new TCP connection; reused ones say nothing.
        if name in ("connection.connect_tcp.complete", "connection.connect_unix_socket.complete"):
            self._counters.connections_opened += 1

    # -- classifying failures ------------------------------------------------

    def transport_failure(self, exc: BaseException, request: PreparedRequest, attempt: int) -> AttemptFailed:
        where = self.config.base_url
        detail = self._key.redact(str(exc) or type(exc).__name__)
        error: LLMError
        if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
            phase = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
            error = LLMTimeout(f"timed out {phase} {where} (timeout_s={request.timeout_s:g}, attempt {attempt})")
        elif isinstance(exc, httpx.ConnectError):
            error = LLMConnectionError(f"cannot connect to {where}: {detail} (attempt {attempt})")
        elif isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
            error = LLMConnectionError(f"connection to {where} failed: {detail} (attempt {attempt})")
        else:
            error = LLMError(f"request to {where} failed: {type(exc).__name__}: {detail}", kind="http_client")
        self._counters.attempt_errors[error.kind] += 1
        return AttemptFailed(error, retryable=exception_is_retryable(exc))

    def status_failure(self, status: int, headers: Mapping[str, str], body: str, attempt: int) -> AttemptFailed:
        body = self._key.redact(body[:_MAX_ERROR_BODY])
        message = error_message(body) or body.strip()[:300] or "(empty body)"
        error = LLMHTTPError(
            f"{self.config.base_url} answered HTTP {status}: {message} (attempt {attempt})", status=status, body=body
        )
        if status == 429:
            self._counters.rate_limited += 1
        self._counters.attempt_errors[error.kind] += 1
        return AttemptFailed(error, retryable=status_is_retryable(status, headers),
                             delay=server_delay(headers), status=status)
