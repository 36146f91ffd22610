"""`perfd lsp`: the editor's stdio, relayed to the workspace's daemon.

The editor starts `perfd lsp`; this process connects to the daemon (starting
it if needed, as the CLI does), asks for an `lsp` session with one framed
JSON-RPC request, and then copies bytes both ways until either side closes.
So every editor window and the CLI share one engine, one cache and one set of
stats. `--standalone` (or `--no-daemon`, or a daemon that cannot start) runs
the language server in this process instead.

The relay itself is a byte pump over select(): no parsing of LSP messages,
so it adds one copy per direction and no per-message work.
"""

from __future__ import annotations

import _socket
import os
import select
import sys

from perfd import __version__
from perfd.wire.rendezvous import daemon_supported, exchange, request_body, state_paths


def _upgrade(sock: _socket.socket) -> bool:
    try:
        reply = exchange(sock, request_body("lsp", {"version": __version__}))
    except OSError:
        return False
    return b'"lsp":true' in reply


def pump(s: _socket.socket, stdin_fd: int, stdout_fd: int) -> None:
    """Copy stdin -> socket and socket -> stdout until either side ends."""
    s.settimeout(None)
    sfd = s.fileno()
    open_in = True
    while True:
        rlist = [sfd] + ([stdin_fd] if open_in else [])
        ready, _, _ = select.select(rlist, [], [])
        if sfd in ready:
            data = s.recv(65536)
            if not data:
                return  # the daemon ended the session (after `exit`) or went away
            view = memoryview(data)
            while view:
                view = view[os.write(stdout_fd, view):]
        if open_in and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            if not data:
                open_in = False  # the editor closed our stdin: let the daemon finish
                try:
                    s.shutdown(1)  # SHUT_WR
                except OSError:
                    return
                continue
            s.sendall(data)


def main(argv: list[str], root: str | None, no_daemon: bool) -> int:
    # Without Unix sockets (Windows) the editor's `perfd lsp` is the standalone server, silently.
    standalone = no_daemon or "--standalone" in argv or not daemon_supported()
    cwd = os.getcwd()
    if root is None:
        root = cwd
    if not standalone:
        from perfd.cli.autostart import ensure_daemon, shutdown_old

        why = "the daemon is of another version"
        try:
            paths = state_paths(root)
        except OSError as exc:  # an untrusted runtime folder: say so, serve in-process
            why = str(exc)
        else:
            for attempt in (0, 1):
                sock = ensure_daemon(root, paths)
                if isinstance(sock, str):
                    why = sock
                    break
                if _upgrade(sock):
                    try:
                        pump(sock, sys.stdin.fileno(), sys.stdout.fileno())
                    finally:
                        sock.close()
                    return 0
                sock.close()
                if attempt == 0:
                    shutdown_old(paths)  # a daemon of another version: replace it
        sys.stderr.write(f"perfd: no daemon could serve the language server ({why}); running it in-process\n")
    # Imported only here: a relay needs none of pygls (the daemon hosts the session).
    from perfd.daemon.codecache import import_cached

    import_cached("perfd.lsp.server").run_stdio(root)
    return 0
