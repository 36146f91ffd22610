"""perfd.safetext: one escaping for every name printed, and JSON that is always valid."""

from __future__ import annotations

import json
import os

import msgspec

from perfd.safetext import encode_json, shown


def test_shown_escapes_what_would_rewrite_a_terminal_or_forge_a_line() -> None:
    assert shown("FEAT") == "FEAT"
    assert shown("ünïcödé ✅") == "ünïcödé ✅"  # printable text is left alone
    assert shown("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert shown("\x1b[31mRED\x1b[0m") == "\\e[31mRED\\e[0m"
    assert shown("\x00\x07\x7f\x9b") == "\\x00\\x07\\x7f\\x9b"
    assert shown("abc\u202edcba\u2066") == "abc\\u202edcba\\u2066"  # bidi overrides (Trojan Source)
    assert shown(os.fsdecode(b"BAD\xff\xfe")) == "BAD\\xff\\xfe"  # bytes that were not UTF-8
    assert shown("\ud800") == "\\ud800"


def test_encode_json_escapes_names_that_are_not_utf8_the_same_way() -> None:
    class S(msgspec.Struct):
        name: str
        names: list[str]

    bad = os.fsdecode(b"BAD\xff")
    out = json.loads(encode_json(S(name=bad, names=[bad, "ok\n"])))
    assert out == {"name": shown(bad), "names": [shown(bad), "ok\n"]}  # JSON keeps a newline as data
    assert encode_json({"k": "plain"}) == b'{"k":"plain"}'
