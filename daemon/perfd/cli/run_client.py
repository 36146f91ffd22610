"""`perfd run` from the command line: through the workspace's running daemon, else in-process.

Through the daemon the model is called with the DAEMON's environment (its
shared client, pool, rate limit and cache); the caller's PERFD_LLM_*
variables and API key are never sent. When the daemon has no model or no
key, the run falls back to this process (with a notice when this
environment has what the daemon lacks). A run never starts a daemon.

Import-light like the thin client: the engine is imported only when the run
happens in this process.
"""

from __future__ import annotations

import os
import sys

from perfd import __version__
from perfd.wire.codes import NO_MODEL, USER_ERROR, VERSION_MISMATCH
from perfd.wire.rendezvous import Connection, daemon_supported, request_body, state_paths

EXIT_USER, EXIT_MODEL = 1, 3


def main(argv: list[str], cwd: str, root: str | None, no_daemon: bool) -> int:
    tty = sys.stderr.isatty()
    if not no_daemon and root is not None and daemon_supported():
        got = via_daemon(argv, cwd, root, tty=tty)
        if isinstance(got, int):
            return got
        if got:
            sys.stderr.write(f"perfd: {got}; running in-process\n")
    from perfd.app.run_render import main as run_here

    return run_here(argv, cwd, out=sys.stdout, err=sys.stderr, tty=tty)


def via_daemon(argv: list[str], cwd: str, root: str, *, tty: bool = False) -> int | str | None:
    """The exit code of a run through the daemon; else why not (str: say so; None: fall back quietly)."""
    import json

    try:
        conn = Connection(state_paths(root).sock, 2.0)
    except OSError:
        return None  # no daemon: in-process as before
    out, err = sys.stdout, sys.stderr
    started = False
    with conn:
        try:
            conn.sock.settimeout(None)  # a model call may take minutes
            conn.send_body(request_body("run", {"argv": list(argv), "cwd": cwd, "version": __version__,
                                                "tty": tty}))
            while True:
                msg = json.loads(conn.recv_body())
                if not isinstance(msg, dict):
                    continue
                if msg.get("method") == "runChunk":
                    params = msg.get("params") or {}
                    target = err if params.get("stream") == "err" else out
                    started = True
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
                    return EXIT_USER
                return f"daemon error: {error.get('message')}"
        except UnicodeEncodeError:
            return "arguments are not valid UTF-8"
        except (OSError, ValueError) as exc:
            if started:  # output went out already: running again here would repeat it
                err.write(f"perfd: lost the daemon during the run ({exc})\n")
                return EXIT_MODEL
            return f"lost the daemon ({exc})"
