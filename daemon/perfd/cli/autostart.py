"""Starting the workspace's daemon: single-flight auto-start, stale-socket recovery, version replacement.

The slow path of the thin client, kept out of perfd.cli.client so that a warm
call (daemon already running) loads and compiles as little as possible: on
machines that do not write bytecode (PYTHONDONTWRITEBYTECODE) every module
the client imports is compiled from source on every call.
"""

import _socket
import os
import sys

from perfd.cli.client import START_WAIT_S, _connect, _exchange, state_paths


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _read_pid(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return 0


def _spawn(root: str, paths: dict[str, str]) -> None:
    """Start `python -m perfd daemon --root ROOT` detached (double fork, setsid, stdio to the .out log)."""
    argv = [sys.executable, "-m", "perfd", "daemon", "--root", root]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDONLY)
            out = os.open(paths["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def try_connect(paths: dict[str, str], timeout: float = 5.0) -> "_socket.socket | None":
    try:
        return _connect(paths["sock"], timeout)
    except OSError:
        return None


def ensure_daemon(root: str, paths: dict[str, str] | None = None,
                  wait_s: float = START_WAIT_S) -> "_socket.socket | None":
    """A connected socket to root's daemon, starting one if needed (single-flight); None on failure.

    Racing clients serialise on an flock of <hash>.start.lock: the first
    starts the daemon, the others find it running once they get the lock.
    A socket file is removed only when a connect fails AND the pid in the pid
    file is dead (a daemon killed with -9).
    """
    import fcntl
    import time

    if paths is None:
        paths = state_paths(root)
    s = try_connect(paths)
    if s is not None:
        return s
    deadline = time.monotonic() + wait_s + 1.0
    fd = os.open(paths["start_lock"], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.005)
        s = try_connect(paths)
        if s is not None:
            return s
        pid = _read_pid(paths["pid"])
        if not (pid and _alive(pid)):
            for key in ("sock", "pid"):
                try:
                    os.unlink(paths[key])
                except FileNotFoundError:
                    pass
            _spawn(root, paths)
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            s = try_connect(paths)
            if s is not None:
                return s
            time.sleep(0.005)
        return None
    finally:
        os.close(fd)  # releases the flock


def _shutdown_old(paths: dict[str, str]) -> None:
    """Ask a daemon of another version to stop, and wait (bounded) for it to exit."""
    import time

    s = try_connect(paths)
    if s is None:
        return
    try:
        body = _exchange(s, b'{"jsonrpc":"2.0","id":1,"method":"shutdown"}')
    except OSError:
        body = b""
    finally:
        s.close()
    i = body.find(b'"pid":')
    pid = 0
    if i >= 0:
        j = i + 6
        while j < len(body) and body[j:j + 1].isdigit():
            j += 1
        pid = int(body[i + 6:j] or b"0")
    end = time.monotonic() + 2.0
    while pid and _alive(pid) and time.monotonic() < end:
        time.sleep(0.005)
