"""LSP benchmark: server-side latency of documentSymbol, codeLens, hover, full diagnostics and
didChange -> publishDiagnostics, on the largest fixture plan and a synthetic 10,000-line plan.

Run: python tests/bench/bench_lsp.py [--rounds N]

Server-side means the whole of the session's work for one message, as the
daemon runs it: the JSON-RPC body is decoded and structured by pygls as its
reader does, the handler runs, and the answer (the response, or the
publishDiagnostics it triggers, with any stats) is serialised into a byte
sink. Only the socket is left out. All cases are interleaved round by round,
so every documentSymbol and codeLens follows an edit (a new version of the
buffer); p50/p95 are over every sample.
"""

from __future__ import annotations

import argparse
import json
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

from perfd.runtime import heap  # noqa: E402
from perfd.engine.engine import Engine  # noqa: E402
from perfd.lsp.server import build_server  # noqa: E402
from stdio_lsp import StdioLSP  # noqa: E402
from synthetic import FIXTURES, LARGEST, plan_of_lines, write_workspace  # noqa: E402


class Sink:
    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)
        self.writes += 1

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


def wire(proto, method: str, params: object, *, request: bool = True):  # type: ignore[no-untyped-def]
    """A function that hands pygls one message body, as its reader would; it returns once the answer is out."""
    ids = [0]
    sink = proto.writer

    def send() -> None:
        msg: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            ids[0] += 1
            msg["id"] = ids[0]
        body = json.dumps(msg).encode()
        before = sink.writes
        proto.handle_message(json.loads(body, object_hook=proto.structure_message))
        assert sink.writes > before, f"{method}: nothing was sent"  # the answer went out synchronously

    return send


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
        proto = s.server.protocol
        ident = {"uri": uri}
        lines = text.split("\n")
        hover_line = next(i for i, ln in enumerate(lines) if "Achievement" in ln and ln.startswith("- "))
        pos = {"line": hover_line, "character": lines[hover_line].index("Achievement") + 2}
        version = [1]

        def did_change(proto=proto, uri=uri, version=version) -> None:  # type: ignore[no-untyped-def]
            # An incremental edit of one character, as typing does: pygls applies it to
            # the buffer, the handler re-parses and publishes the plan's full diagnostics.
            version[0] += 1
            wire(proto, "textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version[0]},
                "contentChanges": [{"range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}},
                                    "text": "x" if version[0] % 2 else ""}]}, request=False)()
            # (the edit alternates inserting and deleting one character, so the plan stays the same size)

        cases += [
            (label, "documentSymbol", wire(proto, "textDocument/documentSymbol", {"textDocument": ident})),
            (label, "codeLens", wire(proto, "textDocument/codeLens", {"textDocument": ident})),
            (label, "hover", wire(proto, "textDocument/hover", {"textDocument": ident, "position": pos})),
            (label, "full diagnostics", lambda s=s, uri=uri: s.publish(uri)),
            (label, "didChange -> publishDiagnostics", did_change),
        ]
    samples: dict[tuple[str, str], list[float]] = {(a, b): [] for a, b, _ in cases}
    for _, _, fn in cases:
        fn()  # warm
    heap.settle()  # as the daemon's housekeeping does within a second of start (see perfd.runtime.heap)
    for _ in range(args.rounds):
        for label, name, fn in cases:
            t = time.perf_counter()
            fn()
            samples[(label, name)].append((time.perf_counter() - t) * 1000)

    print(f"perfd LSP benchmark: server-side latency (JSON in, bytes out), {args.rounds} interleaved rounds")
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
