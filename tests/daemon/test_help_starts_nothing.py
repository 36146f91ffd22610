"""A command line that never surprises: `--help` anywhere prints help and starts nothing that outlives it (no
daemon, relay or server), bare `perfd daemon` prints its usage, a `--root` inside a workspace names the root,
no daemon for a workspace without plans, and a mistyped choice gets a did-you-mean.

Driven through the real CLI for every command of the registry (and each
`daemon` action), in a workspace whose runtime folder is the test's own.
"""

from __future__ import annotations

import os

import pytest
from conftest import Env

from perfd import command_registry as registry
from perfd import exitcodes

LINES = [[c.name, "--help"] for c in registry.commands()] + [
    ["daemon", a, "--help"] for a in registry.command("daemon").actions] + [
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


@pytest.mark.slow
def test_bare_daemon_prints_its_usage_and_starts_nothing(env: Env) -> None:
    r = env.cli("daemon", timeout=30)
    assert r.returncode == exitcodes.USAGE and r.stderr.startswith("usage: perfd daemon") and r.stdout == ""
    assert env.daemon_pids() == [] and not env.pid()


@pytest.mark.slow
def test_a_root_inside_the_workspace_names_the_workspace_root(env: Env) -> None:
    r = env.cli("--root", "work-space/plans", "status", timeout=30)
    assert r.returncode == exitcodes.ERROR
    assert r.stderr.splitlines() == [
        f"perfd: --root work-space/plans: not a workspace root, but inside the workspace {env.root}",
        "hint: perfd --root . ...  (the root is the folder that holds work-space/plans/)"]  # from the cwd
    r = env.cli("--root", "..", "status", cwd=os.path.join(env.root, "work-space", "plans", "FEAT"), timeout=30)
    assert r.returncode == exitcodes.ERROR and r.stderr.splitlines()[1].startswith("hint: perfd --root ../../.. ...")
    r = env.cli("--root", env.base, "status", timeout=30)
    assert r.returncode == exitcodes.ERROR and "no PLAN workspace there" in r.stderr
    assert env.daemon_pids() == [] and not env.pid()


@pytest.mark.slow
def test_no_daemon_for_a_workspace_without_plans(env: Env) -> None:
    import shutil

    shutil.rmtree(os.path.join(env.root, "work-space", "plans", "FEAT"))
    r = env.cli("status", timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"no plans under {env.root}\n", "")
    assert env.daemon_pids() == [] and not env.pid()


@pytest.mark.slow
@pytest.mark.parametrize("argv,guess", [(["stauts"], "status"), (["daemon", "stpo"], "stop"),
                                        (["completion", "bsh"], "bash"), (["genrate"], "generate")])
def test_a_mistyped_choice_gets_a_did_you_mean(env: Env, argv: list[str], guess: str) -> None:
    r = env.cli(*argv, "--no-daemon", timeout=30)
    assert r.returncode == exitcodes.USAGE and r.stderr.splitlines()[-1] == f"hint: did you mean {guess!r}?"
