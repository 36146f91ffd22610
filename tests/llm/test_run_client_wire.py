"""The run client reads the daemon's `run` messages without msgspec: held here to the wire's Structs.

The client (perfd.cli.run_client) stays import-light, so it reads each message with json into
the few fields it needs; these tests encode messages with perfd.wire.protocol's own types and
check that the client reads what was sent, and that every field it names is a field of them.
"""

from __future__ import annotations

import msgspec
import pytest

from perfd.cli import run_client as rc
from perfd.wire import protocol as P


def _body(msg: msgspec.Struct) -> bytes:
    return msgspec.json.encode(msg)


def test_the_client_names_only_fields_of_the_wire_types() -> None:
    assert set(rc.RunChunk.__slots__) <= set(P.RunChunk.__struct_fields__)
    assert set(rc.RunDone.__slots__) <= set(P.RunResult.__struct_fields__)
    assert {"code", "message"} <= set(P.ErrorObject.__struct_fields__)
    assert "hint" in P.UserErrorData.__struct_fields__


@pytest.mark.parametrize("stream", ["out", "err"])
def test_a_chunk_is_read_as_sent(stream: str) -> None:
    got = rc.read_message(_body(P.Notification(method="runChunk", params=P.RunChunk(text="a\nb", stream=stream))))
    assert isinstance(got, rc.RunChunk) and (got.text, got.stream) == ("a\nb", stream)


def test_the_result_gives_its_exit_code() -> None:
    result = P.RunResult(code=3, answers=[P.RunAnswer(plan="P", achievement="1", state="s", ok=False)])
    got = rc.read_message(_body(P.Response(id=1, result=result)))
    assert isinstance(got, rc.RunDone) and got.code == 3


def test_a_user_error_gives_its_message_and_hint() -> None:
    error = P.ErrorObject(code=P.USER_ERROR, message="bad plan", data=P.UserErrorData(code="unknown-plan", hint="try X"))
    got = rc.read_message(_body(P.ErrorResponse(id=1, error=error)))
    assert isinstance(got, rc.RunError)
    assert (got.code, got.message, got.hint, got.api_key_env) == (P.USER_ERROR, "bad plan", "try X", None)


def test_no_model_gives_the_key_variable() -> None:
    error = P.ErrorObject(code=P.NO_MODEL, message="no key", data={"api_key_env": "OPENAI_API_KEY"})
    got = rc.read_message(_body(P.ErrorResponse(id=1, error=error)))
    assert isinstance(got, rc.RunError) and (got.code, got.api_key_env) == (P.NO_MODEL, "OPENAI_API_KEY")


def test_other_messages_are_skipped_and_broken_ones_refused() -> None:
    assert rc.read_message(_body(P.Response(id=7, result=P.RunResult(code=0)))) is None
    assert rc.read_message(b"[1, 2]") is None
    with pytest.raises(ValueError):
        rc.read_message(b"not json")
    with pytest.raises(ValueError):
        rc.read_message(b'{"jsonrpc": "2.0", "id": 1, "result": {}}')
