"""A daemon warms up on start, keeps what it parsed across restarts, and trusts its watcher while it runs."""

from __future__ import annotations

import os
import socket
import threading
import time

import msgspec
import pytest

from conftest import Env
from perfd.cli import client
from perfd.daemon.methods import wants_every_plan
from perfd.engine.cache import parse_store
from perfd.wire.ipc import frame

pytestmark = pytest.mark.slow

PLAN = """# PLAN: Plan {n}

## 📋 Achievement Index

- Achievement 1.1: First
- Achievement 1.2: Second

## Achievements

### Achievement 1.1: First
Do it.

### Achievement 1.2: Second
Do it too.
"""


def plans(env: Env, n: int) -> None:
    for i in range(n):
        folder = os.path.join(env.root, "work-space", "plans", *(["a_group"] if i % 2 else []), f"P{i}")
        os.makedirs(os.path.join(folder, "execution", "feedbacks"), exist_ok=True)
        with open(os.path.join(folder, f"PLAN_P{i}.md"), "w") as f:
            f.write(PLAN.format(n=i))
    old = time.time() - 3600  # out of the cache's racy window
    for dirpath, dirnames, filenames in os.walk(env.root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (old, old))


def store_path(env: Env) -> str:
    log = env.paths().log
    return os.path.join(os.path.dirname(log), os.path.basename(log)[:-4] + ".parse")


def stats(env: Env) -> dict[str, object]:
    with env.connect() as c:
        result: dict[str, object] = c.call("stats")["result"]
        return result


def test_a_restarted_daemon_answers_from_the_parse_store(env: Env) -> None:
    plans(env, 8)
    first = env.cli("status")
    assert first.returncode == 0 and "working in-process" not in first.stderr, first.stderr
    env.wait_for(lambda: os.path.exists(store_path(env)), what="the parse store")
    assert os.stat(store_path(env)).st_mode & 0o777 == 0o600
    assert env.cli("daemon", "stop").returncode == 0
    again = env.cli("status")
    assert again.stdout == first.stdout
    # The status came from the answer store; a plan's prompt needs its parsed files: from the parse store.
    assert stats(env)["cache"]["persisted_hits"] == 0  # type: ignore[index]
    assert env.cli("generate", "--next", "@P3").returncode == 0
    cache = stats(env)["cache"]
    assert isinstance(cache, dict) and cache["persisted_hits"] >= 1  # PLAN_P3.md, not parsed again


def answers_path(env: Env) -> str:
    return store_path(env)[:-len(".parse")] + ".answers"


def test_a_restart_answers_from_stored_answers_while_every_input_holds(env: Env) -> None:
    plans(env, 6)
    first = env.cli("status")
    assert first.returncode == 0 and "@P5" in first.stdout, first.stderr
    assert env.cli("daemon", "stop").returncode == 0
    assert os.stat(answers_path(env)).st_mode & 0o777 == 0o600
    again = env.cli("status")
    assert again.stdout == first.stdout
    with open(env.paths().log) as f:
        assert "answers restored" in f.read()
    assert env.cli("daemon", "stop").returncode == 0
    # Changed while no daemon ran: an APPROVED file for P3's first achievement.
    fb = os.path.join(env.root, "work-space", "plans", "a_group", "P3", "execution", "feedbacks", "APPROVED_11.md")
    with open(fb, "w") as f:
        f.write("# APPROVED: Achievement 1.1\n")
    old = time.time() - 3600
    os.utime(fb, (old, old))
    changed = env.cli("status")
    assert changed.stdout != first.stdout
    line = next(ln for ln in changed.stdout.splitlines() if "@P3" in ln)
    assert "1.2" in line and "1/2" in line, changed.stdout
    assert env.cli("daemon", "stop").returncode == 0
    with open(answers_path(env), "wb") as f:
        f.write(b"\x93garbage")
    assert env.cli("status").stdout == changed.stdout
    with open(env.paths().log) as f:
        assert "answer store not used (damaged)" in f.read().replace(answers_path(env) + " ", "")


def test_a_damaged_parse_store_is_ignored_and_rewritten(env: Env) -> None:
    plans(env, 3)
    assert env.cli("status").returncode == 0
    env.wait_for(lambda: os.path.exists(store_path(env)), what="the parse store")
    assert env.cli("daemon", "stop").returncode == 0
    with open(store_path(env), "wb") as f:
        f.write(b"\x93garbage")
    os.unlink(store_path(env)[:-len(".parse")] + ".answers")  # else the status is answered without parsing
    r = env.cli("status")
    assert r.returncode == 0 and "@P2" in r.stdout
    assert stats(env)["cache"]["persisted_hits"] == 0  # type: ignore[index]
    assert env.cli("daemon", "stop").returncode == 0
    assert parse_store.load(store_path(env), root=env.root)[1] == ""
    with open(env.paths().log) as f:
        assert "not used (damaged): rebuilding it" in f.read()


def test_while_the_watcher_is_up_warm_answers_are_taken_on_its_word(env: Env) -> None:
    plans(env, 4)
    assert env.cli("status").returncode == 0
    with env.connect(timeout=10) as c:
        env.wait_for(lambda: c.call("subscribe")["result"]["watching"], what="the watcher")
        c.call("status")
        before = c.call("stats")["result"]["cache"]
        for _ in range(5):
            c.call("status")
            c.call("generate", {"plan": "@P0"})
        after = c.call("stats")["result"]["cache"]
        # Nothing in the plans folder was stat'ed: only the workspace root's own listing (plans may be kept
        # there; Workspace.watched_folders names it, but this watcher covers the plans folder), once or twice
        # a call.
        assert after["stat_checks"] - before["stat_checks"] <= 2 * 10
        assert after["trusting"] is True and after["trust_restarts"] == 1
        assert after["trusted_hits"] > before["trusted_hits"]
        text = env.cli("stats").stdout
        assert "validation: by the watcher" in text and "answers stat-checked" in text
        # approve -> next: the watcher's event drops what it touches
        assert c.call("generate", {"plan": "@P0"})["result"]["achievement"] == "1.1"
        feedbacks = os.path.join(env.root, "work-space", "plans", "P0", "execution", "feedbacks")
        with open(os.path.join(feedbacks, "APPROVED_11.md"), "w") as f:
            f.write("# APPROVED: Achievement 1.1\n")
        env.wait_for(lambda: c.call("generate", {"plan": "@P0"})["result"]["achievement"] == "1.2", timeout=5,
                     what="the next achievement after the approval")


@pytest.mark.parametrize("argv, every", [
    (["status"], True), (["--root", "/x", "status", "--json"], True), (["status", "@P1"], False),
    (["status", "work-space/plans/P1/PLAN_P1.md"], False), (["generate", "--next"], False), (["stats"], False),
])
def test_which_command_lines_wait_for_the_warm_up(argv: list[str], every: bool) -> None:
    assert wants_every_plan(argv) is every


def test_the_client_waits_for_a_slow_answer_while_the_daemon_lives(tmp_path: object) -> None:
    """A first status of a large workspace takes longer than the socket's timeout: the client waits for it
    rather than giving up and doing the whole work again in-process."""
    pid_file = os.path.join(str(tmp_path), "d.pid")
    with open(pid_file, "w") as f:
        f.write(f"{os.getpid()}\n")  # alive
    paths = type("P", (), {"pid": pid_file})()
    a, b = socket.socketpair()
    a.settimeout(0.05)

    def slow_daemon() -> None:
        b.recv(65536)
        time.sleep(0.4)
        b.sendall(frame(b'{"answer": 1}'))

    t = threading.Thread(target=slow_daemon)
    t.start()
    assert client._answer(a, b"{}", paths) == b'{"answer": 1}'  # type: ignore[arg-type]
    t.join()
    with open(pid_file, "w") as f:
        f.write("999999999\n")  # no such process: the silence is a dead daemon's
    t = threading.Thread(target=lambda: b.recv(65536))
    t.start()
    with pytest.raises(TimeoutError):
        client._answer(a, b"{}", paths)  # type: ignore[arg-type]
    t.join()
    a.close()
    b.close()
    assert msgspec.json.decode(b'{"answer": 1}') == {"answer": 1}


def test_a_symlink_loop_and_thousands_of_empty_folders_neither_hang_nor_end_the_daemon(env: Env) -> None:
    plans(env, 2)
    base = os.path.join(env.root, "work-space", "plans")
    os.symlink(os.path.join(base, "a_group"), os.path.join(base, "a_group", "loop"))
    os.symlink(base, os.path.join(base, "a_group", "up"))
    for i in range(2000):
        os.mkdir(os.path.join(base, f"empty{i:04d}"))
    r = env.cli("status", timeout=60)
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    assert "@P0" in r.stdout and "@P1" in r.stdout and "Traceback" not in r.stderr
    with env.connect(timeout=30) as c:
        env.wait_for(lambda: c.call("subscribe")["result"]["watching"], timeout=30, what="the watcher")
        assert c.call("ping")["result"]["pong"] is True


def test_a_new_daemon_works_out_many_plans_whole_over_workers(env: Env) -> None:
    plans(env, 60)  # more than PARALLEL_MIN_PLANS: the warm-up hands the workers whole plans
    for i in range(0, 60, 3):
        folder = os.path.join(env.root, "work-space", "plans", *(["a_group"] if i % 2 else []), f"P{i}")
        os.makedirs(os.path.join(folder, "subplans"), exist_ok=True)
        with open(os.path.join(folder, "subplans", f"SUBPLAN_P{i}_11.md"), "w") as f:
            f.write("# SUBPLAN: Achievement 1.1\n\n**Status**: ✅ Complete\n")
    old = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(env.root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (old, old))
    one = dict(env.environ, PERFD_PARSE_WORKERS="1")
    here = env.cli("--no-daemon", "status", env=one)
    two = dict(env.environ, PERFD_PARSE_WORKERS="2")
    got = env.cli("status", env=two)
    assert got.returncode == 0 and "working in-process" not in got.stderr, got.stderr
    assert got.stdout == here.stdout
    assert "@P59" in got.stdout

    def log() -> str:
        with open(env.paths().log) as f:
            return f.read()

    # The status is answered before the warm-up ends (it then starts the watcher): its line comes after.
    env.wait_for(lambda: "warm-up: " in log(), what="the warm-up's log line")
    assert "warm-up: 61 plans, 81 files parsed" in log(), log()  # 61 PLANs (the fixture's too), 20 SUBPLANs
