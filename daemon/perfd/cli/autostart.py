"""Starting the workspace's daemon: single-flight auto-start, stale-socket recovery, version replacement.

The slow path of the thin client, kept out of perfd.cli.client so that a warm
call (daemon already running) loads and compiles as little as possible: on
machines that do not write bytecode (PYTHONDONTWRITEBYTECODE) every module
the client imports is compiled from source on every call.
"""

import _socket
import os
import sys

from perfd.paths import SUN_PATH_MAX, open_private, socket_path_fits
from perfd.wire.rendezvous import (START_WAIT_S, StatePaths, connect, daemon_supported, exchange,
                                   record_start_failure, request_body, start_failure, state_paths)


def alive(pid: int, *, started_by: float | None = None) -> bool:
    """Whether process `pid` runs (not a zombie); with `started_by` (a time.time()), also
    whether it had started by then, so a pid the system gave again to a newer process
    (a daemon's pid file outliving a reboot or a kill -9) does not count.

    os.kill(pid, 0) answers for every system; psutil (on this slow path only) tells a
    zombie from a live process and gives the start time on Linux, macOS and the BSDs.
    """
    if pid <= 0:
        return False  # kill(0 or -1, ...) would name a process group, or every process of the user
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive, and never our daemon, whose pid file is private
    except OSError:
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_by is not None and proc.create_time() > started_by + START_TIME_SLACK_S:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but its details are hidden from us
    return True


# psutil's start time comes from the boot time (whole seconds) and clock ticks on Linux,
# so it can differ from time.time() by a little; a pid reused later than this is caught.
START_TIME_SLACK_S = 2.0


def daemon_alive(paths: StatePaths) -> bool:
    """Whether the process named in the pid file runs and had started when it wrote that file."""
    pid = read_pid(paths.pid)
    if not pid:
        return False
    try:
        written = os.stat(paths.pid).st_mtime
    except OSError:
        return False
    return alive(pid, started_by=written)


def daemon_gone(paths: StatePaths, grace_s: float = 0.05) -> bool:
    """After a connection lost before its answer: whether the daemon died (then a new one may be asked).

    A daemon killed with -9 (or by the out-of-memory killer) lets clients connect
    for a moment after it looks gone (its pid file's process is a zombie, its command line
    empty): the kernel frees the memory of a dying process before it closes its files,
    the listening socket among them, and closing that socket resets every connection
    never accepted. `grace_s` covers the last moments of such a process; a daemon that
    is alive and dropped us (a refused peer) is not asked again.
    """
    import time

    end = time.monotonic() + grace_s
    while daemon_alive(paths):
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def read_pid(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return int(f.read().strip() or b"0")
    except (OSError, ValueError):
        return 0


def _spawn(root: str, paths: StatePaths) -> None:
    """Start `python -m perfd daemon run --root ROOT` detached (double fork, setsid, stdio to the .out log)."""
    argv = [sys.executable, "-m", "perfd", "daemon", "run", "--root", root]
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


def _replace_dead(root: str, paths: StatePaths) -> float | str:
    """Remove a dead daemon's socket and pid file and start a new daemon: when (a time.time()), or why not."""
    import time

    failed = start_failure(paths)
    if failed is not None:
        return "the daemon cannot start: " + failed  # moments ago, for a lasting reason
    for stale in (paths.sock, paths.pid):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    spawned = time.time()
    _spawn(root, paths)
    return spawned


def try_connect(paths: StatePaths, timeout: float = 5.0) -> "_socket.socket | None":
    try:
        return connect(paths.sock, timeout)
    except OSError:
        return None


def cannot_serve(paths: StatePaths | None = None) -> str | None:
    """Why no daemon can serve here (then the command works in-process), or None."""
    if not daemon_supported():
        return NO_DAEMON_HERE
    limit = LINUX_SUN_PATH_MAX if sys.platform.startswith("linux") else SUN_PATH_MAX
    if paths is not None and not socket_path_fits(paths.sock, limit):
        # only a PERFD_RUNTIME_DIR set too long gets here: perfd's own choice always fits
        return "the socket path %s is too long for a Unix socket; set PERFD_RUNTIME_DIR to a shorter folder" % (
            paths.sock,)
    try:
        import fcntl  # noqa: F401  (flock: single-flight start, one daemon per root)
    except ImportError:
        return NO_DAEMON_HERE
    from perfd.daemon.peer import choose

    check = choose()
    return check if isinstance(check, str) else None


LINUX_SUN_PATH_MAX = 108
NO_DAEMON_HERE = ("this system has no Unix sockets or file locks for the daemon "
                  "(--no-daemon and `perfd lsp --standalone` work)")


def ensure_daemon(root: str, paths: StatePaths | None = None,
                  wait_s: float = START_WAIT_S) -> "_socket.socket | str":
    """A connected socket to root's daemon, starting one if needed (single-flight); else why not.

    Racing clients serialise on an flock of <hash>.start.lock: the first
    starts the daemon, the others find it running once they get the lock.
    A socket file is removed only when a connect fails AND the pid in the pid
    file is dead (a daemon killed with -9) or was given to a newer process.
    A start that failed for a lasting reason (recorded by the daemon or here)
    is said at once, not waited for again.
    """
    if paths is None:
        paths = state_paths(root)
    s = try_connect(paths)
    if s is not None:
        return s
    why = cannot_serve(paths)
    if why is not None:
        return why  # a daemon would refuse to serve: say so now rather than after a wait
    import fcntl
    import time

    deadline = time.monotonic() + wait_s + 1.0
    try:
        fd = open_private(paths.start_lock, os.O_RDWR)
    except OSError as exc:  # a symlink planted at its name (ELOOP), a folder we cannot write
        reason = "%s: %s" % (paths.start_lock, exc.strerror or exc)
        record_start_failure(paths, reason)
        return "the daemon cannot start: " + reason
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return "another client is starting the daemon, and it did not answer in time"
                time.sleep(0.005)
        s = try_connect(paths)
        if s is not None:
            return s
        spawned = time.time()
        replaced = not daemon_alive(paths)
        if replaced:
            started = _replace_dead(root, paths)
            if isinstance(started, str):
                return started
            spawned = started
        end = time.monotonic() + wait_s
        n = 0
        while time.monotonic() < end:
            s = try_connect(paths)
            if s is not None:
                return s
            n += 1
            if n % 10 == 0 and not replaced and not daemon_alive(paths):
                # Alive when we looked, yet not listening: a daemon killed with -9 closes its socket
                # a moment before its process is gone. Gone now: replace it, and wait for the new one.
                replaced = True
                started = _replace_dead(root, paths)
                if isinstance(started, str):
                    return started
                spawned = started
                end = time.monotonic() + wait_s
            elif n % 10 == 0:
                failed = start_failure(paths, since=spawned - 1)
                if failed is not None:
                    return "the daemon cannot start: " + failed
            time.sleep(0.005)
        return "no daemon answered within %.0f s" % wait_s
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
