"""Fuzzing the socket protocol: whatever a client sends, the daemon answers valid frames and keeps serving.

Hypothesis generates bodies over lengths, encodings (invalid UTF-8, lone
surrogates, NULs, control characters), JSON shapes (any value, deep nesting,
every field of a request with the wrong type, real method names with random
params) and framing (a length that lies, a frame split across writes). After
every case the daemon answers a real request correctly on a new connection
and its pid has not changed; on the same connection, every frame it sent back
is valid JSON (or a raw `cli` answer), no input is answered with an internal
error (-32603: a bug), and a probe request that follows the case is still answered.
The workspace holds plans whose folder names are not UTF-8 or hold a newline.

PERFD_FUZZ_EXAMPLES sets the number of cases (default 2000; the benchmark
tests/bench/bench_attack.py runs more).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Env

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("PERFD_FUZZ_EXAMPLES", "2000"))
# Every method but `shutdown` (which ends the daemon, as asked) and `lsp` (which leaves JSON-RPC).
METHODS = ["initialize", "ping", "generate", "status", "stats", "invalidate", "subscribe", "cli", "run"]
PROBE = b'{"jsonrpc":"2.0","id":"probe","method":"ping"}'


@pytest.fixture(scope="module")
def daemon() -> Iterator[tuple[Env, int]]:
    base = tempfile.mkdtemp(prefix="pf", dir="/tmp")
    env = Env(base)
    env.environ["PERFD_MAX_PENDING"] = "64"
    # A plan whose folder name is not UTF-8 and one with a control character: every answer naming them
    odd = os.path.join(env.root.encode(), b"work-space", b"plans")
    for name in (b"BAD\xff", b"NL\nX"):
        os.makedirs(os.path.join(odd, name))
        with open(os.path.join(odd, name, b"PLAN_" + name + b".md"), "w") as f:
            f.write("# PLAN: odd\n\n## Achievement Index\n\n- Achievement 1.1: One\n")
    try:
        r = env.cli("status")
        assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
        pid = int(env.wait_for(env.pid, what="pid file"))
        yield env, pid
    finally:
        env.cleanup()
        shutil.rmtree(base, ignore_errors=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    obj: dict[str, object] = {}
    if draw(st.integers(0, 9)) > 0:
        obj["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2, None]))
    if draw(st.integers(0, 9)) > 0:
        obj["method"] = draw(st.sampled_from(METHODS) | st.text(max_size=12).filter(lambda m: m != "shutdown"))
    if draw(st.integers(0, 4)) > 0:
        obj["id"] = draw(st.integers(-2**63, 2**63 - 1) | st.text(max_size=8) | st.none() | st.floats() | st.lists(st.integers(), max_size=2))
    if draw(st.booleans()):
        if obj.get("method") == "cli" and draw(st.booleans()):
            obj["params"] = {"argv": draw(st.lists(st.text(max_size=20), max_size=6)),
                             "cwd": draw(st.sampled_from(["/", "/tmp", ".", ""]) | st.text(max_size=10)),
                             "raw": draw(st.booleans())}
        else:
            obj["params"] = draw(json_values)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=2048))
    if kind == 1:  # JSON-ish with bytes that are not UTF-8 spliced in
        body = bytearray(draw(requests()))
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(body)))
            body[i:i] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\x1b[2J", b"\\ud800"]))
        return bytes(body)
    if kind == 2:  # nesting, deep or very deep
        depth = draw(st.integers(1, 20000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        inner = opener * depth + b"1" + closer * depth
        return b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + inner + b"}" if draw(st.booleans()) else inner
    if kind == 3:  # truncated
        body = draw(requests())
        return body[:draw(st.integers(0, len(body)))]
    return draw(requests())


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(bytes to send, well framed)."""
    body = draw(bodies())
    lie = draw(st.integers(0, 9))
    if lie == 0:  # a length that does not match the body
        n = draw(st.integers(0, 2**32 - 1))
        return struct.pack(">I", n) + body, False
    frames = struct.pack(">I", len(body)) + body
    if draw(st.booleans()):  # two in one write
        frames += frames
    return frames, True


def _read_frame(s: socket.socket) -> bytes | None:
    head = b""
    while len(head) < 4:
        chunk = s.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">I", head)
    assert n <= 1 << 20
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(case=cases())
def test_no_input_ends_the_daemon_or_gets_an_invalid_answer(daemon: tuple[Env, int], case: tuple[bytes, bool]) -> None:
    env, pid = daemon
    data, well_framed = case
    sock_path = env.paths().sock
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    try:
        try:
            s.sendall(data)
            if well_framed:
                s.sendall(struct.pack(">I", len(PROBE)) + PROBE)
        except (BrokenPipeError, ConnectionResetError):
            well_framed = False  # the daemon closed it (a frame over the limit): allowed
        while well_framed:
            body = _read_frame(s)
            if body is None:
                break  # closed after an error frame (too large): allowed
            if body.startswith(b"RAW "):
                continue
            msg = msgspec.json.decode(body)  # always valid JSON
            assert isinstance(msg, dict) and msg.get("jsonrpc") == "2.0"
            assert ("result" in msg) != ("error" in msg)
            if "error" in msg:  # an input is answered by what is wrong with it, never by an internal error
                assert msg["error"]["code"] != -32603, msg
            if msg.get("id") == "probe" and "result" in msg:
                break
    finally:
        s.close()
    with env.connect() as c:
        r = c.call("status", {"plan": "@FEAT"})["result"]
        assert r["plan"] == "FEAT" and r["total"] == 3 and r["next"] == "1.1"
        assert c.call("ping")["result"]["pid"] == pid
