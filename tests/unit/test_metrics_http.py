"""The /metrics endpoint's pure parts: addresses and answers (the daemon test scrapes a real one)."""

from __future__ import annotations

import pytest

from perfd.daemon.metrics_http import AddressError, answer, is_loopback, parse_addr


@pytest.mark.parametrize("text, want", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), (":9464", ("127.0.0.1", 9464)), ("9464", ("127.0.0.1", 9464)),
    ("[::1]:9464", ("::1", 9464)), ("localhost:80", ("localhost", 80)), ("0.0.0.0:9464", ("0.0.0.0", 9464)),
    (9464, ("127.0.0.1", 9464)),
])
def test_addresses(text: object, want: tuple[str, int]) -> None:
    assert parse_addr(text) == want


@pytest.mark.parametrize("text", ["", "not an address", "host:", "127.0.0.1:0", "127.0.0.1:70000", "::1:9464",
                                  "example.com:9464", "[::1]9464", True, 1.5, None])
def test_bad_addresses_are_one_clear_line(text: object) -> None:
    with pytest.raises(AddressError) as info:
        parse_addr(text)
    assert "metrics_addr" in str(info.value) and "\n" not in str(info.value)


def test_loopback_by_default_only() -> None:
    assert is_loopback(parse_addr(":1")[0]) and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")


def test_answers() -> None:
    def render() -> str:
        return "perfd_up 1\n"

    ok = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", render)
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and b"version=0.0.4" in ok and ok.endswith(b"\r\n\r\nperfd_up 1\n")
    assert b"Content-Length: 11\r\n" in ok
    head = answer(b"HEAD /metrics?x=1 HTTP/1.1\r\n\r\n", render)
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    assert answer(b"GET / HTTP/1.1\r\n\r\n", render).startswith(b"HTTP/1.1 404")
    assert answer(b"POST /metrics HTTP/1.1\r\n\r\n", render).startswith(b"HTTP/1.1 405")
    assert answer(b"garbage\r\n\r\n", render).startswith(b"HTTP/1.1 400")
    assert answer(None, render).startswith(b"HTTP/1.1 400")
