"""The opt-in `/metrics` endpoint: `[daemon] metrics_addr` serves `perfd stats --prometheus` over HTTP.

Read-only and secret-free (the same text `perfd stats --prometheus` prints:
counters, no prompts, no keys, no paths). Loopback unless the user names another
address. A deliberately small HTTP/1.1 server: one GET per connection, a
bounded request head read under a per-client deadline, a small cap on
connections at once, so a slow or hostile scraper can neither stall the daemon
nor grow its memory.

Any local user can connect, so the cap must not be something a few slow clients
can hold: when it is reached, a new connection takes the slot of the connection
that has waited longest without sending its request head (a scraper sends its
head at once; only a slow client is ever waiting). A client that reconnects as
soon as it is dropped only drops another slow client. Only when every slot is
answering a request is a new connection refused (503).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable

import anyio
import anyio.abc

log = logging.getLogger("perfd.daemon")

DEFAULT_HOST = "127.0.0.1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEAD = 8192  # bytes of request line and headers read at most
HEAD_DEADLINE_S = 2.0  # a client has this long from its connection to send its request head
SEND_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 8


class AddressError(ValueError):
    """metrics_addr is not HOST:PORT."""


def parse_addr(text: object) -> tuple[str, int]:
    """`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`, or `:9464` / `9464` (loopback) as (host, port)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise AddressError(f"metrics_addr must be a string HOST:PORT, got {text!r}")
    raw = text.strip()
    if raw.startswith("["):
        host, sep, port = raw[1:].partition("]:")
        if not sep:
            raise AddressError(f"metrics_addr {raw!r} is not [IPV6]:PORT")
    elif raw.count(":") > 1:
        raise AddressError(f"metrics_addr {raw!r}: write an IPv6 address in brackets, [::1]:9464")
    elif ":" in raw:
        host, _, port = raw.rpartition(":")
    else:
        host, port = "", raw
    host = host or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"metrics_addr {raw!r}: the port must be a number from 1 to 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise AddressError(f"metrics_addr {raw!r}: {host!r} is not an IP address (or localhost)") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _response(status: str, body: bytes, *, content_type: str = "text/plain; charset=utf-8", head: bool = False,
              extra: str = "") -> bytes:
    headers = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
               f"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n")
    return headers.encode("ascii") + (b"" if head else body)


async def _read_head(stream: anyio.abc.ByteStream) -> bytes | None:
    """The request head, or None when it is too large or the client left (the caller bounds the time)."""
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        if len(buf) > MAX_HEAD:
            return None
        try:
            chunk = await stream.receive(4096)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return buf or None
        buf += chunk
    return buf


def answer(head: bytes | None, render: Callable[[], str]) -> bytes:
    """The response to one request head (a pure function: the tests call it directly too)."""
    if head is None:
        return _response("400 Bad Request", b"bad request\n")
    line = head.split(b"\n", 1)[0].strip()
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response("400 Bad Request", b"bad request\n")
    method, target = parts[0], parts[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _response("405 Method Not Allowed", b"only GET\n", extra="Allow: GET, HEAD\r\n")
    if target != b"/metrics":
        return _response("404 Not Found", b"perfd serves /metrics only\n", head=method == b"HEAD")
    return _response("200 OK", render().encode("utf-8"), content_type=CONTENT_TYPE, head=method == b"HEAD")


class Slots:
    """Connections being served (at most `limit`), and those still waiting for their head, oldest first."""

    def __init__(self, limit: int = MAX_CONNECTIONS) -> None:
        self.limit = limit
        self.holding: set[int] = set()
        self.waiting: OrderedDict[int, anyio.CancelScope] = OrderedDict()
        self.dropped = 0  # slow clients dropped to make room
        self.refused = 0  # connections refused with every slot answering

    def take(self, ident: int, scope: anyio.CancelScope) -> bool:
        """A slot for a new connection: a free one, or the one of the longest-waiting slow client."""
        if len(self.holding) >= self.limit:
            if not self.waiting:
                self.refused += 1
                return False
            oldest, its_scope = self.waiting.popitem(last=False)
            its_scope.cancel()  # its slot is free from now: it only closes its socket
            self.holding.discard(oldest)
            self.dropped += 1
        self.holding.add(ident)
        self.waiting[ident] = scope
        return True

    def headed(self, ident: int) -> bool:
        """The connection sent its head (or gave up): False when it was dropped meanwhile."""
        self.waiting.pop(ident, None)
        return ident in self.holding

    def release(self, ident: int) -> None:
        self.waiting.pop(ident, None)
        self.holding.discard(ident)


async def serve(listener: anyio.abc.Listener[anyio.abc.SocketStream], render: Callable[[], str],
                slots: Slots | None = None) -> None:
    """Answer scrapes on `listener` until cancelled; `render()` is the Prometheus text of the moment."""
    room = slots or Slots()
    idents = itertools.count()

    async def one(stream: anyio.abc.SocketStream) -> None:
        ident = next(idents)
        scope = anyio.CancelScope(deadline=anyio.current_time() + HEAD_DEADLINE_S)
        if not room.take(ident, scope):  # every slot answering: refuse at once rather than queue
            async with stream:
                with anyio.move_on_after(1.0):
                    await stream.send(_response("503 Service Unavailable", b"busy\n", extra="Retry-After: 1\r\n"))
            return
        try:
            async with stream:
                head: bytes | None = None
                with scope:
                    head = await _read_head(stream)
                if not room.headed(ident):
                    return  # dropped: another connection has its slot; close without a word
                if scope.cancelled_caught:
                    head = None  # the head deadline passed
                body = answer(head, render)
                with anyio.move_on_after(SEND_TIMEOUT_S):
                    await stream.send(body)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the scraper left
        except Exception:  # a bug here must not end the daemon
            log.exception("serving /metrics")
        finally:
            room.release(ident)

    async with listener:
        await listener.serve(one)
