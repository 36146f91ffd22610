"""Errors a user can act on (exit code 1), as opposed to bugs."""

from __future__ import annotations


class UserError(Exception):
    """An unknown plan or achievement, a path outside the workspace, ...

    `message` is one clear line; `hint` says what to do instead (often the
    candidates), one line too: names in it may hold anything, so a newline in
    one is shown escaped, never as a line of its own; `details`, several lines
    that perfd itself wrote (an example of the settings to add), printed as
    lines; `code` is stable for programs (JSON-RPC data, tests).
    """

    def __init__(self, message: str, *, hint: str = "", code: str = "user-error",
                 candidates: list[str] | None = None, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        self.code = code
        self.candidates = candidates or []


class UsageError(UserError):
    """A command line perfd cannot read (exit 2): the one usage-error type, from the parser or after it."""

    def __init__(self, message: str, *, hint: str = "perfd --help lists the commands") -> None:
        super().__init__(message, hint=hint, code="usage")
