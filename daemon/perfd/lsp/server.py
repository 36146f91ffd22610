"""perfd's language server: a factory that builds one pygls session over a shared engine.

The session (perfd.lsp.state) holds the documents and the server; each handler
module registers its own handlers on it: perfd.lsp.handlers (the LSP features),
perfd.lsp.commands and perfd.lsp.run (the perfd.* commands). Handlers are plain
functions of (session, params) that call perfd.lsp.features.

One factory call per editor connection, each with its own protocol object
(perfd.lsp.pygls_adapter), so one editor leaving never takes the others down.
"""

from __future__ import annotations

from collections.abc import Callable

from perfd.engine.engine import Engine
from perfd.lsp import commands, handlers, run
from perfd.lsp.state import ModelFor, Session
from perfd.runtime import heap
from perfd.wire.protocol import StatsSnapshot

COMMANDS = ("perfd.generateNext", "perfd.generate", "perfd.status", "perfd.stats", "perfd.clearCache", "perfd.run",
            "perfd.createSubplan", "perfd.openFile", "perfd.writeAnswer", "perfd.models")


def build_server(engine: Engine, *, stats: Callable[[], StatsSnapshot] | None = None,
                 watch: bool = False, llm: ModelFor | None = None) -> Session:
    """A new session (server + state) over `engine`, with every feature registered.

    `watch`: start a file watcher when the client is initialized (standalone mode).
    `llm`: returns the model client for perfd.run (the daemon passes its shared
    one); without it the session creates its own from the workspace config.
    """
    s = Session(engine, stats, llm)
    handlers.register(s, watch=watch)
    commands.register(s)
    run.register(s)
    return s


def run_stdio(root: str) -> None:
    """`perfd lsp --standalone`: everything in this process, over stdin/stdout."""
    import sys

    session = build_server(Engine(root), watch=True)
    heap.settle()  # see perfd.runtime.heap: keeps collector pauses out of request latency
    proto = session.protocol
    # Alone in its process, a session's exit is the process's exit (as the LSP spec asks).
    proto.on_exit = lambda: sys.exit(0 if proto.shutdown_requested else 1)
    session.server.start_io()
