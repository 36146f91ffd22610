"""perfd.lsp's handlers called directly on a session, and through pygls's message handling in-process.

The handlers are plain functions of (session, params): these tests build a session with the
factory, open a buffer, and call them, without a client process (the end-to-end tests in
test_lsp_standalone and test_lsp_actions drive the same handlers over stdio).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
from lsprotocol import types as lsp

from perfd.engine.engine import Engine
from perfd.lsp import commands, features as F, handlers
from perfd.lsp.pygls_adapter import PerfdProtocol
from perfd.lsp.server import COMMANDS, build_server
from perfd.lsp.state import Session

PLAN = """\
# PLAN: Demo

## 📋 Achievement Index

- Achievement 1.1: Parse Input
- Achievement 1.2: Render Output

## 📋 Achievements

**Achievement 1.1**: Parse Input

Body of 1.1.

**Achievement 1.2**: Render Output

Body of 1.2.
"""


class _Sink:
    def __init__(self) -> None:
        self.out: list[dict[str, object]] = []

    def write(self, data: bytes) -> None:
        self.out.append(orjson.loads(data))

    def close(self) -> None:
        pass


class Open:
    def __init__(self, s: Session, sink: _Sink, uri: str, path: str) -> None:
        self.s, self.sink, self.uri, self.path = s, sink, uri, path
        self.ids = 100

    def send(self, method: str, params: object) -> dict[str, object]:
        """One request through pygls as its reader would hand it over; the response."""
        self.ids += 1
        proto = self.s.server.protocol
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        proto.handle_message(json.loads(body, object_hook=proto.structure_message))
        reply = next(m for m in reversed(self.sink.out) if m.get("id") == self.ids)
        return reply

    def ident(self) -> lsp.TextDocumentIdentifier:
        return lsp.TextDocumentIdentifier(uri=self.uri)


@pytest.fixture
def opened(tmp_path: Path) -> Open:
    """A session over a one-plan workspace, initialized, with the PLAN open in a buffer that adds 1.3."""
    folder = tmp_path / "ws" / "work-space" / "plans" / "DEMO"
    folder.mkdir(parents=True)
    plan = folder / "PLAN_DEMO.md"
    plan.write_text(PLAN, encoding="utf-8")
    s = build_server(Engine(str(tmp_path / "ws")))
    proto = s.server.protocol
    assert isinstance(proto, PerfdProtocol)
    sink = _Sink()
    proto.set_writer(sink, include_headers=False)
    o = Open(s, sink, plan.as_uri(), str(plan))
    o.send("initialize", {"processId": None, "rootUri": (tmp_path / "ws").as_uri(), "capabilities": {}})
    text = PLAN.replace("- Achievement 1.2: Render Output\n",
                        "- Achievement 1.2: Render Output\n- Achievement 1.3: Only In The Buffer\n")
    s.server.workspace.put_text_document(lsp.TextDocumentItem(uri=o.uri, language_id="markdown", version=1,
                                                              text=text))
    return o


def test_the_factory_registers_every_command_and_feature(opened: Open) -> None:
    fm = opened.s.server.protocol.fm
    assert set(fm.commands) == set(COMMANDS)
    assert {lsp.TEXT_DOCUMENT_HOVER, lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.TEXT_DOCUMENT_COMPLETION,
            lsp.WORKSPACE_SYMBOL, lsp.SHUTDOWN} <= set(fm.features)


def test_handlers_answer_from_the_open_buffer(opened: Open) -> None:
    s = opened.s
    got = handlers.hover(s, lsp.HoverParams(opened.ident(), lsp.Position(6, 3)))
    assert got is not None and isinstance(got.contents, lsp.MarkupContent)
    assert got.contents.value.startswith("**Achievement 1.3**: Only In The Buffer")
    items = handlers.completion(s, lsp.CompletionParams(opened.ident(), lsp.Position(6, len("- Achievement "))))
    assert [i.label for i in items.items] == ["1.1", "1.2", "1.3"]
    names = [sym["name"] for sym in handlers.document_symbol(s, lsp.DocumentSymbolParams(opened.ident()))]
    assert names == ["📋 Achievement Index", "📋 Achievements"]
    assert [w.name for w in handlers.workspace_symbol(s, lsp.WorkspaceSymbolParams(query="render"))] == [
        "1.2 Render Output"]  # the workspace's plans are read from disk


def test_code_actions_keep_the_kinds_asked_for(opened: Open) -> None:
    def actions(only: list[lsp.CodeActionKind | str] | None) -> list[str]:
        params = lsp.CodeActionParams(opened.ident(), lsp.Range(lsp.Position(4, 0), lsp.Position(4, 0)),
                                      lsp.CodeActionContext(diagnostics=[], only=only))
        return [a.title for a in handlers.code_action(opened.s, params)]

    assert actions(None) == actions([F.ACTION_KIND])
    assert "Copy prompt for 1.1" in actions(None)
    assert actions([lsp.CodeActionKind.QuickFix]) == []


def test_timed_handlers_are_recorded_in_the_session_stats(opened: Open) -> None:
    reply = opened.send("textDocument/hover", {"textDocument": {"uri": opened.uri},
                                               "position": {"line": 4, "character": 3}})
    assert "result" in reply and reply["result"] is not None
    assert "lsp/hover" in {m.method for m in opened.s.own_stats.method_stats()}


def test_commands_answer_as_json_and_fail_in_one_line(opened: Open) -> None:
    st = commands.status(opened.s, [opened.uri])
    assert st["plan"] == "DEMO" and st["path"] == opened.path
    reply = opened.send("workspace/executeCommand", {"command": "perfd.status", "arguments": ["@NOPE"]})
    error = reply["error"]
    assert isinstance(error, dict) and error["code"] == -32803
    assert error["data"]["code"] == "unknown-plan" and "Traceback" not in json.dumps(error)
    reply = opened.send("workspace/executeCommand", {"command": "perfd.generate", "arguments": ["@DEMO", "1.2"]})
    result = reply["result"]
    assert isinstance(result, dict) and result["achievement"] == "1.2"


async def test_shutdown_is_answered_and_leaves_the_session_clean(opened: Open) -> None:
    proto = opened.s.protocol
    opened.ids += 1
    body = json.dumps({"jsonrpc": "2.0", "id": opened.ids, "method": "shutdown"})
    proto.handle_message(json.loads(body, object_hook=proto.structure_message))
    for _ in range(100):  # the handler awaits (the session's own model client is closed)
        if any(m.get("id") == opened.ids for m in opened.sink.out):
            break
        await asyncio.sleep(0.01)
    reply = next(m for m in opened.sink.out if m.get("id") == opened.ids)
    assert reply == {"jsonrpc": "2.0", "id": opened.ids, "result": None}
    assert proto.shutdown_requested
