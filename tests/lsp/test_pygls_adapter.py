"""perfd.lsp.pygls_adapter against the installed pygls: the one place a pygls upgrade may break.

The adapter overrides and reads private parts of pygls (`_send_data`,
`_handle_cancel_notification`, `_shutdown`, `_serialize_message`,
`_include_headers`, `_server._report_server_error`) and replaces two of its
built-in handlers (`exit`, `textDocument/didChange`). This test pins the pygls
versions they were written for, checks that each private name is still there
with the signature the adapter assumes, and that pygls still routes through
them, so an upgrade fails here, by name, and nowhere else.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging

import orjson
import pytest
import pygls.io_
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer

from perfd.lsp import pygls_adapter
from perfd.lsp.pygls_adapter import PYGLS_VERSIONS, PerfdProtocol


class _Sink:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        pass


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _params(fn: object) -> list[str]:
    assert callable(fn)
    return list(inspect.signature(fn).parameters)


def _protocol() -> tuple[PerfdProtocol, _Sink]:
    server = LanguageServer("perfd-test", "0", protocol_cls=PerfdProtocol)
    proto = server.protocol
    assert isinstance(proto, PerfdProtocol)
    sink = _Sink()
    proto.set_writer(sink, include_headers=False)
    return proto, sink


def _handle(proto: PerfdProtocol, msg: dict[str, object]) -> None:
    """One message as pygls's reader hands it over."""
    proto.handle_message(json.loads(json.dumps(msg), object_hook=proto.structure_message))


def test_pygls_is_a_version_the_adapter_was_written_for() -> None:
    installed = importlib.metadata.version("pygls")
    low, high = PYGLS_VERSIONS
    assert low <= _version(installed) < high, (
        f"pygls {installed}: perfd.lsp.pygls_adapter was written for >= {low}, < {high}; check each override "
        "against the new pygls, then widen PYGLS_VERSIONS")


def test_the_private_methods_it_overrides_are_there_with_their_signatures() -> None:
    assert _params(JsonRPCProtocol._send_data) == ["self", "data"]
    assert _params(JsonRPCProtocol._handle_cancel_notification) == ["self", "msg_id"]
    assert _params(JsonRPCProtocol._serialize_message) == ["self", "data"]
    assert _params(JsonRPCServer._report_server_error) == ["self", "error", "source"]
    # The built-in handlers it replaces, found by pygls under these names and methods.
    assert getattr(LanguageServerProtocol.lsp_exit, "method_name", None) == lsp.EXIT
    assert getattr(LanguageServerProtocol.lsp_text_document__did_change, "method_name",
                   None) == lsp.TEXT_DOCUMENT_DID_CHANGE
    # pygls still sends every message through _send_data and routes $/cancelRequest to the hook.
    for sender in (JsonRPCProtocol._send_response, JsonRPCProtocol.notify, JsonRPCProtocol.send_request):
        assert "self._send_data(" in inspect.getsource(sender), sender.__name__
    assert "self._handle_cancel_notification(" in inspect.getsource(JsonRPCProtocol._handle_notification)
    # Answering every request: the message reader, the result sender and what structure_message reads.
    assert _params(JsonRPCProtocol.structure_message) == ["self", "data"]
    assert _params(JsonRPCProtocol.handle_message) == ["self", "message"]
    assert _params(JsonRPCProtocol._send_handler_result) == ["self", "future", "msg_id"]
    assert "self._send_handler_result" in inspect.getsource(JsonRPCProtocol._handle_request)
    assert "object_hook=protocol.structure_message" in inspect.getsource(pygls.io_)


def test_the_private_attributes_it_reads_are_there() -> None:
    proto, _ = _protocol()
    assert proto._shutdown is False
    assert isinstance(proto._include_headers, bool)
    assert isinstance(proto._server, LanguageServer)
    assert isinstance(proto._result_types, dict) and isinstance(proto._request_futures, dict)
    assert proto._converter is not None
    assert proto.shutdown_requested is False


def test_shutdown_is_seen_through_the_public_flag() -> None:
    proto, sink = _protocol()
    _handle(proto, {"jsonrpc": "2.0", "id": 1, "method": "shutdown"})
    assert proto.shutdown_requested is True
    assert orjson.loads(sink.out[-1]) == {"jsonrpc": "2.0", "id": 1, "result": None}


def test_a_cancel_reaches_on_cancel() -> None:
    proto, _ = _protocol()
    seen: list[object] = []
    proto.on_cancel = seen.append
    _handle(proto, {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 7}})
    assert seen == [7]


def test_exit_ends_only_the_session() -> None:
    proto, _ = _protocol()
    exited: list[bool] = []
    proto.on_exit = lambda: exited.append(True)
    _handle(proto, {"jsonrpc": "2.0", "method": "exit"})
    assert exited == [True]


def test_a_response_goes_out_through_the_override_with_headers() -> None:
    proto, sink = _protocol()
    proto.set_writer(sink, include_headers=True)
    proto.notify("perfd/test", {"text": "é"})
    head, _, body = sink.out[-1].partition(b"\r\n\r\n")
    assert head.startswith(b"Content-Length: %d\r\n" % len(body))
    assert orjson.loads(body) == {"jsonrpc": "2.0", "method": "perfd/test", "params": {"text": "é"}}


def test_a_command_gets_the_arguments_as_sent() -> None:
    """pygls decides from the handler's signature what to pass it; the adapter's binders get the
    client's arguments, and never the server in front of them."""
    server = LanguageServer("perfd-test", "0", protocol_cls=PerfdProtocol)
    proto = server.protocol
    assert isinstance(proto, PerfdProtocol)
    sink = _Sink()
    proto.set_writer(sink, include_headers=False)
    got: list[object] = []

    def echo(args: object) -> str:
        got.append(args)
        return "ok"

    pygls_adapter.command(server, "perfd.test", echo)
    _handle(proto, {"jsonrpc": "2.0", "id": 3, "method": "workspace/executeCommand",
                    "params": {"command": "perfd.test", "arguments": ["@P", "1.2", {"stream": "s"}]}})
    assert got == [("@P", "1.2", {"stream": "s"})]
    assert orjson.loads(sink.out[-1]) == {"jsonrpc": "2.0", "id": 3, "result": "ok"}


def test_no_other_lsp_module_touches_a_private_name_of_another_object() -> None:
    """Outside the adapter, perfd.lsp reads `x._name` only where x is self or cls (its own class's state)."""
    import ast
    import pathlib

    import perfd.lsp

    found = []
    for path in sorted(pathlib.Path(perfd.lsp.__file__).parent.glob("*.py")):
        if path.name == "pygls_adapter.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert found == []


@pytest.mark.parametrize("params", [None, [], "x", {"textDocument": {"uri": "file:///a"}},
                                    {"textDocument": {"uri": "file:///a"}, "position": {"line": -1, "character": 0}},
                                    {"textDocument": {"uri": "file:///a"}, "position": {"line": 0, "character": 2**31}}])
def test_a_request_pygls_cannot_read_is_answered_invalid_params_without_a_traceback(
        params: object, caplog: pytest.LogCaptureFixture) -> None:
    proto, sink = _protocol()
    with caplog.at_level(logging.DEBUG):
        _handle(proto, {"jsonrpc": "2.0", "id": 9, "method": "textDocument/hover", "params": params})
    reply = orjson.loads(sink.out[-1])
    assert reply["id"] == 9 and reply["error"]["code"] == -32602
    assert "textDocument/hover" in reply["error"]["message"] and "\n" not in reply["error"]["message"]
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_a_request_with_an_unusable_id_is_an_invalid_request_and_a_bad_notification_one_line(
        caplog: pytest.LogCaptureFixture) -> None:
    proto, sink = _protocol()
    with caplog.at_level(logging.DEBUG):
        _handle(proto, {"jsonrpc": "2.0", "id": {"x": 1}, "method": "textDocument/hover", "params": None})
        _handle(proto, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": None})
    assert orjson.loads(sink.out[-1]) == {"jsonrpc": "2.0", "id": None,
                                          "error": {"code": -32600, "message": "invalid request id"}}
    assert len(sink.out) == 1 and "ignored notification textDocument/didOpen" in caplog.text
    assert not any(r.exc_info for r in caplog.records)
