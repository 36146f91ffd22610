"""`perfd run` from the command line: through the workspace's running daemon, else in-process.

Through the daemon the model is called on the daemon's shared client (pool,
rate limit and cache) for the caller's settings: its PERFD_* variables go
with the request, its API key never does (the daemon reads keys from its own
environment). When the daemon has no model or no
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
from typing import TYPE_CHECKING, TextIO

from perfd import __version__, exitcodes
from perfd.wire.codes import (INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NO_MODEL, PARSE_ERROR,
                              SETTINGS_CHANGED, SETTINGS_DIFFER, TOO_BUSY,
                              USER_ERROR, VERSION_MISMATCH)
from perfd.paths import settings_variables
from perfd.wire.rendezvous import Connection, daemon_supported, request_body, state_paths

if TYPE_CHECKING:
    from perfd.safetext import TerminalText

# Errors the daemon answers before it calls the model: the run may then go in-process.
# (USER_ERROR, the [llm] configuration the daemon could not load, is said once and ends the
# run: in-process it would only be reported a second time. Plan and argument errors come
# back as a RunResult, printed like any run.)
NOT_ACCEPTED = frozenset({NO_MODEL, VERSION_MISMATCH, PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND,
                          INVALID_PARAMS, TOO_BUSY, SETTINGS_CHANGED, SETTINGS_DIFFER})


def main(argv: list[str], cwd: str, root: str | None, no_daemon: bool) -> int:
    tty = sys.stderr.isatty()
    out: TextIO | TerminalText = sys.stdout
    if not any(a.startswith("--js") for a in argv) and sys.stdout.isatty():  # piped or --json: as it is
        from perfd.safetext import TerminalText

        out = TerminalText(sys.stdout)  # on a terminal: lines and tabs, never an escape sequence
    try:
        if not no_daemon and root is not None and daemon_supported():
            got = via_daemon(argv, cwd, root, tty=tty, out=out)
            if isinstance(got, int):
                return got
            if got:
                sys.stderr.write(f"perfd: {got}; running in-process\n")
        from perfd.app.run_render import main as run_here

        return run_here(argv, cwd, out=out, err=sys.stderr, tty=tty)
    except KeyboardInterrupt:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        sys.stderr.write(("\n" if tty else "") + "perfd: interrupted; the model call was cancelled\n")
        return exitcodes.INTERRUPTED


def via_daemon(argv: list[str], cwd: str, root: str, *, tty: bool = False,
               out: TextIO | TerminalText | None = None) -> int | str | None:
    """The exit code of a run through the daemon; else why not (str: say so; None: fall back quietly)."""
    try:
        sock = state_paths(root).sock
    except OSError as exc:  # an untrusted runtime folder (perfd.paths.UnsafeFolder)
        return str(exc)
    try:
        conn = Connection(sock, 2.0)
    except OSError:
        return None  # no daemon: in-process as before
    stdout, err = out or sys.stdout, sys.stderr
    sent = False
    with conn:
        try:
            conn.sock.settimeout(None)  # a model call may take minutes
            body = request_body("run", {"argv": list(argv), "cwd": cwd, "version": __version__, "tty": tty,
                                        "env": settings_variables(os.environ), "root": root})
            conn.send_body(body)
            sent = True
            while True:
                msg = read_message(conn.recv_body())
                if isinstance(msg, RunChunk):
                    target = err if msg.stream == "err" else stdout
                    target.write(msg.text)
                    target.flush()
                    continue
                if isinstance(msg, RunDone):
                    return msg.code
                if msg is None:
                    continue
                if msg.code == NO_MODEL:
                    key = msg.api_key_env
                    mine = (key and os.environ.get(key, "").strip()) or any(
                        k.startswith("PERFD_LLM_") for k in os.environ)
                    return f"{msg.message} (it reads its own environment)" if mine else None
                if msg.code == VERSION_MISMATCH:
                    return "the daemon runs another perfd version"
                if msg.code == USER_ERROR:
                    # The workspace's own mistake (a typo in perfd.toml, ...): running here would
                    # only report it a second time. Say it once, as the in-process run would.
                    hint = msg.hint
                    hint_lines = hint.replace("\n", "\n      ") if hint else ""  # as user_error_output prints it
                    err.write(f"perfd: {msg.message}\n" + (f"hint: {hint_lines}\n" if hint else ""))
                    return exitcodes.ERROR
                if msg.code in NOT_ACCEPTED:
                    return f"daemon error: {msg.message}"
                # Accepted, then failed: the model may have been called already. Never again here.
                err.write(f"perfd: the daemon failed the run: {msg.message}\n")
                return exitcodes.MODEL
        except UnicodeEncodeError:
            return "arguments are not valid UTF-8"
        except (OSError, ValueError) as exc:
            if sent:  # the daemon may have called the model: running again here could pay twice
                err.write(f"perfd: lost the daemon during the run ({exc}); not repeating it here\n")
                return exitcodes.MODEL
            return f"lost the daemon ({exc})"


# -- the daemon's answer to `run`, read by its wire types ------------------------------------------
#
# perfd.wire.protocol defines these messages as msgspec Structs; importing it (msgspec, and the
# engine's and the model client's types it names) would cost this thin process several times a
# bare interpreter's start (PERF-NOTES.md). So the messages are read with json into the few
# fields of those types the client uses, under the same names; a test holds them to the Structs.


class RunChunk:
    """A `runChunk` notification's params (protocol.RunChunk)."""

    __slots__ = ("text", "stream")

    def __init__(self, text: str, stream: str) -> None:
        self.text = text
        self.stream = stream  # "out" | "err"


class RunDone:
    """The result of the `run` request (protocol.RunResult): the client needs its exit code only."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


class RunError:
    """The error answering the `run` request (protocol.ErrorObject), with the data the client reads:
    NO_MODEL's `api_key_env` and USER_ERROR's `hint` (protocol.UserErrorData)."""

    __slots__ = ("code", "message", "api_key_env", "hint")

    def __init__(self, code: object, message: object, api_key_env: str | None, hint: str | None) -> None:
        self.code = code
        self.message = message
        self.api_key_env = api_key_env
        self.hint = hint


def _object(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_message(body: bytes) -> RunChunk | RunDone | RunError | None:
    """One message of the daemon's answer to the `run` request (id 1); None for any other message.
    ValueError when the body is not JSON or a result has no integer code."""
    import json

    msg = json.loads(body)
    if not isinstance(msg, dict):
        return None
    if msg.get("method") == "runChunk":
        params = _object(msg.get("params"))
        text = params.get("text", "")
        if not isinstance(text, str):
            raise ValueError("a runChunk without text")
        return RunChunk(text, "err" if params.get("stream") == "err" else "out")
    if msg.get("id") != 1:
        return None
    if "result" in msg:
        code = _object(msg["result"]).get("code")
        if not isinstance(code, int):
            raise ValueError("a run result without an exit code")
        return RunDone(code)
    error = _object(msg.get("error"))
    data = _object(error.get("data"))
    return RunError(error.get("code"), error.get("message"), _text(data.get("api_key_env")), _text(data.get("hint")))
