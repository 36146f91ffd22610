"""Where an agent's questions are answered: the workspace's daemon, else this process.

A question is a perfd command line (`generate --next --json @PLAN`), so an agent
gets exactly what the CLI prints, errors included, and the daemon's warm caches
and stats count its calls as the CLI's. Without a daemon (none can start, no
Unix sockets, `--no-daemon`) one engine is kept in this process and answers
every call, validating its cache by stat.

Imports neither the MCP SDK nor anything of the daemon: the MCP adapter
(perfd.agent.mcp_server) and tests use it alike.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from perfd.engine.errors import UserError

if TYPE_CHECKING:  # the engine is loaded only to answer in this process (through the daemon, never)
    from perfd.engine.engine import Engine


# perfd.cli.client.forward, given by the client (importing it here would tie the client to this module
# both ways): a command line's (code, stdout, stderr) from root's daemon, or why none could answer.
Forward = Callable[[str, list[str], str], "tuple[int, bytes, bytes] | str"]


class Answer(NamedTuple):
    code: int
    stdout: str
    stderr: str
    by_daemon: bool = False

    @property
    def message(self) -> str:
        """The CLI's message for a failed command (its stderr, without the trailing newline)."""
        return self.stderr.strip() or f"perfd: the command failed (exit {self.code})"


class Answerer:
    """Answers command lines about one workspace root (None: no workspace was found; every answer says so
    as the CLI does)."""

    def __init__(self, root: str | None, cwd: str, forward: Forward | None) -> None:
        self.root = root
        self.cwd = cwd
        self.forward = forward  # None: answer in this process only
        self.use_daemon = forward is not None and root is not None
        self.fallback_reason = ""  # why the last call was answered in this process, when the daemon was wanted
        self._engine: Engine | None = None
        self._lock = threading.Lock()  # one in-process engine, used by one call at a time

    def answer(self, argv: list[str]) -> Answer:
        """One command line's answer (blocking: call it off the event loop)."""
        if self.root is None:
            return self._in_process(argv)
        if self.forward is not None:
            got = self.forward(self.root, argv, self.root)
            if not isinstance(got, str):
                code, out, err = got
                return Answer(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), by_daemon=True)
            self.fallback_reason = got
        return self._in_process(argv)

    def _in_process(self, argv: list[str]) -> Answer:
        from perfd.app.commands import run

        with self._lock:
            out = run(argv, self.root or self.cwd, engine_for=self._engine_for, root=self.root)
        return Answer(out.code, out.stdout, out.stderr)

    def _engine_for(self, root: str) -> Engine:
        from perfd.app.commands import engine_in_process

        if self._engine is None or self._engine.root != root:
            self._engine = engine_in_process(root)
        return self._engine


def find_root(option: str | None, cwd: str) -> tuple[str | None, Answer | None]:
    """The workspace root from --root (checked as the CLI checks it) or the walk up from cwd: (root, None),
    (None, the CLI's error) for a bad --root, or (None, None) when there is none around cwd."""
    from perfd.app.commands import resolve_root, user_error_output
    from perfd.paths import find_workspace_root

    if option is not None:
        try:
            return os.path.realpath(resolve_root(option, cwd)), None
        except UserError as exc:
            out = user_error_output(exc)
            return None, Answer(out.code, out.stdout, out.stderr)
    found = find_workspace_root(cwd)
    return (os.path.realpath(found) if found else None), None
