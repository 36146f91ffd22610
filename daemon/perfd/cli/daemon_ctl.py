"""`perfd daemon start|stop|status|restart|logs`, and helpers tests and benchmarks share.

Auto-start itself lives in perfd.cli.client.ensure_daemon (import-light, used by
the thin client); this module adds the management commands on top.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from perfd.cli.autostart import _alive, _read_pid, ensure_daemon, try_connect
from perfd.cli.client import state_paths
from perfd.wire.ipc import Connection

__all__ = ["state_paths", "ensure_daemon", "request", "start", "stop", "status", "restart", "logs"]


def request(root: str, method: str, params: Any = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call to root's running daemon (no auto-start); the response object, or None."""
    paths = state_paths(os.path.realpath(root))
    try:
        with Connection(paths["sock"], timeout) as c:
            return c.call(method, params)
    except OSError:
        return None


def start(root: str) -> tuple[int, str]:
    root = os.path.realpath(root)
    s = ensure_daemon(root)
    if s is None:
        return 1, f"perfd: the daemon for {root} did not start (see {state_paths(root)['log']})\n"
    s.close()
    info = request(root, "ping")
    pid = info["result"]["pid"] if info and "result" in info else "?"
    return 0, f"perfd daemon running for {root} (pid {pid})\n"


def stop(root: str, timeout: float = 5.0) -> tuple[int, str]:
    root = os.path.realpath(root)
    paths = state_paths(root)
    pid = _read_pid(paths["pid"])
    resp = request(root, "shutdown", timeout=timeout)
    if resp is not None and "result" in resp:
        pid = resp["result"]["pid"]
    elif pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
    else:
        return 0, f"perfd: no daemon running for {root}\n"
    end = time.monotonic() + timeout
    while pid and _alive(pid) and time.monotonic() < end:
        time.sleep(0.01)
    if pid and _alive(pid):
        return 1, f"perfd: daemon pid {pid} did not stop within {timeout:g} s\n"
    return 0, f"perfd: stopped the daemon for {root} (pid {pid})\n"


def status(root: str) -> tuple[int, str]:
    root = os.path.realpath(root)
    resp = request(root, "ping", timeout=2.0)
    if resp is None or "result" not in resp:
        return 1, f"perfd: no daemon running for {root}\n"
    r = resp["result"]
    return 0, (f"perfd daemon {r['version']} running for {r['root']} (pid {r['pid']}, up {r['uptime_s']:.1f} s)\n"
               f"socket: {state_paths(root)['sock']}\n")


def restart(root: str) -> tuple[int, str]:
    code, msg = stop(root)
    if code:
        return code, msg
    code2, msg2 = start(root)
    return code2, msg + msg2


def logs(root: str, lines: int = 50) -> tuple[int, str]:
    path = state_paths(os.path.realpath(root))["log"]
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-lines:]
    except FileNotFoundError:
        return 1, f"perfd: no log yet at {path}\n"
    return 0, "".join(tail)


def running(root: str) -> bool:
    s = try_connect(state_paths(os.path.realpath(root)), timeout=1.0)
    if s is None:
        return False
    s.close()
    return True
