"""`perfd run` from the command line: through the workspace's running daemon, else in-process.

Through the daemon the model is called with the DAEMON's environment (its
shared client, pool, rate limit and cache); the caller's PERFD_LLM_*
variables and API key are never sent. When the daemon has no model or no
key, the run falls back to this process (with a notice when this
environment has what the daemon lacks). A run never starts a daemon.

The run falls back to this process only when the daemon never accepted it
(nothing listens, it refused the request before calling the model: no
model, another version, a request it could not read). Once the daemon has
accepted a run it may have called the model, so any later failure is
reported in one line and never repeated here: a model call is never paid
twice, nor an answer printed or written twice. Ctrl-C ends the run with
exitcodes.INTERRUPTED and one line (the daemon cancels its call when the connection closes).

Import-light like the thin client: the engine is imported only when the run
happens in this process.
"""

from __future__ import annotations

import os
import sys

from perfd import __version__, exitcodes
from perfd.wire.codes import (INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NO_MODEL, PARSE_ERROR, TOO_BUSY,
                              USER_ERROR, VERSION_MISMATCH)
from perfd.wire.rendezvous import Connection, daemon_supported, request_body, state_paths

# Errors the daemon answers before it calls the model: the run may then go in-process.
# (USER_ERROR, the [llm] configuration the daemon could not load, is said once and ends the
# run: in-process it would only be reported a second time. Plan and argument errors come
# back as a RunResult, printed like any run.)
NOT_ACCEPTED = frozenset({NO_MODEL, VERSION_MISMATCH, PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND,
                          INVALID_PARAMS, TOO_BUSY})


def main(argv: list[str], cwd: str, root: str | None, no_daemon: bool) -> int:
    tty = sys.stderr.isatty()
    try:
        if not no_daemon and root is not None and daemon_supported():
            got = via_daemon(argv, cwd, root, tty=tty)
            if isinstance(got, int):
                return got
            if got:
                sys.stderr.write(f"perfd: {got}; running in-process\n")
        from perfd.app.run_render import main as run_here

        return run_here(argv, cwd, out=sys.stdout, err=sys.stderr, tty=tty)
    except KeyboardInterrupt:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        sys.stderr.write(("\n" if tty else "") + "perfd: interrupted; the model call was cancelled\n")
        return exitcodes.INTERRUPTED


def via_daemon(argv: list[str], cwd: str, root: str, *, tty: bool = False) -> int | str | None:
    """The exit code of a run through the daemon; else why not (str: say so; None: fall back quietly)."""
    import json

    try:
        sock = state_paths(root).sock
    except OSError as exc:  # an untrusted runtime folder (perfd.paths.UnsafeFolder)
        return str(exc)
    try:
        conn = Connection(sock, 2.0)
    except OSError:
        return None  # no daemon: in-process as before
    out, err = sys.stdout, sys.stderr
    sent = False
    with conn:
        try:
            conn.sock.settimeout(None)  # a model call may take minutes
            body = request_body("run", {"argv": list(argv), "cwd": cwd, "version": __version__, "tty": tty})
            conn.send_body(body)
            sent = True
            while True:
                msg = json.loads(conn.recv_body())
                if not isinstance(msg, dict):
                    continue
                if msg.get("method") == "runChunk":
                    params = msg.get("params") or {}
                    target = err if params.get("stream") == "err" else out
                    target.write(params.get("text", ""))
                    target.flush()
                    continue
                if msg.get("id") != 1:
                    continue
                if "result" in msg:
                    return int(msg["result"]["code"])
                error = msg.get("error") or {}
                if error.get("code") == NO_MODEL:
                    key = (error.get("data") or {}).get("api_key_env")
                    mine = (key and os.environ.get(key, "").strip()) or any(
                        k.startswith("PERFD_LLM_") for k in os.environ)
                    return f"{error.get('message')} (it reads its own environment)" if mine else None
                if error.get("code") == VERSION_MISMATCH:
                    return "the daemon runs another perfd version"
                if error.get("code") == USER_ERROR:
                    # The workspace's own mistake (a typo in perfd.toml, ...): running here would
                    # only report it a second time. Say it once, as the in-process run would.
                    hint = (error.get("data") or {}).get("hint")
                    err.write(f"perfd: {error.get('message')}\n" + (f"hint: {hint}\n" if hint else ""))
                    return exitcodes.ERROR
                if error.get("code") in NOT_ACCEPTED:
                    return f"daemon error: {error.get('message')}"
                # Accepted, then failed: the model may have been called already. Never again here.
                err.write(f"perfd: the daemon failed the run: {error.get('message')}\n")
                return exitcodes.MODEL
        except UnicodeEncodeError:
            return "arguments are not valid UTF-8"
        except (OSError, ValueError) as exc:
            if sent:  # the daemon may have called the model: running again here could pay twice
                err.write(f"perfd: lost the daemon during the run ({exc}); not repeating it here\n")
                return exitcodes.MODEL
            return f"lost the daemon ({exc})"
