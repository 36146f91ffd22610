"""Framing of the perfd socket protocol, and a small blocking client.

Framing (the only one): every message, both ways, is

    4-byte unsigned big-endian length N | N bytes of body

N is at most MAX_FRAME (1 MiB); a larger announced length is an error
(-32600) and the daemon closes that connection. A body is one JSON-RPC 2.0
object (UTF-8 JSON): a request, a response, or a notification.

One exception, asked for explicitly: a `cli` request whose params hold
`"raw": true` is answered, on success, with a raw body that the thin client
can split without a JSON parser:

    b"RAW " <code> b" " <len(stdout)> b"\\n" <stdout bytes> <stderr bytes>

(code and the length in ASCII decimal; stdout/stderr UTF-8 with
surrogateescape). An error is still a JSON-RPC error object, so a body that
starts with b"{" is JSON and one that starts with b"RAW " is raw.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import msgspec

MAX_FRAME = 1 << 20
HEADER = struct.Struct(">I")
RAW_PREFIX = b"RAW "

_encoder = msgspec.json.Encoder()


class FrameTooLarge(ValueError):
    def __init__(self, length: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds {MAX_FRAME}")
        self.length = length


def frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise FrameTooLarge(len(body))
    return HEADER.pack(len(body)) + body


def encode(msg: Any) -> bytes:
    """A message (Struct or plain data) as one frame."""
    return frame(_encoder.encode(msg))


def raw_body(code: int, stdout: str, stderr: str) -> bytes:
    out = stdout.encode("utf-8", "surrogateescape")
    err = stderr.encode("utf-8", "surrogateescape")
    return b"%s%d %d\n" % (RAW_PREFIX, code, len(out)) + out + err


def parse_raw(body: bytes) -> tuple[int, bytes, bytes]:
    head, _, rest = body.partition(b"\n")
    code, n = head[len(RAW_PREFIX):].split(b" ")
    k = int(n)
    return int(code), rest[:k], rest[k:]


class FrameDecoder:
    """Incremental decoder: feed() bytes as they arrive, get complete bodies.

    Total on any input: it returns bodies or raises FrameTooLarge (after which
    the stream cannot be resynchronised and must be closed).
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = HEADER.unpack_from(buf, pos)
            if n > MAX_FRAME:
                del buf[:pos]
                raise FrameTooLarge(n)
            if len(buf) - pos - 4 < n:
                break
            out.append(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)

    def take_rest(self) -> bytes:
        """The bytes after the last complete frame (for a connection that leaves framing, as `lsp` does)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


class Connection:
    """A blocking connection to a daemon (daemon_ctl, tests, benchmarks; not the thin client)."""

    def __init__(self, path: str, timeout: float | None = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self._dec = FrameDecoder()
        self._ready: list[bytes] = []
        self._next_id = 0

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(frame(body))

    def recv_body(self) -> bytes:
        while not self._ready:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("daemon closed the connection")
            self._ready.extend(self._dec.feed(data))
        return self._ready.pop(0)

    def recv(self) -> Any:
        return msgspec.json.decode(self.recv_body())

    def call(self, method: str, params: Any = None) -> Any:
        """Send a request; return the whole response object (result or error)."""
        self._next_id += 1
        req: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            req["params"] = params
        self.sock.sendall(encode(req))
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and msg.get("id") == self._next_id:
                return msg

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED, struct ucred)."""
    fmt = "3i"
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    pid, uid, gid = struct.unpack(fmt, data)
    return pid, uid, gid


def peer_allowed(uid: int, own_uid: int | None = None) -> bool:
    """Only the daemon's own user may talk to it."""
    return uid == (os.getuid() if own_uid is None else own_uid)
