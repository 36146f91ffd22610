"""Hostile LSP requests, standalone and relayed through the daemon: every request id is answered (invalid
params with JSON-RPC InvalidParams), nothing is logged as a traceback, and the server keeps serving."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
from lsp_fuzz import INVALID_PARAMS, RawLSP, hostile, hostile_notifications

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")


class Box:
    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="perfd-fuzz-")
        self.root = os.path.realpath(os.path.join(self.base, "ws"))
        shutil.copytree(EXAMPLE, self.root)
        self.env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(self.base, "r"),
                        PERFD_STATE_DIR=os.path.join(self.base, "s"))
        self.plan = os.path.join(self.root, "work-space", "plans", "API-CLIENT", "PLAN_API-CLIENT.md")

    def daemon_log(self) -> str:
        text = ""
        for path in glob.glob(os.path.join(self.base, "s", "*.log")):
            with open(path, encoding="utf-8", errors="replace") as f:
                text += f.read()
        return text


@pytest.fixture
def box() -> Iterator[Box]:
    b = Box()
    yield b
    subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop"], cwd=b.root, env=b.env, capture_output=True,
                   timeout=30)
    shutil.rmtree(b.base, ignore_errors=True)


_POSITIONAL = ("textDocument/hover", "textDocument/definition", "textDocument/completion")


def _must_be_invalid_params(method: str, params: object) -> bool:
    """Cases no reading of the LSP types accepts: a document request without params (null, a list, a
    string), or a positional one whose position is negative or past the protocol's 2**31 - 1."""
    if not method.startswith("textDocument/"):
        return False
    if not isinstance(params, dict):
        return True
    pos = params.get("position") if method in _POSITIONAL else None
    if isinstance(pos, dict):
        return any(isinstance(v, int) and not isinstance(v, bool) and not 0 <= v < 2**31
                   for v in (pos.get("line"), pos.get("character")))
    return False


def _code(reply: dict[str, object]) -> object:
    error = reply.get("error")
    return error.get("code") if isinstance(error, dict) else None


@pytest.mark.parametrize("mode", ["standalone", "relayed"])
def test_every_hostile_request_is_answered_and_the_server_keeps_serving(box: Box, mode: str) -> None:
    argv = [sys.executable, "-m", "perfd", "lsp", "--root", box.root]
    if mode == "standalone":
        argv.append("--standalone")
    client = RawLSP(argv, box.env, box.root)
    stderr = ""
    try:
        ident = client.send("initialize", {"processId": None, "rootUri": "file://" + box.root, "capabilities": {}})
        assert ident in client.answers({ident}, 30)
        client.send("initialized", {}, request=False)
        uri = "file://" + box.plan
        with open(box.plan, encoding="utf-8") as f:
            client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "markdown", "version": 1,
                                                                  "text": f.read()}}, request=False)
        cases = list(hostile(uri))
        # A document that is not open, one that does not exist, and one outside any file system.
        for other in ("file://" + os.path.join(box.root, "README.md"), "file://" + box.root + "/nope.md",
                      "untitled:Untitled-1", "file://" + box.root):
            cases += [(m, {"textDocument": {"uri": other}, "position": {"line": 3, "character": 2}})
                      for m in ("textDocument/hover", "textDocument/definition", "textDocument/completion",
                                "textDocument/documentSymbol", "textDocument/foldingRange")]
        for method, params in hostile_notifications(uri):
            client.send(method, params, request=False)
        asked, got = client.drive(cases)
        missing = [asked[i] for i in asked if i not in got]
        assert not missing, f"{len(missing)} of {len(asked)} requests never answered, e.g. {missing[:3]}"
        invalid = [i for i in asked if _must_be_invalid_params(*asked[i])]
        assert len(invalid) > 250  # null params, negative and huge positions, wrong types
        wrong = [(asked[i], got[i]) for i in invalid if _code(got[i]) != INVALID_PARAMS]
        assert not wrong, wrong[:3]
        for reply in got.values():  # every error one line, no traceback in its data
            error = reply.get("error")
            assert error is None or ("Traceback" not in str(error) and "\n" not in str(error)), error
        # Still serving: the open document's symbols, as before the attack.
        ident = client.send("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        reply = client.answers({ident}, 30)[ident]
        assert "error" not in reply and reply["result"], reply
    finally:
        stderr = client.close()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "Traceback" not in box.daemon_log(), box.daemon_log()[-3000:]
