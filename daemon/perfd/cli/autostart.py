"""Starting the workspace's daemon: single-flight auto-start, stale-socket recovery, version replacement.

The slow path of the thin client, kept out of perfd.cli.client so that a warm
call (daemon already running) loads and compiles as little as possible: on
machines that do not write bytecode (PYTHONDONTWRITEBYTECODE) every module
the client imports is compiled from source on every call.
"""

import _socket
import os
import sys

from perfd.paths import open_private
from perfd.wire.rendezvous import (START_WAIT_S, StatePaths, connect, exchange, record_start_failure,
                                   request_body, start_failure, state_paths)


def alive(pid: int) -> bool:
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


def read_pid(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return 0


def _spawn(root: str, paths: StatePaths) -> None:
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
            try:
                out = open_private(paths.out, os.O_WRONLY | os.O_APPEND)
            except OSError:  # a read-only state folder: the daemon records why it cannot start
                out = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def try_connect(paths: StatePaths, timeout: float = 5.0) -> "_socket.socket | None":
    try:
        return connect(paths.sock, timeout)
    except OSError:
        return None


def ensure_daemon(root: str, paths: StatePaths | None = None,
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
    try:
        fd = open_private(paths.start_lock, os.O_RDWR)
    except OSError as exc:  # a symlink planted at its name (ELOOP), a folder we cannot write
        record_start_failure(paths, "%s: %s" % (paths.start_lock, exc.strerror or exc))
        return None
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
        pid = read_pid(paths.pid)
        spawned = time.time()
        if not (pid and alive(pid)):
            if start_failure(paths) is not None:
                return None  # it failed moments ago for a lasting reason: the caller says why
            for stale in (paths.sock, paths.pid):
                try:
                    os.unlink(stale)
                except FileNotFoundError:
                    pass
            spawned = time.time()
            _spawn(root, paths)
        end = time.monotonic() + wait_s
        n = 0
        while time.monotonic() < end:
            s = try_connect(paths)
            if s is not None:
                return s
            n += 1
            if n % 10 == 0 and start_failure(paths, since=spawned - 1) is not None:
                return None
            time.sleep(0.005)
        return None
    finally:
        os.close(fd)  # releases the flock


def shutdown_old(paths: StatePaths) -> None:
    """Ask a daemon of another version to stop, and wait (bounded) for it to exit."""
    import time

    s = try_connect(paths)
    if s is None:
        return
    try:
        body = exchange(s, request_body("shutdown"))
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
    while pid and alive(pid) and time.monotonic() < end:
        time.sleep(0.005)
