"""`perfd daemon start|stop|status|restart|logs`: managing a workspace's daemon from the command line.

Auto-start itself is perfd.cli.autostart.ensure_daemon (import-light, used by
the thin client on every call); this module adds the management commands,
and `fetch_stats`, which the in-process `perfd stats` uses to ask the daemon.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from perfd import exitcodes
from perfd.cli.autostart import alive, daemon_alive, ensure_daemon, read_pid
from perfd.paths import UnsafeFolder
from perfd.wire.rendezvous import Connection, clear_start_failure, daemon_supported, state_paths

if TYPE_CHECKING:
    from perfd.wire.protocol import StatsSnapshot

__all__ = ["request", "start", "stop", "status", "restart", "logs", "fetch_stats", "main"]


def request(root: str, method: str, params: Any = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call to root's running daemon (no auto-start); the response object, or None."""
    if not daemon_supported():
        return None  # no daemon on this system (Windows): nothing to ask
    try:
        paths = state_paths(os.path.realpath(root))
        with Connection(paths.sock, timeout) as c:
            return c.call(method, params)
    except OSError:
        return None


def fetch_stats(root: str) -> StatsSnapshot | None:
    """The running daemon's StatsSnapshot, or None when none runs."""
    import msgspec

    from perfd.wire.protocol import StatsSnapshot

    resp = request(root, "stats")
    if not (isinstance(resp, dict) and "result" in resp):
        return None
    return msgspec.convert(resp["result"], StatsSnapshot)


def start(root: str) -> tuple[int, str]:
    root = os.path.realpath(root)
    paths = state_paths(root)
    clear_start_failure(paths)  # asked for explicitly: try again, even if a start failed moments ago
    s = ensure_daemon(root, paths)
    if isinstance(s, str):
        return exitcodes.ERROR, f"perfd: the daemon for {root} did not start: {s} (see {paths.log})\n"
    s.close()
    info = request(root, "ping")
    pid = info["result"]["pid"] if info and "result" in info else "?"
    code, metrics = _metrics(root)
    return code, f"perfd daemon running for {root} (pid {pid})\n" + metrics


def _metrics(root: str) -> tuple[int, str]:
    """The /metrics endpoint's line: where it serves, or (exit 1: a configuration error) why it does not.
    The daemon serves its socket either way."""
    from perfd.settings.resolve import load
    from perfd.settings.sources import SettingsError

    try:
        wanted = load(root).daemon.metrics_addr is not None
    except SettingsError:
        wanted = False
    if not wanted:
        return exitcodes.OK, ""
    snap = fetch_stats(root)
    for _ in range(40):  # the endpoint starts beside the socket: give it a moment
        if snap is None or snap.metrics_addr is not None or snap.metrics_error is not None:
            break
        time.sleep(0.025)
        snap = fetch_stats(root)
    if snap is None or (snap.metrics_addr is None and snap.metrics_error is None):
        return exitcodes.OK, ""
    if snap.metrics_error is not None:
        return exitcodes.ERROR, f"perfd: /metrics not served: {snap.metrics_error}\n"
    return exitcodes.OK, f"metrics: http://{snap.metrics_addr}/metrics\n"


def stop(root: str, timeout: float = 5.0) -> tuple[int, str]:
    root = os.path.realpath(root)
    paths = state_paths(root)
    pid = read_pid(paths.pid)
    resp = request(root, "shutdown", timeout=timeout)
    if resp is not None and "result" in resp:
        pid = resp["result"]["pid"]
    elif pid and daemon_alive(paths):  # never a process that got the pid of a dead daemon
        os.kill(pid, signal.SIGTERM)
    else:
        return exitcodes.OK, f"perfd: no daemon running for {root}\n"
    end = time.monotonic() + timeout
    while pid and alive(pid) and time.monotonic() < end:
        time.sleep(0.01)
    if pid and alive(pid):
        return exitcodes.ERROR, f"perfd: daemon pid {pid} did not stop within {timeout:g} s\n"
    return exitcodes.OK, f"perfd: stopped the daemon for {root} (pid {pid})\n"


def status(root: str, *, as_json: bool = False) -> tuple[int, str]:
    """Whether root's daemon runs, and the settings it answers with (model, its server's host, the plans
    folder, a digest of every setting, what waits for `perfd trust`); `as_json`: that, as one JSON object."""
    root = os.path.realpath(root)
    resp = request(root, "ping", timeout=2.0)
    if resp is None or "result" not in resp:
        paths = state_paths(root)
        pid = read_pid(paths.pid)
        if pid and alive(pid):  # found by its pid file: alive, but not reachable on its socket
            return exitcodes.ERROR, (f"perfd: daemon pid {pid} runs for {root} but does not answer on {paths.sock} "
                       f"(perfd daemon stop ends it)\n")
        return exitcodes.ERROR, f"perfd: no daemon running for {root}\n"
    r = resp["result"]
    if as_json:
        import json

        return exitcodes.OK, json.dumps({**r, "socket": state_paths(root).sock}, sort_keys=True) + "\n"
    _, metrics = _metrics(root)  # running is exit 0, with or without /metrics
    from perfd.safetext import shown

    model = r.get("model") or ""
    lines = [f"perfd daemon {r['version']} running for {r['root']} (pid {r['pid']}, up {r['uptime_s']:.1f} s)",
             f"socket: {state_paths(root).sock}",
             f"model: {shown(model)} at {shown(r.get('model_host') or '')}" if model else "model: none configured",
             f"plans: {shown(r.get('plans_dir') or '')}",
             f"settings: {r.get('settings') or '?'} (perfd config shows each and where it comes from)"]
    if r.get("waiting_for_trust"):
        lines.append("waiting for `perfd trust`: " + shown(", ".join(r["waiting_for_trust"])))
    if r.get("settings_error"):
        lines.append("settings error: " + shown(r["settings_error"]))
    return exitcodes.OK, "\n".join(lines) + "\n" + metrics


def restart(root: str) -> tuple[int, str]:
    code, msg = stop(root)
    if code:
        return code, msg
    code2, msg2 = start(root)
    return code2, msg + msg2


def logs(root: str, lines: int = 50) -> tuple[int, str]:
    path = state_paths(os.path.realpath(root)).log
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-lines:]
    except FileNotFoundError:
        return exitcodes.ERROR, f"perfd: no log yet at {path}\n"
    return exitcodes.OK, "".join(tail)


def main(argv: list[str], cwd: str) -> int:
    """`perfd daemon ACTION`: parsed by the one command-line parser, answered here."""
    from perfd.app.commands import Output, command_help, parse, resolve_root, user_error_output
    from perfd.engine.errors import UserError

    parsed = parse(argv)
    if isinstance(parsed, Output):
        out = parsed
    elif parsed.action is None:  # bare `perfd daemon`: what it can do, and nothing started
        out = Output(stderr=command_help("daemon"), code=exitcodes.USAGE)
    else:
        try:
            root = resolve_root(parsed.root, cwd)
        except UserError as exc:
            out = user_error_output(exc)
        else:
            action = parsed.action
            try:
                if action == "logs":
                    code, text = logs(root, parsed.lines)
                elif action == "status":
                    code, text = status(root, as_json=parsed.json)
                else:
                    code, text = {"start": start, "stop": stop, "restart": restart}[action](root)
            except UnsafeFolder as exc:
                code, text = exitcodes.ERROR, f"perfd: {exc}\n"  # one line, never a traceback
            out = Output(stdout=text, code=code) if code == 0 else Output(stderr=text, code=code)
    sys.stdout.write(out.stdout)
    sys.stderr.write(out.stderr)
    return out.code
