"""`perfd lsp`, standalone and relayed through the daemon, never reads a document outside the workspace: not
one the editor names by its own path, nor one reached through a symlink inside the workspace that leads out.
Such a request is refused (InvalidParams) or answered empty, in one line, and the file's text appears in no
message the server sends. A file inside the workspace with the same text (its own marker) is read: the check
can see a leak."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest
from lsp_fuzz import INVALID_PARAMS, Message, RawLSP

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "daemon", "perfd", "example")
MARKER = "SECRET-MARKER-4d1f9a"
CONTROL = "INSIDE-MARKER-8c2e07"  # the control plan's (it is a plan of the workspace: listed, its text sent)
# A plan whose every answer would carry the marker: its title, its index, its achievements.
SECRET = f"""\
# PLAN: {MARKER}

## 📋 Achievement Index

- Achievement 1.1: {MARKER} One

## 📋 Achievements

**Achievement 1.1**: {MARKER} One

{MARKER} body.
"""
DOCUMENT_REQUESTS = ("textDocument/documentSymbol", "textDocument/foldingRange", "textDocument/codeLens",
                     "textDocument/documentLink", "textDocument/hover", "textDocument/definition",
                     "textDocument/completion", "textDocument/codeAction")


class Recorder(RawLSP):
    """RawLSP keeping every message the server sent (notifications too: diagnostics, progress)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        super().__init__(argv, env, cwd)
        self.seen: list[Message] = []

    def read(self, deadline: float) -> Message | None:
        msg = super().read(deadline)
        if msg is not None:
            self.seen.append(msg)
        return msg


class Box:
    def __init__(self) -> None:
        self.base = tempfile.mkdtemp(prefix="perfd-outside-")
        self.root = os.path.realpath(os.path.join(self.base, "ws"))
        shutil.copytree(EXAMPLE, self.root)
        self.env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(self.base, "r"),
                        PERFD_STATE_DIR=os.path.join(self.base, "s"))
        outside = os.path.join(os.path.realpath(self.base), "outside")
        os.mkdir(outside)
        self.secret = os.path.join(outside, "PLAN_SECRET.md")
        with open(self.secret, "w", encoding="utf-8") as f:
            f.write(SECRET)
        plans = os.path.join(self.root, "work-space", "plans")
        # Links inside the workspace leading out: a plan of its own, a SUBPLAN of a real plan, a note.
        os.mkdir(os.path.join(plans, "LEAK"))
        self.links = [os.path.join(plans, "LEAK", "PLAN_LEAK.md"),
                      os.path.join(plans, "API-CLIENT", "SUBPLAN_API-CLIENT_91.md"),
                      os.path.join(self.root, "notes.md")]
        for link in self.links:
            os.symlink(self.secret, link)
        # The same text inside the workspace, as a real file: this one is read.
        os.mkdir(os.path.join(plans, "INSIDE"))
        self.inside = os.path.join(plans, "INSIDE", "PLAN_INSIDE.md")
        with open(self.inside, "w", encoding="utf-8") as f:
            f.write(SECRET.replace(MARKER, CONTROL))

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


def _requests(uri: str) -> list[tuple[str, object]]:
    doc = {"uri": uri}
    pos = {"line": 4, "character": 16}
    out: list[tuple[str, object]] = []
    for method in DOCUMENT_REQUESTS:
        params: dict[str, object] = {"textDocument": doc}
        if method in ("textDocument/hover", "textDocument/definition", "textDocument/completion"):
            params["position"] = pos
        if method == "textDocument/codeAction":
            params["range"] = {"start": pos, "end": pos}
            params["context"] = {"diagnostics": []}
        out.append((method, params))
    return out


def _refused_or_empty(reply: Message) -> bool:
    error = reply.get("error")
    if isinstance(error, dict):
        return error.get("code") == INVALID_PARAMS
    return reply.get("result") in (None, [], {"isIncomplete": False, "items": []})


@pytest.mark.parametrize("mode", ["standalone", "relayed"])
def test_documents_outside_the_workspace_are_never_read(box: Box, mode: str) -> None:
    argv = [sys.executable, "-m", "perfd", "lsp", "--root", box.root]
    if mode == "standalone":
        argv.append("--standalone")
    client = Recorder(argv, box.env, box.root)
    try:
        ident = client.send("initialize", {"processId": None, "rootUri": "file://" + box.root, "capabilities": {}})
        assert ident in client.answers({ident}, 30)
        client.send("initialized", {}, request=False)
        # Control: the same text in a file inside the workspace is read (so a leak would be seen).
        asked, got = client.drive(_requests("file://" + box.inside), timeout_s=30)
        assert set(got) == set(asked)
        assert any(CONTROL in json.dumps(got[i].get("result")) for i in got), got
        client.seen.clear()

        outside = [box.secret, *box.links]
        cases = [case for path in outside for case in _requests("file://" + path)]
        # The commands that name a plan by a path refuse them too.
        for path in outside:
            cases += [("workspace/executeCommand", {"command": c, "arguments": ["file://" + path]})
                      for c in ("perfd.status", "perfd.generateNext", "perfd.openFile")]
        cases.append(("workspace/symbol", {"query": ""}))
        asked, got = client.drive(cases, timeout_s=30)
        missing = [asked[i] for i in asked if i not in got]
        assert not missing, missing[:3]
        documents = [i for i in asked if asked[i][0].startswith("textDocument/")]
        wrong = [(asked[i], got[i]) for i in documents if not _refused_or_empty(got[i])]
        assert not wrong, wrong[:3]
        # At least every document request that has to read the text is refused, not answered empty.
        refused = [i for i in documents if isinstance(got[i].get("error"), dict)]
        reads_text = ("textDocument/documentSymbol", "textDocument/foldingRange")
        assert {i for i in documents if asked[i][0] in reads_text} <= set(refused)
        for i in asked:
            if asked[i][0] == "workspace/executeCommand":
                assert "error" in got[i], (asked[i], got[i])
        for reply in got.values():  # every error one line, no traceback in its data
            error = reply.get("error")
            assert error is None or ("Traceback" not in str(error) and "\n" not in str(error)), error
        # The text never went out, in an answer or in any notification (diagnostics, progress).
        leaked = [m for m in client.seen if MARKER in json.dumps(m)]
        assert not leaked, leaked[:3]
    finally:
        stderr = client.close()
    assert "Traceback" not in stderr, stderr[-3000:]
    assert MARKER not in stderr
    log = box.daemon_log()
    assert "Traceback" not in log, log[-3000:]
    assert MARKER not in log
