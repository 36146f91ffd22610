"""`--help` on any command prints help and starts nothing that outlives it: no daemon, no relay, no server.

Driven through the real CLI for every command of the registry (and each
`daemon` action), in a workspace whose runtime folder is the test's own.
"""

from __future__ import annotations

import os

import pytest
from conftest import Env

from perfd import command_registry as registry
from perfd import exitcodes

LINES = [[c.name, "--help"] for c in registry.COMMANDS] + [
    ["daemon", a, "--help"] for a in registry.BY_NAME["daemon"].actions] + [
    ["lsp", "--standalone", "-h"], ["--help"], ["-h", "run", "--parallel"]]


@pytest.mark.slow
@pytest.mark.parametrize("argv", LINES, ids=[" ".join(a) for a in LINES])
def test_help_prints_and_starts_nothing(env: Env, argv: list[str]) -> None:
    r = env.cli(*argv, timeout=30)
    assert r.returncode == exitcodes.OK, r.stderr
    before = argv[:min(argv.index(h) for h in ("-h", "--help") if h in argv)]
    name = next((a for a in before if not a.startswith("-")), "")  # help of the level -h was given at
    assert r.stdout.startswith("usage: perfd" + (f" {name}" if name else "")), r.stdout[:200]
    assert r.stderr == ""
    assert env.daemon_pids() == []
    assert not os.path.exists(env.paths().sock) and not env.pid()
