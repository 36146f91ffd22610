"""`perfd completion bash|zsh|fish` run by the real shells against a real workspace: `@PLAN` names after
every command that takes a plan, achievement numbers after a plan, asked of the running daemon, in-process
where there is none, never starting one. A shell that is not installed is skipped (tests/setup-tools.sh
installs zsh and fish)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import PLAN, Env

pytestmark = pytest.mark.slow

PLANS = ["@FEAT", "@OTHER"]
ACHIEVEMENTS = ["1.1", "1.2", "2.1"]


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (tests/setup-tools.sh installs it)")
    return path


def setup(env: Env, shell: str) -> tuple[str, dict[str, str]]:
    """The completion script for `shell`, and an environment whose `perfd` is this checkout's."""
    d = os.path.join(env.root, "work-space", "plans", "OTHER")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "PLAN_OTHER.md"), "w") as f:
        f.write(PLAN)
    bindir = os.path.join(env.base, "bin")
    os.makedirs(bindir, exist_ok=True)
    exe = os.path.join(bindir, "perfd")
    with open(exe, "w") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" -m perfd "$@"\n')
    os.chmod(exe, os.stat(exe).st_mode | stat.S_IXUSR)
    environ = dict(env.environ, PATH=bindir + os.pathsep + env.environ.get("PATH", ""))
    script = env.cli("completion", shell, env=environ)
    assert script.returncode == 0, script.stderr
    path = os.path.join(env.base, f"completion.{shell}")
    with open(path, "w") as f:
        f.write(script.stdout)
    return path, environ


def complete(env: Env, shell: str, words: list[str], cwd: str | None = None) -> list[str]:
    """What `shell` offers for the last of `words` (the command line so far, the word being typed last)."""
    script, environ = setup(env, shell)
    if shell == "bash":
        arr = " ".join("'" + w + "'" for w in words)
        code = (f"source {script}; COMP_WORDS=({arr}); COMP_CWORD={len(words) - 1}; _perfd; "
                "printf '%s\\n' \"${COMPREPLY[@]}\"")
        argv = [need("bash"), "--norc", "-c", code]
    elif shell == "zsh":
        arr = " ".join("'" + w + "'" for w in words)
        # compadd and _files stand in for the completion system's own: what matches the word typed is printed
        code = (f"compdef() {{ :; }}; source {script}; compadd() {{ [[ $1 == -- ]] && shift; local w; "
                f"for w in \"$@\"; do [[ ${{w[1,${{#PREFIX}}]}} == \"$PREFIX\" ]] && print -r -- $w; done; }}; "
                f"_files() {{ :; }}; words=({arr}); CURRENT={len(words)}; PREFIX='{words[-1]}'; _perfd")
        argv = [need("zsh"), "-f", "-c", code]
    else:
        argv = [need("fish"), "--no-config", "-c", f"source {script}; complete -C '{' '.join(words)}'"]
    got = subprocess.run(argv, cwd=cwd or env.root, env=environ, capture_output=True, text=True, timeout=60)
    assert got.returncode in (0, 1), got.stderr
    return [w.split("\t")[0] for w in got.stdout.splitlines() if w]


def offered(got: list[str], wanted: list[str], prefix: str) -> list[str]:
    return sorted(w for w in got if w in wanted or w.startswith(prefix))


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_plans_and_achievements_in_process_start_no_daemon(env: Env, shell: str) -> None:
    need(shell)
    for cmd in ("generate", "status", "run"):
        assert offered(complete(env, shell, ["perfd", cmd, "@"]), PLANS, "@") == PLANS, cmd
    assert offered(complete(env, shell, ["perfd", "generate", "@F"]), PLANS, "@") == ["@FEAT"]
    for cmd in ("generate", "run"):
        got = complete(env, shell, ["perfd", cmd, "@FEAT", ""])
        assert [w for w in got if w[0].isdigit()] == ACHIEVEMENTS, cmd
    assert not [w for w in complete(env, shell, ["perfd", "status", "@FEAT", ""]) if w[0].isdigit()]
    # flags as before
    assert "--next" in complete(env, shell, ["perfd", "generate", "--n"])
    assert not env.pid() and not env.daemon_pids(), "completion started a daemon"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_plans_come_from_the_running_daemon(env: Env, shell: str) -> None:
    need(shell)
    start = env.cli("daemon", "start")
    assert start.returncode == 0, start.stderr
    before = json.loads(env.cli("stats", "--json").stdout)
    got = complete(env, shell, ["perfd", "--root", env.root, "generate", "@"], cwd=env.base)
    assert offered(got, PLANS, "@") == PLANS
    after = json.loads(env.cli("stats", "--json").stdout)

    def asked(s: dict[str, list[dict[str, int]]], method: str) -> int:
        return next((m["requests"] for m in s["methods"] if m["method"] == method), 0)

    # asked once, of the daemon, for the names alone (not a whole status)
    assert asked(after, "names") == asked(before, "names") + 1
    assert asked(after, "status") == asked(before, "status")
    got = complete(env, shell, ["perfd", "--root", env.root, "generate", "@FEAT", ""], cwd=env.base)
    assert [w for w in got if w[0].isdigit()] == ACHIEVEMENTS
    assert asked(json.loads(env.cli("stats", "--json").stdout), "names") == asked(after, "names") + 1


def test_outside_a_workspace_nothing_is_offered(env: Env) -> None:
    outside = os.path.join(env.base, "elsewhere")
    os.makedirs(outside)
    got = subprocess.run([sys.executable, "-m", "perfd", "__complete", "plans"], cwd=outside, env=env.environ,
                         capture_output=True, text=True, timeout=30)
    assert got.returncode == 0 and got.stdout == "" and got.stderr == ""
