"""Framing of the perfd socket protocol: the one implementation both sides use.

Every message, both ways, is

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

Imported by the thin client on every call, so it imports nothing (no struct,
socket or msgspec: int.to_bytes does the header).
"""


MAX_FRAME = 1 << 20
RAW_PREFIX = b"RAW "


class FrameTooLarge(ValueError):
    def __init__(self, length: int) -> None:
        super().__init__(f"frame of {length} bytes exceeds {MAX_FRAME}")
        self.length = length


def frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise FrameTooLarge(len(body))
    return len(body).to_bytes(4, "big") + body


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
            n = int.from_bytes(buf[pos:pos + 4], "big")
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
