"""Hostile LSP messages and a raw stdio client that checks every request is answered (tests/lsp/test_lsp_fuzz.py).

Each case is a request whose params are wrong in one way an editor, a plugin or an attacker could make
them: negative or huge positions, `params: null`, a garbage range, wrong types, missing fields. The
server must answer each one (a result, or a JSON-RPC error, InvalidParams for params it cannot use)
and keep serving; notifications with garbage must not stop it either.
"""

from __future__ import annotations

import json
import random
import select
import subprocess
import time
from collections.abc import Iterator

INVALID_PARAMS = -32602
Message = dict[str, object]

# Requests that take a text document (and maybe a position or a range).
_POSITIONAL = ["textDocument/hover", "textDocument/definition", "textDocument/completion"]
_DOCUMENT = ["textDocument/documentSymbol", "textDocument/codeLens", "textDocument/documentLink",
             "textDocument/foldingRange"]
_HUGE = [2**31, 2**31 - 1, 2**53, 2**63, 10**30, -1, -(2**31), -(2**63)]
_JUNK: list[object] = [None, True, "x", "", 1.5, -1, [], {}, [1, 2], {"a": 1}, "\x00\ud800" if False else "\x00",
                       float("1e308"), 2**64]


def hostile(uri: str, seed: int = 0, n_random: int = 200) -> Iterator[tuple[str, object]]:
    """(method, params) of hostile requests: the fixed list, then `n_random` random mutations."""
    doc = {"uri": uri}
    for method in _POSITIONAL:
        for line in _HUGE + [0]:
            for char in _HUGE + [0]:
                if line == 0 and char == 0:
                    continue
                yield method, {"textDocument": doc, "position": {"line": line, "character": char}}
        for bad in _JUNK:
            yield method, {"textDocument": doc, "position": bad}
            yield method, {"textDocument": bad, "position": {"line": 0, "character": 0}}
            yield method, {"textDocument": {"uri": bad}, "position": {"line": 0, "character": 0}}
            yield method, {"textDocument": doc, "position": {"line": bad, "character": 0}}
        yield method, None
        yield method, []
        yield method, "params"
        yield method, {}
    for method in _DOCUMENT:
        for bad in _JUNK:
            yield method, {"textDocument": bad}
            yield method, {"textDocument": {"uri": bad}}
        yield method, None
        yield method, {}
        yield method, [doc]
    # codeAction: a garbage range and context.
    ranges: list[object] = [
        {"start": {"line": 5, "character": 0}, "end": {"line": 1, "character": 0}},
        {"start": {"line": -1, "character": -1}, "end": {"line": 2**40, "character": 2**40}},
        {"start": {"line": "a", "character": 0}, "end": {"line": 0, "character": 0}},
        {"start": None, "end": None}, "range", None, [], {},
    ]
    for r in ranges:
        yield "textDocument/codeAction", {"textDocument": doc, "range": r, "context": {"diagnostics": []}}
    for ctx in _JUNK:
        yield "textDocument/codeAction", {"textDocument": doc, "range": ranges[0], "context": ctx}
    for q in _JUNK:
        yield "workspace/symbol", {"query": q}
    yield "workspace/symbol", None
    for cmd in _JUNK + ["perfd.status", "perfd.next", "perfd.nope"]:
        yield "workspace/executeCommand", {"command": cmd, "arguments": [None, 2**64, {"x": []}]}
    for args in _JUNK:
        yield "workspace/executeCommand", {"command": "perfd.status", "arguments": args}
    yield "workspace/executeCommand", None
    yield "no/suchMethod", {}
    yield "$/noSuchThing", None
    rng = random.Random(seed)
    methods = _POSITIONAL + _DOCUMENT + ["textDocument/codeAction", "workspace/symbol"]
    for _ in range(n_random):
        method = rng.choice(methods)
        params: Message = {"textDocument": rng.choice([doc, {"uri": rng.choice(_JUNK)}, rng.choice(_JUNK)]),
                           "position": {"line": rng.choice(_HUGE + [0, 1, 3]),
                                        "character": rng.choice(_HUGE + [0, 1, 7, rng.choice(_JUNK)])},
                           "range": rng.choice(ranges), "context": rng.choice([{"diagnostics": []}, None, 5]),
                           "query": rng.choice(_JUNK + ["@", "API"])}
        for key in list(params):
            if rng.random() < 0.15:
                del params[key]
        yield method, params


def hostile_notifications(uri: str) -> Iterator[tuple[str, object]]:
    """Notifications with garbage: no answer is due, but the server must keep serving."""
    doc = {"uri": uri, "version": 2}
    yield "textDocument/didChange", {"textDocument": doc, "contentChanges": [
        {"range": {"start": {"line": 99, "character": 5}, "end": {"line": -3, "character": 2**40}}, "text": "x"}]}
    yield "textDocument/didChange", {"textDocument": doc, "contentChanges": [
        {"range": {"start": {"line": 2, "character": 10**9}, "end": {"line": 1, "character": 0}}, "text": "y"}]}
    yield "textDocument/didChange", {"textDocument": doc, "contentChanges": None}
    yield "textDocument/didChange", None
    yield "textDocument/didOpen", {"textDocument": {"uri": 5}}
    yield "textDocument/didClose", None
    yield "textDocument/didSave", {"textDocument": None}
    yield "$/cancelRequest", {"id": None}
    yield "$/cancelRequest", None
    yield "window/workDoneProgress/cancel", {"token": None}


class RawLSP:
    """Content-Length framed JSON-RPC over a subprocess's pipes; reads with a deadline, never blocks forever."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        import tempfile

        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks on it
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=env, cwd=cwd)
        self._buf = b""
        self.next_id = 0

    def send(self, method: str, params: object, *, request: bool = True, ident: object = None) -> object:
        msg: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None or method != "exit":
            msg["params"] = params
        if request:
            if ident is None:
                self.next_id += 1
                ident = self.next_id
            msg["id"] = ident
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return ident

    def read(self, deadline: float) -> Message | None:
        """The next message, or None at the deadline."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            head_end = self._buf.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in self._buf[:head_end].split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(self._buf) >= head_end + 4 + length:
                    body = self._buf[head_end + 4:head_end + 4 + length]
                    self._buf = self._buf[head_end + 4 + length:]
                    out: Message = json.loads(body)
                    return out
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                import os

                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EOFError("the server closed its output")
                self._buf += chunk

    def answers(self, ids: set[object], timeout_s: float) -> dict[object, Message]:
        """The responses to `ids` (server requests and notifications are skipped; a server request is
        answered with null so the server is not left waiting)."""
        got: dict[object, Message] = {}
        deadline = time.monotonic() + timeout_s
        while set(got) != ids:
            msg = self.read(deadline)
            if msg is None:
                break
            if "method" in msg:
                if "id" in msg:  # a request from the server (a refresh): answer it
                    body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": None}).encode()
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                    self.proc.stdin.flush()
                continue
            if msg.get("id") in ids:
                got[msg["id"]] = msg
        return got

    def drive(self, cases: list[tuple[str, object]], *, batch: int = 16,
              timeout_s: float = 5.0) -> tuple[dict[object, tuple[str, object]], dict[object, Message]]:
        """Send `cases` as requests, `batch` at a time (a pipe's buffer is not unbounded), and collect the
        answers: (what each id asked, what came back for each id answered)."""
        asked: dict[object, tuple[str, object]] = {}
        got: dict[object, Message] = {}
        for start in range(0, len(cases), batch):
            ids = set()
            for method, params in cases[start:start + batch]:
                ident = self.send(method, params)
                asked[ident] = (method, params)
                ids.add(ident)
            got.update(self.answers(ids, timeout_s))
        return asked, got

    def close(self) -> str:
        """Shut down, and the server's stderr."""
        try:
            ident = self.send("shutdown", None)
            self.answers({ident}, 10)
            self.send("exit", None, request=False)
            self.proc.wait(timeout=10)
        except (OSError, EOFError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        self._stderr.close()
        return text
