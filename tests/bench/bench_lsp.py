"""LSP benchmark: server-side latency of documentSymbol, codeLens, hover, full diagnostics and
didChange -> publishDiagnostics, on the largest fixture plan and a synthetic 10,000-line plan.

Run: python tests/bench/bench_lsp.py [--rounds N]

Server-side means inside the session, as the daemon runs it: the handler is
called through pygls's feature table with the document in pygls's workspace,
and everything it sends (diagnostics, stats) is serialised into a byte sink.
All cases are interleaved round by round; p50/p95 are over every sample.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "daemon"))
sys.path.insert(0, HERE)

from lsprotocol import types as lsp  # noqa: E402
from pygls.workspace import Workspace  # noqa: E402

from perfd.engine.engine import Engine  # noqa: E402
from perfd.lsp.server import build_server  # noqa: E402
from synthetic import FIXTURES, LARGEST, plan_of_lines, write_workspace  # noqa: E402



class Sink:
    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def close(self) -> None:
        pass


def session_for(root: str, plan_path: str):  # type: ignore[no-untyped-def]
    s = build_server(Engine(root))
    proto = s.server.protocol
    proto._workspace = Workspace("file://" + root)  # what `initialize` would set up
    proto.set_writer(Sink())
    with open(plan_path, encoding="utf-8") as f:
        text = f.read()
    uri = "file://" + plan_path
    s.server.workspace.put_text_document(lsp.TextDocumentItem(uri=uri, language_id="markdown", version=1, text=text))
    return s, uri, text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    targets = []
    fixture_plan = os.path.join(FIXTURES, "work-space", "plans", LARGEST, f"PLAN_{LARGEST}.md")
    if os.path.exists(fixture_plan):
        targets.append((f"fixture {LARGEST}", FIXTURES, fixture_plan))
    tmp = tempfile.mkdtemp(prefix="perfd-lspbench-")
    syn = write_workspace(tmp, "SYN10K", plan_of_lines(10_000))
    targets.append(("synthetic 10k lines", tmp, syn))

    cases = []
    for label, root, path in targets:
        s, uri, text = session_for(root, path)
        fm = s.server.protocol.fm.features
        ident = lsp.TextDocumentIdentifier(uri=uri)
        lines = text.split("\n")
        hover_line = next(i for i, ln in enumerate(lines) if "Achievement" in ln and ln.startswith("- "))
        pos = lsp.Position(hover_line, lines[hover_line].index("Achievement") + 2)
        version = [1]

        def did_change(s=s, uri=uri, lines=lines, version=version) -> None:  # type: ignore[no-untyped-def]
            # An incremental edit of one character, as typing does: the handler re-parses
            # the buffer and publishes the full diagnostics of the plan.
            version[0] += 1
            params = lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version[0]),
                content_changes=[lsp.TextDocumentContentChangePartial(
                    range=lsp.Range(lsp.Position(0, 2), lsp.Position(0, 2)), text="x" if version[0] % 2 else "")])
            s.server.workspace.get_text_document(uri).apply_change(params.content_changes[0])
            s.server.workspace.get_text_document(uri).version = version[0]
            fm[lsp.TEXT_DOCUMENT_DID_CHANGE](params)

        cases += [
            (label, "documentSymbol", lambda fm=fm, ident=ident: fm[lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL](
                lsp.DocumentSymbolParams(text_document=ident))),
            (label, "codeLens", lambda fm=fm, ident=ident: fm[lsp.TEXT_DOCUMENT_CODE_LENS](
                lsp.CodeLensParams(text_document=ident))),
            (label, "hover", lambda fm=fm, ident=ident, pos=pos: fm[lsp.TEXT_DOCUMENT_HOVER](
                lsp.HoverParams(text_document=ident, position=pos))),
            (label, "full diagnostics", lambda s=s, uri=uri: s.publish(uri)),
            (label, "didChange -> publishDiagnostics", did_change),
        ]
    samples: dict[tuple[str, str], list[float]] = {(a, b): [] for a, b, _ in cases}
    for _, _, fn in cases:
        fn()  # warm
    for _ in range(args.rounds):
        for label, name, fn in cases:
            t = time.perf_counter()
            fn()
            samples[(label, name)].append((time.perf_counter() - t) * 1000)

    print(f"perfd LSP benchmark: server-side latency, {args.rounds} interleaved rounds")
    print()
    hdr = f"{'plan':28} {'request':34} {'p50 ms':>8} {'p95 ms':>8} {'goal p95':>9}  verdict"
    print(hdr)
    print("-" * len(hdr))
    missed = 0
    for (label, name), xs in samples.items():
        xs.sort()
        p50 = statistics.median(xs)
        p95 = xs[int(0.95 * (len(xs) - 1))]
        goal = 20.0 if name.startswith("didChange") else 10.0
        verdict = "met" if p95 <= goal else "MISSED"
        missed += verdict == "MISSED"
        print(f"{label:28} {name:34} {p50:8.3f} {p95:8.3f} {goal:9.1f}  {verdict}")
    print()
    relay_overhead(targets[0][1], targets[0][2], rounds=max(50, args.rounds))
    print(f"goals missed: {missed}")
    return 0


class StdioLSP:
    """A minimal synchronous LSP client over a subprocess's pipes (Content-Length framing)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import subprocess

        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.next_id = 0

    def send(self, method: str, params: object, *, request: bool = True) -> object:
        import json

        msg: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            msg["id"] = self.next_id
        body = json.dumps(msg).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        if not request:
            return None
        while True:
            reply = self.read()
            if reply.get("id") == self.next_id and "method" not in reply:
                return reply.get("result")

    def read(self) -> dict[str, object]:
        import json

        assert self.proc.stdout is not None
        length = 0
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed")
            if line in (b"\r\n", b"\n"):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        out: dict[str, object] = json.loads(self.proc.stdout.read(length))
        return out

    def close(self) -> None:
        try:
            self.send("shutdown", None)
            self.send("exit", None, request=False)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def relay_overhead(root: str, plan: str, *, rounds: int) -> None:
    """documentSymbol round trips through `perfd lsp` (relay to the daemon) vs `perfd lsp --standalone`."""
    import subprocess

    base = tempfile.mkdtemp(prefix="perfd-relaybench-")
    env = dict(os.environ, PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"))
    servers = {
        "relay": StdioLSP([sys.executable, "-m", "perfd", "lsp", "--root", root], env),
        "standalone": StdioLSP([sys.executable, "-m", "perfd", "lsp", "--standalone", "--root", root], env),
    }
    uri = "file://" + plan
    with open(plan, encoding="utf-8") as f:
        text = f.read()
    try:
        for srv in servers.values():
            srv.send("initialize", {"processId": None, "rootUri": "file://" + root, "capabilities": {}})
            srv.send("initialized", {}, request=False)
            srv.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "markdown", "version": 1,
                                                               "text": text}}, request=False)
            srv.send("textDocument/documentSymbol", {"textDocument": {"uri": uri}})  # warm
        samples: dict[str, list[float]] = {k: [] for k in servers}
        for _ in range(rounds):
            for name, srv in servers.items():
                t = time.perf_counter()
                srv.send("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}})
                samples[name].append((time.perf_counter() - t) * 1000)
        med = {k: statistics.median(v) for k, v in samples.items()}
        print()
        print(f"relay overhead (hover round trip from a client process, {rounds} interleaved rounds):")
        print(f"  standalone p50 {med['standalone']:.3f} ms, through the daemon relay p50 {med['relay']:.3f} ms, "
              f"ratio {med['relay'] / med['standalone']:.2f}x, difference {med['relay'] - med['standalone']:+.3f} ms")
    finally:
        for srv in servers.values():
            srv.close()
        subprocess.run([sys.executable, "-m", "perfd", "daemon", "stop", "--root", root], env=env,
                       capture_output=True, timeout=20)


if __name__ == "__main__":
    sys.exit(main())
