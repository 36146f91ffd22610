"""Where a workspace's daemon lives, and how a client reaches it: paths, connect, one exchange.

Shared by the thin client, auto-start, daemon control, the LSP relay, the
`run` client and the daemon itself, so that "which socket serves this root"
and "what a request looks like" are written once. Imported on every CLI call:
it imports only os (and the C module `_socket` when connecting); requests are
written by a tiny JSON encoder (tests check it against msgspec's).
"""


import os

from perfd.paths import replace_private, runtime_dir, state_dir
from perfd.wire.ipc import FrameDecoder, frame

if False:  # for type checkers only: importing nothing more at run time is the point of this module
    import _socket

START_WAIT_S = 2.0


class StatePaths:
    """The files of one root's daemon: socket, pid, lock, start lock, log, captured output."""

    __slots__ = ("sock", "pid", "lock", "start_lock", "log", "out", "failed")

    def __init__(self, sock: str, pid: str, lock: str, start_lock: str, log: str, out: str, failed: str) -> None:
        self.sock = sock
        self.pid = pid
        self.lock = lock
        self.start_lock = start_lock
        self.log = log
        self.out = out
        self.failed = failed  # why the last start failed, when it failed for a reason that lasts


# A start that failed for a lasting reason (a read-only state folder, a socket
# path that cannot be bound) is not tried again for this long: clients say why
# at once instead of each waiting START_WAIT_S for a daemon that cannot come.
START_FAILURE_TTL_S = 30.0


def record_start_failure(paths: StatePaths, reason: str) -> None:
    """The daemon could not start, for `reason` (one line): remember it for START_FAILURE_TTL_S."""
    try:
        replace_private(paths.failed, reason.encode("utf-8", "backslashreplace")[:500])
    except OSError:
        pass


def start_failure(paths: StatePaths, *, since: float = 0.0) -> str | None:
    """The reason of a recent failed start (recorded at or after `since`, a time.time()), or None."""
    import time

    try:
        st = os.lstat(paths.failed)
        if st.st_mtime < max(since, time.time() - START_FAILURE_TTL_S) or st.st_uid != os.getuid():
            return None
        fd = os.open(paths.failed, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            data = os.read(fd, 600)
        finally:
            os.close(fd)
    except OSError:
        return None
    return data.decode("utf-8", "replace").strip() or None


def clear_start_failure(paths: StatePaths) -> None:
    try:
        os.unlink(paths.failed)
    except OSError:
        pass


def root_hash(root: str) -> str:
    """16 hex digits of FNV-1a 64 over the root's real path: names the socket, pid and lock files."""
    h = 0xCBF29CE484222325
    for b in root.encode("utf-8", "surrogateescape"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def state_paths(root: str) -> StatePaths:
    """The daemon files of `root` (a real path)."""
    h = root_hash(root)
    base = os.path.join(runtime_dir(), h)
    sd = state_dir()
    return StatePaths(sock=base + ".sock", pid=base + ".pid", lock=base + ".lock",
                      start_lock=base + ".start.lock", log=os.path.join(sd, h + ".log"),
                      out=os.path.join(sd, h + ".out"), failed=base + ".failed")


def daemon_supported() -> bool:
    """Whether this system can start and reach a daemon: Unix sockets and fork (Windows has neither)."""
    import _socket

    return hasattr(_socket, "AF_UNIX") and hasattr(os, "fork")


def connect(path: str, timeout: float | None) -> "_socket.socket":
    """A blocking Unix-socket connection (OSError when nothing listens, or no Unix sockets here)."""
    import _socket

    family = getattr(_socket, "AF_UNIX", None)
    if family is None:
        import errno

        raise OSError(errno.EAFNOSUPPORT, "no Unix sockets on this system")
    s = _socket.socket(family, _socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return s


def read_frame(s: "_socket.socket", dec: FrameDecoder, ready: list[bytes]) -> bytes:
    """The next body from `s`, keeping any further complete bodies in `ready`."""
    while not ready:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("daemon closed the connection")
        ready.extend(dec.feed(chunk))
    return ready.pop(0)


def exchange(s: "_socket.socket", body: bytes) -> bytes:
    """Send one framed body and return the first framed body that comes back."""
    s.sendall(frame(body))
    return read_frame(s, FrameDecoder(), [])


def json_value(v: object) -> str:
    """JSON text for str, int, bool, None, lists and str-keyed dicts of them.

    A str with a lone surrogate raises UnicodeEncodeError (callers then work in-process).
    """
    if isinstance(v, str):
        v.encode("utf-8")
        out = ['"']
        for ch in v:
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif ch < " ":
                out.append("\\u%04x" % ord(ch))
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v == v and v not in (float("inf"), float("-inf")):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(json_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json_value(k) + ":" + json_value(x) for k, x in v.items()) + "}"
    raise TypeError(f"cannot encode {type(v).__name__} as JSON here")


def request_body(method: str, params: object = None, id: int = 1) -> bytes:
    """One JSON-RPC 2.0 request, as bytes: the only place a client writes one."""
    body = '{"jsonrpc":"2.0","id":%d,"method":%s' % (id, json_value(method))
    if params is not None:
        body += ',"params":' + json_value(params)
    return (body + "}").encode("utf-8")


class Connection:
    """A blocking connection to a daemon, for daemon control, the `run` client, tests and benchmarks."""

    def __init__(self, path: str, timeout: float | None = 5.0) -> None:
        self.sock = connect(path, timeout)
        self._dec = FrameDecoder()
        self._ready: list[bytes] = []
        self._next_id = 0

    def send_body(self, body: bytes) -> None:
        self.sock.sendall(frame(body))

    def recv_body(self) -> bytes:
        return read_frame(self.sock, self._dec, self._ready)

    def recv(self) -> object:
        import msgspec

        return msgspec.json.decode(self.recv_body())

    def call(self, method: str, params: object = None) -> dict[str, object]:
        """Send a request; return the whole response object (result or error)."""
        self._next_id += 1
        self.send_body(request_body(method, params, self._next_id))
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and msg.get("id") == self._next_id:
                return msg

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
