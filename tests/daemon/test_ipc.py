"""Frame decoder properties (hypothesis), protocol schemas, and the thin client's pure helpers."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfd.wire import ipc
from perfd.wire import schema
from perfd.wire.ipc import MAX_FRAME, FrameDecoder, FrameTooLarge


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.lists(st.integers(min_value=1, max_value=64), max_size=50))
def test_decoder_is_total_on_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    dec = FrameDecoder()
    pos = 0
    out: list[bytes] = []
    try:
        for c in cuts + [len(data)]:
            out.extend(dec.feed(data[pos:pos + c]))
            pos += c
    except FrameTooLarge as exc:
        assert exc.length > MAX_FRAME
        return
    assert sum(4 + len(b) for b in out) + dec.pending == min(pos, len(data))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=2000), max_size=20), st.lists(st.integers(min_value=1, max_value=300), max_size=80))
def test_decoder_round_trips_any_chunking(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(ipc.frame(b) for b in bodies)
    dec = FrameDecoder()
    got: list[bytes] = []
    pos = 0
    for c in cuts:
        got.extend(dec.feed(stream[pos:pos + c]))
        pos += c
    got.extend(dec.feed(stream[pos:]))
    assert got == bodies and dec.pending == 0


def test_oversize_frame_is_refused_at_the_header() -> None:
    dec = FrameDecoder()
    head = struct.pack(">I", MAX_FRAME + 1)
    assert dec.feed(head[:2]) == []
    with pytest.raises(FrameTooLarge):
        dec.feed(head[2:])
    ok = FrameDecoder()
    assert ok.feed(struct.pack(">I", MAX_FRAME)) == [] and ok.pending == 4  # exactly 1 MiB is allowed
    with pytest.raises(FrameTooLarge):
        ipc.frame(b"x" * (MAX_FRAME + 1))


@given(st.integers(min_value=-5, max_value=300), st.text(), st.text())
def test_raw_body_round_trip(code: int, out: str, err: str) -> None:
    c, o, e = ipc.parse_raw(ipc.raw_body(code, out, err))
    assert (c, o.decode("utf-8", "surrogateescape"), e.decode("utf-8", "surrogateescape")) == (code, out, err)


@given(st.lists(st.text(), max_size=5), st.text(), st.text())
def test_thin_client_request_is_valid_json(argv: list[str], cwd: str, root: str) -> None:
    from perfd.cli.client import cli_request
    from perfd.wire.protocol import CliParams

    try:
        body = cli_request(argv, cwd, root)
    except UnicodeEncodeError:
        return  # lone surrogates: the client works in-process instead
    req = msgspec.json.decode(body)
    assert req["params"]["argv"] == argv and req["params"]["cwd"] == cwd and req["params"]["raw"] is True
    assert req["params"]["root"] == root
    assert msgspec.convert(req["params"], CliParams).root == root  # the daemon's params Struct reads it


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1), _json)
def test_the_clients_tiny_json_encoder_agrees_with_msgspec(method: str, params: object) -> None:
    """Every client request is written by rendezvous.request_body: it must be the JSON msgspec would read."""
    from perfd.wire.rendezvous import request_body

    try:
        body = request_body(method, params, 7)
    except UnicodeEncodeError:
        return  # lone surrogates: callers work in-process instead
    assert msgspec.json.decode(body) == {"jsonrpc": "2.0", "id": 7, "method": method,
                                         **({} if params is None else {"params": params})}


def test_frames_from_the_client_and_the_daemon_are_the_same_bytes() -> None:
    import struct as _struct

    body = b'{"x":1}'
    assert ipc.frame(body) == _struct.pack(">I", len(body)) + body


def test_root_hash_is_stable_and_short() -> None:
    from perfd.wire.rendezvous import root_hash

    assert root_hash("/a") == root_hash("/a") != root_hash("/b")
    assert len(root_hash("/x" * 500)) == 16


def test_schemas_are_up_to_date() -> None:
    stale = schema.stale()
    assert stale == [], f"schemas/ is out of date: run `perfd schema` ({stale})"


def test_schema_check_notices_drift(tmp_path: object) -> None:
    folder = str(tmp_path)
    schema.write(folder)
    assert schema.stale(folder) == []
    with open(f"{folder}/Request.json", "ab") as f:
        f.write(b" ")
    assert schema.stale(folder) == ["Request.json"]
