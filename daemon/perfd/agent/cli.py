"""`perfd mcp [--root DIR] [--no-daemon]`: parse the line with the one parser, then serve (perfd.agent.mcp_server).

Kept apart from the server so that a missing SDK is one line naming the extra to install, not a traceback.
"""

from __future__ import annotations

import sys

from perfd import exitcodes
from perfd.agent.answers import Forward


def main(argv: list[str], cwd: str, forward: Forward | None) -> int:
    from perfd.app.commands import Output, parse

    args = parse(argv)
    if isinstance(args, Output):  # --help, or a usage error
        sys.stdout.write(args.stdout)
        sys.stderr.write(args.stderr)
        return args.code
    try:
        from perfd.agent.mcp_server import serve
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        sys.stderr.write("perfd: `perfd mcp` needs the MCP Python SDK: pip install 'perfd[mcp]'\n")
        return exitcodes.ERROR
    from perfd.wire.rendezvous import daemon_supported

    try:
        serve(args.root, cwd, forward if not args.no_daemon and daemon_supported() else None)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    return exitcodes.OK
