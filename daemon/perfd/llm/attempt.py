"""One HTTP attempt of a call: how it failed and what that says about the provider."""

from __future__ import annotations

from typing import Literal

from .errors import LLMError


class AttemptFailed(Exception):
    """One attempt failed; the retry loop decides what happens next."""

    def __init__(self, error: LLMError, *, retryable: bool, delay: float | None = None, status: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.delay = delay
        self.status = status


def status_health(status: int) -> Literal["success", "failure", "neutral"]:
    if status >= 500 or status == 408:
        return "failure"
    if status in (409, 429):
        return "neutral"
    return "success"  # other 4xx: the server is up and answering
