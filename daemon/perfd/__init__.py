"""perfd: a warm daemon that answers "what is next, and what do I tell the model?".

This module is imported by the thin CLI client on every call, so it must stay
empty of imports: see ../shared/PERF-NOTES.md.
"""

__version__ = "0.1.0"

# Where each command is served, in the order help lists them: "daemon" (answered by perfd.app.commands,
# through the workspace's daemon when one can run), "local" (only in the caller's process), "own" (its
# own entry point in the client). The command registry (perfd.command_registry) builds everything else
# from this; it lives here because the thin client reads it on every call, and this module is loaded
# already: one more module would cost the call about 0.2 ms (PERF-NOTES.md).
SERVED = {
    "generate": "daemon", "status": "daemon", "run": "own", "lsp": "own", "mcp": "own", "stats": "daemon", "config": "local",
    "trust": "local", "doctor": "local", "init": "local", "new": "local", "completion": "local", "schema": "local", "daemon": "own",
}
HELP_FLAGS = ("-h", "--help")
