"""The /metrics endpoint's pure parts: addresses and answers (the daemon test scrapes a real one)."""

from __future__ import annotations

import pytest

from collections.abc import Callable

from perfd.daemon.metrics_http import AddressError, Slots, answer, is_loopback, parse_addr, serve


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


# --- under abuse: slow clients at four times the cap, reconnecting as soon as dropped -------------


def _serve_in_thread(render: Callable[[], str], slots: Slots) -> tuple[int, Callable[[], None]]:
    import threading

    import anyio

    ready = threading.Event()
    port: list[int] = []
    stop = threading.Event()

    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port.append(listener.extra(anyio.abc.SocketAttribute.local_port))
        ready.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve, listener, render, slots)
            while not stop.is_set():
                await anyio.sleep(0.02)
            tg.cancel_scope.cancel()

    thread = threading.Thread(target=anyio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)

    def close() -> None:
        stop.set()
        thread.join(10)

    return port[0], close


@pytest.mark.parametrize("how", ["silent", "trickle"])
def test_scrapes_are_answered_beside_slow_clients_at_four_times_the_cap(how: str) -> None:
    import socket
    import threading
    import time
    import urllib.request

    slots = Slots()
    port, close = _serve_in_thread(lambda: "perfd_up 1\n", slots)
    stop = threading.Event()
    held = [0]

    def slow_client() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    held[0] += 1
                    if how == "trickle":  # one byte of a head now and then, never the end of it
                        s.settimeout(0.2)
                        for b in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"x" * 4000:
                            if stop.is_set():
                                return
                            try:
                                s.sendall(bytes([b]))
                                if s.recv(100) == b"":
                                    break  # dropped: reconnect at once
                            except TimeoutError:
                                continue
                            except OSError:
                                break
                    else:
                        while not stop.is_set() and s.recv(100):  # until dropped or answered
                            pass
            except OSError:
                pass

    threads = [threading.Thread(target=slow_client, daemon=True) for _ in range(4 * slots.limit)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # every slot taken by slow clients
        answered = 0
        for _ in range(24):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    answered += r.status == 200 and r.read() == b"perfd_up 1\n"
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        close()
    print(f"/metrics beside {4 * slots.limit} {how} slow clients: {answered} of 24 scrapes answered; "
          f"{slots.dropped} slow connections dropped, {slots.refused} refused")
    assert held[0] > 4 * slots.limit  # the slow clients did hold connections and were dropped
    assert slots.dropped > 0
    assert answered >= 23, f"{answered} of 24 scrapes answered"


def test_a_client_that_never_sends_its_head_is_closed_at_the_deadline() -> None:
    import socket
    import time

    from perfd.daemon import metrics_http

    port, close = _serve_in_thread(lambda: "perfd_up 1\n", Slots())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            started = time.monotonic()
            reply = s.recv(100)
            waited = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 400")
        assert metrics_http.HEAD_DEADLINE_S - 0.5 < waited < metrics_http.HEAD_DEADLINE_S + 3
    finally:
        close()
