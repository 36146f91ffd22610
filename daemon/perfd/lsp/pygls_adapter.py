"""perfd's LSP protocol: pygls's, with a per-session `exit`, spliced incremental edits and orjson output.

One protocol object per editor connection. pygls's own start_tcp reuses one
protocol object for every connection, and its built-in `exit` handler ends
the whole process; PerfdProtocol's `exit` closes only its own session, so in
the daemon one editor leaving never takes the others (or the CLI) down.

Every request gets an answer, whatever its params: a message pygls cannot read into
its types (a negative or huge position, `params: null`, a garbage range, a wrong type)
is answered with JSON-RPC InvalidParams in one log line, where pygls would log a
traceback and answer nothing (the editor waits forever); an error a handler raises
on purpose (a JsonRpcException) is answered without a traceback in the log.

This is the one module of perfd that touches pygls's private parts (`_send_data`,
`_handle_cancel_notification`, `_shutdown`, `_serialize_message`, `_include_headers`,
`_server._report_server_error`, `_converter`, `_result_types`, `_request_futures`,
`_send_handler_result`); what the rest of perfd.lsp needs of them is public
here (`on_exit`, `on_cancel`, `shutdown_requested`). They were written for the pygls
versions in PYGLS_VERSIONS; tests/lsp/test_pygls_adapter.py pins that range and the
private names, so an upgrade fails there and nowhere else.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

import orjson
from lsprotocol import types as lsp
from concurrent.futures import Future

from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    RPCError,
    RPCNotification,
    RPCRequest,
    RPCResponse,
)
from pygls.workspace import TextDocument

log = logging.getLogger("perfd.lsp")

# The pygls releases these overrides were written for: at least the first, below the second.
PYGLS_VERSIONS = ((2, 1), (2, 2))

_R = TypeVar("_R")
# A command's argument as the client sent it (a JSON value)
JSONValue = str | int | float | bool | None | list[object] | dict[str, object]

# What a pygls built-in handler yields to call the user's handler: (handler, args, kwargs).
_UserCall = tuple[Callable[..., object], tuple[object, ...], None]


class Unreadable:
    """A message whose params pygls could not read into its types: answered with an error, never handled."""

    def __init__(self, data: dict[str, object], why: str) -> None:
        self.data = data
        self.why = why


class PerfdProtocol(LanguageServerProtocol):
    """LanguageServerProtocol whose `exit` ends this session only, and that answers every request."""

    on_exit: Callable[[], None] | None = None
    on_cancel: Callable[[object], None] | None = None  # $/cancelRequest: the session stops that request's work

    @property
    def shutdown_requested(self) -> bool:
        """Whether the client sent `shutdown` (an `exit` after it is a clean one, exit code 0)."""
        return self._shutdown

    def _handle_cancel_notification(self, msg_id: str | int) -> None:
        # pygls cancels a request only before it starts; an executeCommand handler's own work
        # (perfd.run's model call) runs in a task the session keeps, which this cancels too.
        super()._handle_cancel_notification(msg_id)
        if self.on_cancel is not None:
            self.on_cancel(msg_id)

    def structure_message(self, data: dict[str, object]) -> object:
        """pygls's structure_message (called on every JSON object of a message, innermost first), where a
        message that does not fit its types becomes `Unreadable` instead of an exception pygls only logs."""
        if "jsonrpc" not in data:
            return data
        try:
            if "id" in data:
                if "error" in data:
                    return self._converter.structure(data, lsp.ResponseErrorMessage)
                if "method" in data:
                    kind = self.get_message_type(str(data["method"])) or JsonRPCRequestMessage
                    return self._converter.structure(data, kind)
                ident = data["id"]
                kind = (self._result_types.pop(ident, None) if isinstance(ident, (str, int)) else None) \
                    or JsonRPCResponseMessage
                return self._converter.structure(data, kind)
            kind = self.get_message_type(str(data.get("method", ""))) or JsonRPCNotification
            return self._converter.structure(data, kind)
        except Exception as exc:  # cattrs' validation errors, and anything else a hostile message provokes
            return Unreadable(data, _one_line(exc))

    def handle_message(self, message: object) -> None:
        if isinstance(message, Unreadable):
            self._answer_unreadable(message)
            return
        if not isinstance(message, (RPCRequest, RPCNotification, RPCResponse, RPCError)):
            # a JSON value that is no message (an array, a number, an object without "jsonrpc")
            log.warning("lsp: ignored a message that is not a JSON-RPC object (%s)", type(message).__name__)
            return
        super().handle_message(message)

    def _answer_unreadable(self, message: Unreadable) -> None:
        data = message.data
        method = data.get("method")
        name = method if isinstance(method, str) else "?"
        ident = data.get("id")
        if "method" in data and "id" in data:
            if isinstance(ident, (str, int)) and not isinstance(ident, bool) and isinstance(method, str):
                error = JsonRpcInvalidParams(f"invalid params for {name[:100]}: {message.why}")
                log.info("lsp: %s request %r: invalid params (%s)", name[:100], ident, message.why)
                self._send_response(ident, None, error.to_response_error())
                return
            log.warning("lsp: %s request with an invalid id: answered as an invalid request", name[:100])
            self._send_data({"jsonrpc": "2.0", "id": None,
                             "error": {"code": JsonRpcInvalidRequest.CODE, "message": "invalid request id"}})
            return
        # A notification (nothing to answer) or a response to a request of ours: one line, no traceback.
        log.warning("lsp: ignored %s: %s", f"notification {name[:100]}" if "method" in data else "a response",
                    message.why)

    def _send_handler_result(self, future: Future[object], *, msg_id: str | int) -> None:
        """pygls's, except that an error raised on purpose (a JsonRpcException: a command's one-line failure)
        is answered without a traceback in the log; anything else is still logged in full as a bug."""
        if not future.cancelled() and isinstance(exc := future.exception(), JsonRpcException):
            self._request_futures.pop(msg_id, None)
            log.info("lsp: request %r answered with error %s: %s", msg_id, exc.code, exc.message)
            self._send_response(msg_id, error=exc.to_response_error())
            return
        super()._send_handler_result(future, msg_id=msg_id)

    @lsp_method(lsp.EXIT)
    def lsp_exit(self, *args: object) -> Generator[_UserCall, object, None]:
        if self.on_exit is not None:
            self.on_exit()
        if self.writer is not None:
            res = self.writer.close()
            if asyncio.iscoroutine(res):
                asyncio.ensure_future(res)
        yield from ()

    @lsp_method(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
            self, params: lsp.DidChangeTextDocumentParams) -> Generator[_UserCall, object, None]:
        """pygls's didChange, with each incremental edit spliced in by apply_edit."""
        td = self.workspace.text_documents.get(unquote(params.text_document.uri))
        if td is None:  # not open: pygls's own path says so in its way
            for change in params.content_changes:
                self.workspace.update_text_document(params.text_document, change)
        else:
            for change in params.content_changes:
                apply_edit(td, change)
            td.version = params.text_document.version
        if (user_handler := self.fm.features.get(lsp.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield user_handler, (params,), None

    def _send_data(self, data: object) -> None:
        """pygls's _send_data with orjson, and a response's result serialised as it is.

        pygls runs the whole message through cattrs, which walks plain dicts item by
        item; the large answers are built as JSON dicts (see features), so only
        lsprotocol objects inside go through the converter, via orjson's `default`.
        """
        if not data:
            return
        if self.writer is None:
            log.error("unable to send data: no transport")
            return
        if getattr(data, "error", None) is None and hasattr(data, "result") and not hasattr(data, "method"):
            # one of lsprotocol's many response classes: read by name, as pygls's own checks do
            data = {"jsonrpc": getattr(data, "jsonrpc"), "id": getattr(data, "id"), "result": getattr(data, "result")}
        try:
            try:
                body = orjson.dumps(data, default=self._serialize_message)
            except TypeError:  # e.g. a lone surrogate from a buffer, which json escapes and orjson refuses
                body = json.dumps(data, default=self._serialize_message).encode()
            if self._include_headers:
                body = (f"Content-Length: {len(body)}\r\n"
                        f"Content-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n").encode() + body
            res = self.writer.write(body)
            if inspect.isawaitable(res):
                asyncio.ensure_future(res)
        except BrokenPipeError:
            log.exception("error sending data: broken pipe")
            raise
        except Exception as error:
            log.exception("error sending data")
            self._server._report_server_error(error, JsonRpcInternalError)


def _one_line(exc: BaseException) -> str:
    """What was wrong with a message, in one line: cattrs' nested validation errors flattened."""
    try:
        from cattrs.errors import ClassValidationError

        if isinstance(exc, ClassValidationError):
            from cattrs import transform_error

            return "; ".join(transform_error(exc))[:300]
    except ImportError:
        pass
    return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__).splitlines()[0][:300]


def apply_edit(td: TextDocument, change: lsp.TextDocumentContentChangeEvent) -> None:
    """TextDocument.apply_change, with an incremental edit spliced in by slicing.

    pygls rebuilds the text by writing every line to a StringIO, about 3 ms per
    keystroke in a 10,000-line plan; joining the untouched lines on each side
    of the edit gives the same text in a fraction of that. Lines, positions and
    the edit's units are read exactly as pygls reads them (splitlines, its
    position codec); any range it would treat oddly goes to pygls.
    """
    if isinstance(change, lsp.TextDocumentContentChangePartial):
        lines = td.source.splitlines(True)
        r = td.position_codec.range_from_client_units(lines, change.range)
        sl, sc, el, ec = r.start.line, r.start.character, r.end.line, r.end.character
        if sl < len(lines) and (sl, sc) <= (el, ec):
            head = "".join(lines[:sl]) + lines[sl][:sc]
            tail = lines[el][ec:] + "".join(lines[el + 1:]) if el < len(lines) else ""
            change = lsp.TextDocumentContentChangeWholeDocument(text=head + change.text + tail)
    td.apply_change(change)


# pygls reads a command handler's signature to decide what to pass it: `*args` takes the
# arguments as the client sent them. It tests the first parameter's annotation with issubclass
# both ways (is it the server, to be passed in?), so that annotation is Any: `object` would have
# the server passed in as the first argument, and a union of JSON types is refused.

def command(server: LanguageServer, name: str, fn: Callable[[Sequence[JSONValue]], _R]) -> None:
    """Register fn(arguments) as workspace/executeCommand `name`."""
    def run(*args: Any) -> _R:
        return fn(args)

    server.command(name)(run)


def async_command(server: LanguageServer, name: str, fn: Callable[[Sequence[JSONValue]], Awaitable[_R]]) -> None:
    """command() for a handler that awaits."""
    async def run(*args: Any) -> _R:
        return await fn(args)

    server.command(name)(run)
