"""Errors raised by the LLM call path.

Every error carries a short machine-readable `kind` so stats, history and the
CLI can group failures without parsing messages. Messages never contain the
API key: the client scrubs server-provided text before it lands here.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class of everything `perfd.llm` raises on purpose."""

    kind: str = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class LLMConfigError(LLMError, ValueError):
    """The `[llm]` settings (file or PERFD_LLM_* environment) are unusable."""

    kind = "config"


class LLMRequestTooLarge(LLMError, ValueError):
    """A request that could never fit the configured tokens-per-minute budget."""

    kind = "too_large"


class LLMCircuitOpen(LLMError):
    """The provider failed repeatedly; calls fail fast until the cool-down ends."""

    kind = "circuit_open"

    def __init__(self, message: str, *, retry_in_s: float) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class LLMHTTPError(LLMError):
    """The provider answered with a non-success HTTP status (after retries)."""

    def __init__(self, message: str, *, status: int, body: str = "") -> None:
        kind = "http_429" if status == 429 else "http_5xx" if status >= 500 else "http_4xx"
        super().__init__(message, kind=kind)
        self.status = status
        self.body = body


class LLMTimeout(LLMError):
    """No (complete) answer within the per-request timeout."""

    kind = "timeout"


class LLMConnectionError(LLMError):
    """The provider could not be reached or dropped the connection."""

    kind = "connection"


class LLMResponseError(LLMError):
    """The provider's answer is not a valid chat completion."""

    kind = "bad_response"


class LLMStreamInterrupted(LLMError):
    """A stream failed after tokens were already delivered, so it was not retried."""

    kind = "stream_interrupted"

    def __init__(self, message: str, *, partial_text: str) -> None:
        super().__init__(message)
        self.partial_text = partial_text


class LLMRequestError(LLMError, ValueError):
    """The call itself is malformed (messages, options) and was not sent."""

    kind = "bad_request"


class LLMBudgetExceeded(LLMError):
    """The call would go over the daily budget; it was refused before anything was sent."""

    kind = "budget"


class LLMTeamUnavailable(LLMError):
    """The team's Redis is unreachable and `[team] fail = "closed"`: no model calls until it is back."""

    kind = "team_unavailable"
