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
to ~2 s, else work in-process with a one-line notice. `--no-daemon`, no
workspace, and the local commands (daemon, schema, lsp) work in-process.
`run` goes to a running daemon (never starts one) and streams its output,
see perfd.app.run.cli; the daemon calls the model with its own environment.
A daemon of another perfd version is asked to shut down and replaced.
"""

import os
import sys

if False:  # for type checkers only: importing nothing more at run time is the point of this module
    import _socket

from perfd import __version__
from perfd.paths import runtime_dir, state_dir

LOCAL_COMMANDS = ("daemon", "schema", "lsp", "run")
START_WAIT_S = 2.0
_VERSION_MISMATCH = b'"code":1002'


def root_hash(root: str) -> str:
    """16 hex digits of FNV-1a 64 over the root's real path: names the socket, pid and lock files."""
    h = 0xCBF29CE484222325
    for b in root.encode("utf-8", "surrogateescape"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def state_paths(root: str) -> dict[str, str]:
    """{sock, pid, lock, start_lock, log, out} for the daemon of `root` (a real path)."""
    h = root_hash(root)
    base = os.path.join(runtime_dir(), h)
    sd = state_dir()
    return {"sock": base + ".sock", "pid": base + ".pid", "lock": base + ".lock",
            "start_lock": base + ".start.lock", "log": os.path.join(sd, h + ".log"),
            "out": os.path.join(sd, h + ".out")}


def find_root(argv: list[str], cwd: str) -> tuple[str | None, str | None, bool]:
    """(root or None, command or None, no_daemon)."""
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
        elif a == "--no-daemon" and command is None:
            no_daemon = True
        elif command is None and not a.startswith("-"):
            command = a
        i += 1
    if root is not None:
        root = os.path.join(cwd, root)
        return (os.path.realpath(root) if os.path.isdir(root) else None), command, no_daemon
    path = os.path.abspath(cwd)
    while True:
        if os.path.isdir(os.path.join(path, "work-space", "plans")) or os.path.isfile(os.path.join(path, "perfd.toml")):
            return os.path.realpath(path), command, no_daemon
        parent = os.path.dirname(path)
        if parent == path:
            return None, command, no_daemon
        path = parent


def _js(s: str) -> str:
    """A JSON string literal (raises UnicodeEncodeError for lone surrogates: then we work in-process)."""
    s.encode("utf-8")
    out = ['"']
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " ":
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _request(argv: list[str], cwd: str) -> bytes:
    body = ('{"jsonrpc":"2.0","id":1,"method":"cli","params":{"argv":[' + ",".join(_js(a) for a in argv)
            + '],"cwd":' + _js(cwd) + ',"version":' + _js(__version__) + ',"raw":true}}')
    return body.encode("utf-8")


def _connect(path: str, timeout: float) -> "_socket.socket":
    import _socket

    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return s


def _exchange(s: "_socket.socket", body: bytes) -> bytes:
    s.sendall(len(body).to_bytes(4, "big") + body)
    buf = b""
    need = 4
    while len(buf) < need:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("daemon closed the connection")
        buf += chunk
        if need == 4 and len(buf) >= 4:
            need = 4 + int.from_bytes(buf[:4], "big")
    return buf[4:need]


def _via_daemon(root: str, argv: list[str], cwd: str) -> tuple[int, bytes, bytes] | str:
    """(code, stdout bytes, stderr bytes), or a str saying why the daemon could not answer."""
    try:
        req = _request(argv, cwd)
    except UnicodeEncodeError:
        return "arguments are not valid UTF-8"
    paths = state_paths(root)
    for attempt in (0, 1):
        s: "_socket.socket | None"
        try:
            s = _connect(paths["sock"], 5.0)
        except OSError:
            from perfd.cli.autostart import ensure_daemon

            s = ensure_daemon(root, paths)
            if s is None:
                return "no daemon answered within %.0f s" % START_WAIT_S
        try:
            body = _exchange(s, req)
        except OSError as exc:
            return "lost the daemon (%s)" % (exc.strerror or exc)
        finally:
            s.close()
        if body[:4] == b"RAW ":
            head, _, rest = body.partition(b"\n")
            code, n = head[4:].split(b" ")
            k = int(n)
            return int(code), rest[:k], rest[k:]
        if _VERSION_MISMATCH in body and attempt == 0:
            from perfd.cli.autostart import _shutdown_old

            _shutdown_old(paths)
            continue
        return "daemon error: " + body[:200].decode("utf-8", "replace")
    return "daemon version mismatch persists"


def _in_process(argv: list[str], cwd: str) -> int:
    from perfd.app.commands import run

    out = run(argv, cwd)
    if out.stdout:
        sys.stdout.write(out.stdout)
    if out.stderr:
        sys.stderr.write(out.stderr)
    return out.code


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    cwd = os.getcwd()
    root, command, no_daemon = find_root(argv, cwd)
    if command == "daemon" and _foreground(argv):
        from perfd.daemon.server import main as serve

        if root is None:
            sys.stderr.write("perfd: no PLAN workspace at or above %s\nhint: pass --root DIR\n" % cwd)
            return 2
        return serve(root)
    if command == "lsp":
        from perfd.cli.relay import main as lsp_main

        return lsp_main(list(argv), root, no_daemon)
    if command == "run":
        from perfd.app.run import cli as run_cli

        return run_cli(list(argv), cwd, root, no_daemon)
    if no_daemon or root is None or command in LOCAL_COMMANDS:
        return _in_process(argv, cwd)
    got = _via_daemon(root, argv, cwd)
    if isinstance(got, str):
        sys.stderr.write("perfd: %s; working in-process\n" % got)
        return _in_process(argv, cwd)
    code, out, err = got
    if out:
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    if err:
        sys.stderr.flush()
        sys.stderr.buffer.write(err)
        sys.stderr.buffer.flush()
    return code


def _foreground(argv: list[str]) -> bool:
    """`perfd daemon [--root R]` (no action, or `run`): serve in this process."""
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
    return True


if __name__ == "__main__":
    sys.exit(main())
