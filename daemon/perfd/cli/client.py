"""The `perfd` command: a thin client of the per-workspace daemon.

Imported on every CLI call, so it imports only what the interpreter already
has (sys, os) and the C module `_socket`; on the slow path (starting a
daemon) also `fcntl`. No json, argparse, pathlib, re, socket, msgspec, anyio:
see ../shared/PERF-NOTES.md. A test checks sys.modules.

What it does: find the workspace root (`--root`, else walk up from cwd to
`work-space/plans/` or perfd.toml), connect to that root's daemon socket,
send the raw argv and cwd as a JSON-RPC `cli` request with `"raw": true`,
and copy the answer's stdout/stderr bytes and exit code (raw body, see
perfd.wire.ipc). No daemon: start one (single-flight under a lock file), wait up
to ~2 s, else work in-process with a one-line notice. A daemon that dies between
the connect and its answer (killed with -9) is replaced and asked once more. `--no-daemon`, no
workspace, `schema`, and every command on a system without Unix sockets
(Windows) work in-process; `lsp` is relayed (perfd.cli.relay),
`daemon start|stop|...` is perfd.cli.daemon_ctl, and `run` goes to a running
daemon (never starts one) and streams its output (perfd.cli.run_client); the
daemon calls the model with its own environment.
A daemon of another perfd version is asked to shut down and replaced.
"""

import os
import sys

if False:  # for type checkers only: importing nothing more at run time is the point of this module
    import _socket

from perfd import HELP_FLAGS, SERVED, __version__
from perfd.paths import find_workspace_root, holds_plans, is_workspace_root, settings_variables
from perfd.wire.codes import SETTINGS_CHANGED, SETTINGS_DIFFER, USER_ERROR, VERSION_MISMATCH
from perfd.wire.ipc import RAW_PREFIX, parse_raw
from perfd.wire.ipc import FrameDecoder, frame
from perfd.wire.rendezvous import (StatePaths, connect, daemon_supported, exchange, read_frame, request_body,
                                  state_paths)

_VERSION_MISMATCH = b'"code":%d' % VERSION_MISMATCH
_SETTINGS_CHANGED = b'"code":%d' % SETTINGS_CHANGED
_SETTINGS_DIFFER = b'"code":%d' % SETTINGS_DIFFER
# forward()'s answer when no daemon runs and the workspace holds no plans: answered in-process, no notice.
NO_PLANS = "the workspace holds no plans"
# A daemon that is alive but has not answered yet (a first status of a large workspace) is
# waited for up to this long; a silent socket with no daemon behind it, only 5 s.
ANSWER_WAIT_S = 600.0


def _answer(s: "_socket.socket", req: bytes, paths: StatePaths) -> bytes:
    """Send `req`; the answer, waiting past the socket's timeout while the daemon process lives.

    Giving up after 5 s and redoing the work in-process made a new daemon's first
    status of a large workspace cost the daemon's time plus the in-process time.
    """
    import time

    s.sendall(frame(req))
    dec = FrameDecoder()
    ready: list[bytes] = []
    end = time.monotonic() + ANSWER_WAIT_S
    while True:
        try:
            return read_frame(s, dec, ready)
        except TimeoutError:
            from perfd.cli.autostart import daemon_alive

            if not daemon_alive(paths) or time.monotonic() > end:
                raise


def wants_help(argv: list[str]) -> bool:
    """-h or --help anywhere before `--` (and not as --root's value)."""
    prev = ""
    for a in argv:
        if a == "--":
            return False
        if a in HELP_FLAGS and prev != "--root":
            return True
        prev = a
    return False


def _ask(root: str, paths: StatePaths, req: bytes) -> bytes | str:
    """root's daemon's answer to `req` (starting a daemon when none listens), or why there is none.

    A connection reset or closed before its answer by a daemon that died meanwhile
    (killed with -9 as we connected: see perfd.cli.autostart.daemon_gone) is made
    again once, to a new daemon: the command is worked again either way, as it would be
    in-process.
    """
    retried = False
    while True:
        s: "_socket.socket | str"
        try:
            s = connect(paths.sock, 5.0)
        except OSError:
            if not holds_plans(root):
                return NO_PLANS  # nothing a warm daemon would speed up: start none
            from perfd.cli.autostart import ensure_daemon

            s = ensure_daemon(root, paths)
            if isinstance(s, str):
                return s
        try:
            return _answer(s, req, paths)
        except OSError as exc:
            lost = "lost the daemon (%s)" % (exc.strerror or exc)
            reset = isinstance(exc, ConnectionError)  # not a timeout: a daemon alive but slow is waited for
        finally:
            s.close()
        if retried or not reset:
            return lost
        from perfd.cli.autostart import daemon_gone

        if not daemon_gone(paths):
            return lost
        retried = True


def read_line(argv: list[str], cwd: str) -> tuple[str | None, str | None, bool]:
    """(workspace root or None, command or None, no_daemon) from a raw command line.

    --root is honoured anywhere on the line, as the full parser does.
    """
    root = None
    command = None
    no_daemon = False
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        if a == "--root" and i + 1 < n:
            root = argv[i + 1]
            i += 2
            continue
        if a.startswith("--root="):
            root = a[7:]
        elif a == "--no-daemon":  # before or after the subcommand, as the parser takes it
            no_daemon = True
        elif a == "--":
            break
        elif command is None and not a.startswith("-"):
            command = a
        i += 1
    if root is not None:
        # A folder that is not a workspace root gets no daemon: in-process, the one parser says why.
        root = os.path.join(cwd, root)
        return (os.path.realpath(root) if is_workspace_root(root) else None), command, no_daemon
    found = find_workspace_root(cwd)
    return (os.path.realpath(found) if found else None), command, no_daemon


def cli_request(argv: list[str], cwd: str, root: str) -> bytes:
    """The `cli` request for this command line in the workspace `root` found for it (UnicodeEncodeError for
    arguments that are not UTF-8)."""
    return request_body("cli", {"argv": argv, "cwd": cwd, "version": __version__, "raw": True, "root": root,
                                "env": settings_variables(os.environ)})


def forward(root: str, argv: list[str], cwd: str) -> tuple[int, bytes, bytes] | str:
    """Forward a command line to root's daemon (starting one): (code, stdout, stderr), or why it could not answer."""
    try:
        req = cli_request(argv, cwd, root)
    except UnicodeEncodeError:
        return "arguments are not valid UTF-8"
    try:
        paths = state_paths(root)
    except OSError as exc:  # an untrusted runtime folder (perfd.paths.UnsafeFolder), or none can be made
        return str(exc) if exc.strerror is None else "%s: %s" % (exc.filename or "runtime folder", exc.strerror)
    for attempt in (0, 1):
        body = _ask(root, paths, req)
        if isinstance(body, str):
            return body
        if body[:4] == RAW_PREFIX:
            return parse_raw(body)
        if (_VERSION_MISMATCH in body or _SETTINGS_CHANGED in body) and attempt == 0:
            # Another version, or settings that shape the daemon changed: it stops; a new one answers.
            from perfd.cli.autostart import shutdown_old

            shutdown_old(paths)
            continue
        if _SETTINGS_DIFFER in body:
            return "your PERFD_* settings differ from the daemon's ([workspace] or [cache])"
        return "daemon error: " + body[:200].decode("utf-8", "replace")
    return "the daemon was replaced, and its successor refused too"


def _in_process(argv: list[str], cwd: str) -> int:
    from perfd.app.commands import run
    from perfd.cli.daemon_ctl import fetch_stats

    tty = sys.stdout.isatty()
    out = run(argv, cwd, stats_for=fetch_stats, tty=tty)
    if out.stdout:
        if tty and not _json(argv):
            from perfd.safetext import answer_text

            sys.stdout.write(answer_text(out.stdout))  # a plan's text on a terminal: lines and tabs, no escapes
        else:
            sys.stdout.write(out.stdout)
    if out.stderr:
        sys.stderr.write(out.stderr)
    return out.code


def complete(argv: list[str], cwd: str) -> int:
    """`perfd __complete plans|achievements @PLAN [--root DIR]`: the words the shell completion scripts
    (perfd.app.completion) offer, one a line: the running daemon's (never starting one), else this
    process's. Never an error: a shell shows nothing rather than a message."""
    root, _, _ = read_line(argv, cwd)
    kind = argv[0] if argv else ""
    plan = argv[1] if kind == "achievements" and len(argv) > 1 and argv[1].startswith("@") else None
    if root is None or kind not in ("plans", "achievements") or (kind == "achievements" and plan is None):
        return 0
    words: list[str] | None = None
    if daemon_supported():
        # `names`: the words alone (a whole `status --json` is about 376 KB at 1,500 plans)
        params: dict[str, object] = {"cwd": cwd, "env": settings_variables(os.environ)}
        if plan:
            params["plan"] = plan
        try:
            s = connect(state_paths(root).sock, 2.0)
            try:
                body = exchange(s, request_body("names", params))
            finally:
                s.close()
            words = _names(body, kind)
        except (OSError, UnicodeEncodeError):
            pass  # no daemon (or not one that answers now): in-process
    from perfd.app.completion import completion_words, shell_words

    if words is None:
        from perfd.app.commands import run

        out_ = run(["status", "--json"] + ([plan] if plan else []), cwd, root=root)
        words = completion_words(kind, out_.stdout if out_.code == 0 else "")
    else:
        words = shell_words(words, plans=kind == "plans")
    if words:
        sys.stdout.write("\n".join(words) + "\n")
    return 0


def _names(body: bytes, kind: str) -> list[str] | None:
    """The words of a `names` answer; [] for a plan the daemon does not know (USER_ERROR: in-process would
    offer nothing either); None when it did not answer them (another version, other settings): in-process."""
    import json

    try:
        got = json.loads(body)
    except ValueError:
        return None
    result = got.get("result") if isinstance(got, dict) else None
    if isinstance(result, dict):
        words = result.get("plans" if kind == "plans" else "achievements")
        return [str(w) for w in words] if isinstance(words, list) else None
    error = got.get("error") if isinstance(got, dict) else None
    if isinstance(error, dict) and error.get("code") == USER_ERROR:
        return []
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    cwd = os.getcwd()
    if argv[:1] == ["__complete"]:
        return complete(argv[1:], cwd)
    root, command, no_daemon = read_line(argv, cwd)
    if wants_help(argv):
        # Help is printed by the one parser, in this process: it starts, relays or serves nothing.
        return _in_process(argv, cwd)
    if command == "daemon":
        if not daemon_supported():
            sys.stderr.write("perfd: no daemon on this system: it needs Unix sockets and fork, which Windows does not"
                             " have; every command works in-process, and editors use `perfd lsp --standalone`\n")
            from perfd.exitcodes import ERROR  # only on this path: the warm call imports no more

            return ERROR
        if _foreground(argv):
            from perfd.daemon.server import main as serve

            if root is None:
                sys.stderr.write("perfd: no PLAN workspace at or above %s\nhint: pass --root DIR\n" % cwd)
                from perfd.exitcodes import USAGE

                return USAGE
            return serve(root)
        from perfd.cli.daemon_ctl import main as control

        return control(argv, cwd)
    if command == "lsp":
        from perfd.cli.relay import main as lsp_main

        return lsp_main(list(argv), root, no_daemon)
    if command == "mcp":
        from perfd.agent.cli import main as mcp_main

        return mcp_main(list(argv), cwd, forward)
    if command == "run":
        from perfd.cli.run_client import main as run_main

        return run_main(list(argv), cwd, root, no_daemon)
    if no_daemon or root is None or SERVED.get(command or "") == "local" or not daemon_supported() \
            or (command == "stats" and "--history" in argv):
        # In-process: as if --no-daemon where this system has no daemon (Windows); the history
        # is a file to read, which needs no daemon.
        return _in_process(argv, cwd)
    got = forward(root, argv, cwd)
    if got is NO_PLANS:
        return _in_process(argv, cwd)
    if isinstance(got, str):
        sys.stderr.write("perfd: %s; working in-process\n" % got)
        return _in_process(argv, cwd)
    code, out, err = got
    if out and sys.stdout.isatty() and not _json(argv) and unsafe_on_terminal(out):
        from perfd.safetext import answer_text  # only now: the warm call imports nothing more

        out = answer_text(out.decode("utf-8", "surrogateescape")).encode("utf-8")
    if out:
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    if err:
        sys.stderr.flush()
        sys.stderr.buffer.write(err)
        sys.stderr.buffer.flush()
    return code


# What a terminal would act on, as literals (nothing computed when the thin client loads): C0 controls
# but tab and line feed, and DEL, as bytes; C1 controls and bidi overrides, looked for once decoded.
_TERMINAL_CONTROLS = (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f")
_TERMINAL_WIDE = ("\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
                  "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # C1 controls and bidi overrides


def unsafe_on_terminal(data: bytes) -> bool:
    """Whether an answer holds a byte sequence safetext.answer_text would escape (a control, a bidi
    override, a byte that is not UTF-8). A byte scan without `re`: the warm call stays as light as it was."""
    if len(data.translate(None, _TERMINAL_CONTROLS)) != len(data):
        return True
    if data.isascii():
        return False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return any(ch in text for ch in _TERMINAL_WIDE)  # 41 scans of a str: a fifth of a loop over its bytes


def _json(argv: list[str]) -> bool:
    """JSON output goes out as it is, terminal or not (its encoder escapes every C0 control)."""
    return (any(a.startswith("--js") for a in argv)  # --json, or a prefix argparse takes for it
            or "--format=json" in argv or ("json" in argv and "--format" in argv))


def _foreground(argv: list[str]) -> bool:
    """`perfd daemon run [--root R]`: serve in this process (bare `perfd daemon` prints its usage)."""
    rest = argv[argv.index("daemon") + 1:]
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--root":
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a == "run"
    return False


if __name__ == "__main__":
    sys.exit(main())
