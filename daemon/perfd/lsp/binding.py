"""Binding module-level handlers to one session's pygls server.

A handler is a plain function of (session, params), as in perfd.lsp.handlers,
perfd.lsp.commands and perfd.lsp.run; each of those modules registers its own
with these binders (its `register`), and perfd.lsp.server's factory calls them.
pygls sees a function of the params alone, bound to the session here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from perfd.engine.errors import UserError
from perfd.lsp import pygls_adapter
from perfd.lsp.pygls_adapter import JSONValue
from perfd.lsp.state import Session

log = logging.getLogger("perfd.lsp")
_P = TypeVar("_P")
_R = TypeVar("_R")

Args = Sequence[JSONValue]  # a command's arguments as the client sent them
JSONObject = dict[str, object]  # a command's answer, as JSON


def to_json(obj: msgspec.Struct) -> JSONObject:
    out: JSONObject = msgspec.to_builtins(obj)
    return out


def plan_arg(args: Args) -> str:
    """The plan named by the first argument: @NAME, a path or a file URI."""
    if not args or not isinstance(args[0], str):
        raise UserError("expected a plan (@NAME, path or file URI) as the first argument", code="bad-params")
    ref = args[0]
    if ref.startswith("file://"):
        from pygls.uris import to_fs_path

        ref = to_fs_path(ref) or ref
    return ref


def str_arg(args: Args, i: int) -> str | None:
    """Argument `i` when it is a string."""
    got = args[i] if len(args) > i else None
    return got if isinstance(got, str) else None


class CommandFailed(JsonRpcException):
    """A perfd.* command that could not do its work: a one-line message and perfd's error code and
    hint as data; never a Python traceback (pygls puts one in the data of any other exception)."""

    CODE = -32803  # LSP RequestFailed: the request was valid, the work failed


def refused(exc: UserError | OSError) -> JsonRpcException:
    """A request whose params name something unusable (not a file URI, a document that cannot be read or that
    lies outside the workspace) is InvalidParams; any other one-line failure of perfd's is RequestFailed.
    Never a traceback."""
    if isinstance(exc, OSError):
        return JsonRpcInvalidParams(f"cannot read the document: {exc.strerror or type(exc).__name__}")
    if exc.code in ("bad-uri", "bad-params", "outside-workspace"):
        return JsonRpcInvalidParams(exc.message)
    return CommandFailed(exc.message, data={"code": exc.code, "hint": exc.hint})


def feature(s: Session, method: str, handler: Callable[[Session, _P], _R], options: object = None, *,
            timed: str | None = None) -> None:
    """Answer `method` with handler(s, params); `timed`: recorded under lsp/<timed> in the stats."""
    def answer(params: _P) -> _R:
        try:
            return handler(s, params)
        except (UserError, OSError) as exc:
            raise refused(exc) from None

    if timed is None:
        run = answer
    else:
        def run(params: _P) -> _R:
            return s.timed(timed, lambda: answer(params))

    run.__name__ = handler.__name__
    s.server.feature(method, options)(run)


def async_feature(s: Session, method: str, handler: Callable[[Session, _P], Awaitable[_R]]) -> None:
    async def run(params: _P) -> _R:
        try:
            return await handler(s, params)
        except (UserError, OSError) as exc:
            raise refused(exc) from None

    run.__name__ = handler.__name__
    s.server.feature(method)(run)


def command(s: Session, name: str, handler: Callable[[Session, Args], _R], *, clear_errors: bool) -> None:
    """workspace/executeCommand `name` runs handler(s, arguments).

    `clear_errors`: a failure is answered as CommandFailed (see translate), else as pygls answers it.
    """
    def run(args: Args) -> _R:
        if not clear_errors:
            return handler(s, args)
        try:
            return handler(s, args)
        except JsonRpcException:
            raise
        except Exception as exc:
            raise translate(name, exc) from None

    pygls_adapter.command(s.server, name, run)


def async_command(s: Session, name: str, handler: Callable[[Session, Args], Awaitable[_R]], *,
                  clear_errors: bool) -> None:
    """command() for a handler that awaits (the client, or a model call)."""
    async def run(args: Args) -> _R:
        if not clear_errors:
            return await handler(s, args)
        try:
            return await handler(s, args)
        except JsonRpcException:
            raise
        except Exception as exc:
            raise translate(name, exc) from None

    pygls_adapter.async_command(s.server, name, run)


def translate(name: str, exc: Exception) -> CommandFailed:
    """A UserError is its message; anything else is logged here and answered in one line."""
    if isinstance(exc, UserError):
        return CommandFailed(exc.message, data={"code": exc.code, "hint": exc.hint})
    log.exception("perfd command %s failed", name)
    return CommandFailed(f"internal error: {type(exc).__name__}: {exc}", data={"code": "internal"})
