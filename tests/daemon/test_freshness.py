"""Fresh answers: every answer reflects every change made before it was asked (read-your-writes).

A stale answer is one that differs from a cold answer worked out by another process right after the
write returned (freshness_oracle.py: a new Engine each time, as --no-daemon works). The trials write and
ask at once, as an agent does: create, same-size modify, rename-over and delete, through a raw socket
client and through the CLI, and the first answer after each `git checkout` of 200 plans. Then what the
watcher cannot see: folders it could not watch (a seam, and a real per-namespace watch limit where the
platform allows one), a symlinked SUBPLAN, and edits that raise no event (a hard link written from outside,
mmap, an mtime restored while the daemon was down).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="read-your-writes on Linux's inotify")

TRIALS = int(os.environ.get("PERFD_FRESHNESS_TRIALS", "200"))
ORACLE = os.path.join(os.path.dirname(__file__), "freshness_oracle.py")


def plan_text(name: str, done: tuple[str, ...] = ()) -> str:
    achs = ["1.1", "1.2", "2.1"]
    lines = [f"# PLAN: {name}", "", "**Status**: In Progress", "", "## 📋 Achievement Index", ""]
    lines += [f"- {'✅ ' if a in done else ''}Achievement {a}: Step {a}" for a in achs]
    lines += ["", "## 📋 Achievements", ""]
    for a in achs:
        lines += [f"**Achievement {a}**: Step {a}", "", f"Do step {a}.", ""]
    return "\n".join(lines)


def work_text(kind: str, number: str, status: str) -> str:
    head = "SUBPLAN" if kind == "subplan" else "EXECUTION_TASK"
    return f"# {head}: Achievement {number}\n\n**Achievement**: {number}\n**Status**: {status}\n\n## Objective\n\nDo it.\n"


def plans_dir(env: Env) -> str:
    return os.path.join(env.root, "work-space", "plans")


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def make_plans(env: Env, n: int) -> None:
    shutil.rmtree(plans_dir(env))
    for i in range(n):
        folder = os.path.join(plans_dir(env), f"P{i}")
        write(os.path.join(folder, f"PLAN_P{i}.md"), plan_text(f"P{i}"))
        write(os.path.join(folder, "subplans", f"SUBPLAN_P{i}_11.md"), work_text("subplan", "1.1", "In Progress"))
        write(os.path.join(folder, "execution", f"EXECUTION_TASK_P{i}_11_01.md"),
              work_text("execution", "1.1", "In Progress"))
        os.makedirs(os.path.join(folder, "execution", "feedbacks"))
    old = time.time() - 3600  # out of the caches' racy window: warm answers are the watcher's word
    for dirpath, dirnames, filenames in os.walk(env.root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (old, old))


class Oracle:
    """Cold answers from a process of its own (see freshness_oracle.py)."""

    def __init__(self, env: Env) -> None:
        self.root = env.root
        self.proc = subprocess.Popen([sys.executable, ORACLE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env.environ, text=True)

    def ask(self, ask: str, plan: str = "") -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"root": self.root, "ask": ask, "plan": plan}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the oracle ended"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def oracle(env: Env) -> Iterator[Oracle]:
    o = Oracle(env)
    yield o
    o.close()


def normal(ask: str, result: Any) -> Any:
    if ask == "status":
        return [[p["plan"], p["state"], p["next"], p["done"], p["total"]] for p in result["plans"]]
    return [result["achievement"], result["state"], result["prompt"], result["write_path"]]


def warm_daemon(env: Env) -> Any:
    """A daemon up, warm, and trusting its watcher (its sync on): the connection to it."""
    assert env.cli("status").returncode == 0
    c = env.connect(timeout=20)  # (not subscribed: the notifications of 200 plans would go unread)
    env.wait_for(lambda: (c.call("stats")["result"]["watcher"] or {}).get("synced"), what="the watcher, synced")
    env.wait_for(lambda: c.call("stats")["result"]["cache"]["trusting"], what="the watcher trusted")
    return c


# -- the changes an agent makes --------------------------------------------------------------------


class Changes:
    """Create, same-size modify, rename-over and delete, each undone by its next trial."""

    def __init__(self, env: Env) -> None:
        p0 = os.path.join(plans_dir(env), "P0")
        self.approved = os.path.join(p0, "execution", "feedbacks", "APPROVED_11.md")
        self.execution = os.path.join(plans_dir(env), "P1", "execution", "EXECUTION_TASK_P1_11_01.md")
        self.plan = os.path.join(plans_dir(env), "P2", "PLAN_P2.md")
        self.flip = False

    def create(self) -> str:
        if os.path.exists(self.approved):
            os.unlink(self.approved)
        write(self.approved, "# APPROVED: Achievement 1.1\n\nLooks good.\n")
        return "@P0"

    def delete(self) -> str:
        if not os.path.exists(self.approved):
            write(self.approved, "# APPROVED\n")
        os.unlink(self.approved)
        return "@P0"

    def modify(self) -> str:
        """In place, same size, same inode: the execution's status flips."""
        with open(self.execution, "r+b") as f:
            data = f.read()
            a, b = b"**Status**: In Progress", b"**Status**: Complete   "
            new = data.replace(a, b) if a in data else data.replace(b, a)
            assert len(new) == len(data) and new != data
            f.seek(0)
            f.write(new)
        return "@P1"

    def rename_over(self) -> str:
        self.flip = not self.flip
        tmp = self.plan + ".tmp"
        write(tmp, plan_text("P2", ("1.1",) if self.flip else ()))
        os.replace(tmp, self.plan)
        return "@P2"


KINDS = ("create", "modify", "rename_over", "delete")


def trial_order() -> list[str]:
    # create and delete alternate (each undoes the other); the others interleave
    out = []
    for _ in range(TRIALS):
        out += ["create", "modify", "rename_over", "delete"]
    return out


# -- read-your-writes ------------------------------------------------------------------------------


def test_every_answer_right_after_a_write_is_fresh_through_the_socket(env: Env, oracle: Oracle) -> None:
    make_plans(env, 3)
    changes = Changes(env)
    stale: dict[str, int] = dict.fromkeys(KINDS, 0)
    examples: list[str] = []
    with warm_daemon(env) as c:
        for kind in trial_order():
            plan = getattr(changes, kind)()
            # asked at once, as an agent does; then the reference, from another process
            got_status = normal("status", c.call("status")["result"])
            got_prompt = normal("generate", c.call("generate", {"plan": plan})["result"])
            want_status, want_prompt = oracle.ask("status"), oracle.ask("generate", plan)
            if got_status != want_status or got_prompt != want_prompt:
                stale[kind] += 1
                if len(examples) < 3:
                    examples.append(f"{kind}: {got_status} / {got_prompt[:2]} vs {want_status} / {want_prompt[:2]}")
        stats = c.call("stats")["result"]
    assert stale == dict.fromkeys(KINDS, 0), examples
    assert stats["cache"]["trusting"] and stats["watcher"]["synced"]  # answered on the watcher's word, synced
    assert stats["cache"]["trusted_hits"] > 0


def test_every_answer_right_after_a_write_is_fresh_through_the_cli(env: Env, oracle: Oracle) -> None:
    make_plans(env, 3)
    changes = Changes(env)
    stale: dict[str, int] = dict.fromkeys(KINDS, 0)
    warm_daemon(env).close()
    for kind in trial_order():
        getattr(changes, kind)()
        r = env.cli("status", "--json")
        assert r.returncode == 0, r.stderr
        if normal("status", json.loads(r.stdout)) != oracle.ask("status"):
            stale[kind] += 1
    assert stale == dict.fromkeys(KINDS, 0)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_first_answer_after_a_git_checkout_of_200_plans_is_fresh(env: Env, oracle: Oracle) -> None:
    make_plans(env, 200)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=env.root, check=True,
                       capture_output=True, timeout=60)

    git("init", "-q", "-b", "a")
    git("add", "-A")
    git("commit", "-qm", "a")
    git("checkout", "-qb", "b")
    for i in range(200):  # branch b: half the plans approved, the other half a step on
        folder = os.path.join(plans_dir(env), f"P{i}")
        if i % 2:
            write(os.path.join(folder, "execution", "feedbacks", "APPROVED_11.md"), "# APPROVED\n")
        else:
            write(os.path.join(folder, f"PLAN_P{i}.md"), plan_text(f"P{i}", ("1.1",)))
    git("add", "-A")
    git("commit", "-qm", "b")
    git("checkout", "-q", "a")
    stale = 0
    with warm_daemon(env) as c:
        for n in range(20):
            git("checkout", "-q", "b" if n % 2 == 0 else "a")
            if normal("status", c.call("status")["result"]) != oracle.ask("status"):
                stale += 1
    assert stale == 0


# -- what the watcher cannot see -------------------------------------------------------------------


FAIL_ADD = """
import errno, os, sys
from perfd.runtime import inotify
real = inotify.add_watch
def add(fd, path, mask):
    if os.path.basename(path) in {names!r} or os.path.basename(os.path.dirname(path)) in {names!r}:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return real(fd, path, mask)
inotify.add_watch = add
sys.argv = ["perfd", "daemon", "run", "--root", {root!r}]
from perfd.cli.client import main
sys.exit(main())
"""


def daemon_stats(env: Env) -> Any:
    with env.connect(timeout=20) as c:
        return c.call("stats")["result"]


def assert_fresh_under(env: Env, oracle: Oracle, plan: str) -> None:
    """Writes in `plan`'s folders, asked at once: right, every time."""
    folder = os.path.join(plans_dir(env), plan)
    approved = os.path.join(folder, "execution", "feedbacks", "APPROVED_11.md")
    with env.connect(timeout=20) as c:
        for _ in range(20):
            if os.path.exists(approved):
                os.unlink(approved)
            else:
                write(approved, "# APPROVED\n")
            assert normal("status", c.call("status")["result"]) == oracle.ask("status")
            assert (normal("generate", c.call("generate", {"plan": "@" + plan})["result"])
                    == oracle.ask("generate", "@" + plan))


def test_folders_the_watcher_could_not_watch_are_checked_by_stat_and_named(env: Env, oracle: Oracle) -> None:
    make_plans(env, 3)
    env.popen_daemon(code=FAIL_ADD.format(names=["P1"], root=env.root))
    env.wait_for(lambda: env.pid(), what="the daemon")
    env.wait_for(lambda: (daemon_stats(env)["watcher"] or {}).get("backend") == "inotify", what="the watcher")
    assert_fresh_under(env, oracle, "P1")  # unwatched: by stat
    assert_fresh_under(env, oracle, "P0")  # watched: synced
    w = daemon_stats(env)["watcher"]
    unwatched = {u["path"] for u in w["unwatched"]}
    assert os.path.join("work-space", "plans", "P1") in unwatched
    assert w["watches_needed"] >= 1
    text = env.cli("stats").stdout
    assert "fs.inotify.max_user_watches" in text and os.path.join("work-space", "plans", "P1") in text
    assert "by stat under" in text
    with open(env.paths().log) as f:
        assert "fs.inotify.max_user_watches" in f.read()


def userns_limit_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-U", "-r", "sh", "-c", "echo 5 > /proc/sys/user/max_inotify_watches"],
                       capture_output=True, timeout=10)
    return r.returncode == 0


@pytest.mark.skipif(not userns_limit_works(), reason="no private user namespace with its own inotify limit here")
def test_a_real_watch_limit_in_a_private_user_namespace(env: Env, oracle: Oracle) -> None:
    """The per-namespace limit (never the machine's): the daemon runs in a user namespace of its own whose
    /proc/sys/user/max_inotify_watches leaves most folders unwatched."""
    make_plans(env, 6)
    cmd = ("echo 6 > /proc/sys/user/max_inotify_watches && "
           f"exec {sys.executable} -m perfd daemon run --root {env.root}")
    p = subprocess.Popen(["unshare", "-U", "-r", "sh", "-c", cmd], env=env.environ, cwd=env.root,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    env.procs.append(p)
    env.wait_for(lambda: env.pid(), what="the daemon")
    env.wait_for(lambda: (daemon_stats(env)["watcher"] or {}).get("backend") == "inotify", what="the watcher")
    w = daemon_stats(env)["watcher"]
    assert w["unwatched"], w  # 6 plans hold 25 folders: the limit of 6 leaves some unwatched
    for plan in ("P0", "P3", "P5"):
        assert_fresh_under(env, oracle, plan)
    assert "fs.inotify.max_user_watches" in env.cli("stats").stdout


def test_a_symlinked_subplans_target_change_is_seen_by_the_next_answer(env: Env, oracle: Oracle) -> None:
    make_plans(env, 2)
    target = write(os.path.join(env.root, "docs", "subplan-1.1.md"), work_text("subplan", "1.1", "In Progress"))
    link = os.path.join(plans_dir(env), "P0", "subplans", "SUBPLAN_P0_11.md")
    os.unlink(link)
    os.symlink(target, link)
    with warm_daemon(env) as c:
        for status in ("Complete", "In Progress", "Complete"):
            write(target, work_text("subplan", "1.1", status))
            got = normal("generate", c.call("generate", {"plan": "@P0"})["result"])
            assert got == oracle.ask("generate", "@P0")


# -- changes that raise no event: the verification pass -------------------------------------------


def seen_within(c: Any, oracle: Oracle, bound_s: float) -> float:
    """Seconds until the daemon's answer is the cold one (failing past `bound_s`)."""
    t0 = time.monotonic()
    while True:
        if normal("status", c.call("status")["result"]) == oracle.ask("status"):
            return time.monotonic() - t0
        assert time.monotonic() - t0 < bound_s, "not seen within the verification bound"
        time.sleep(0.05)


@pytest.fixture
def verifying(env: Env) -> Env:
    env.environ["PERFD_DAEMON_VERIFY_INTERVAL_S"] = "1"
    return env


def test_an_edit_through_a_hard_link_from_outside_is_seen_within_the_bound(verifying: Env, oracle: Oracle) -> None:
    env = verifying
    make_plans(env, 2)
    execution = os.path.join(plans_dir(env), "P0", "execution", "EXECUTION_TASK_P0_11_01.md")
    outside = os.path.join(env.root, "elsewhere.md")
    os.link(execution, outside)
    with warm_daemon(env) as c:
        with open(outside, "w") as f:  # the same inode, written through a name the watcher does not watch
            f.write(work_text("execution", "1.1", "Complete"))
        seen_within(c, oracle, 5.0)
        assert c.call("stats")["result"]["watcher"]["verify_found"] >= 1


def test_an_edit_through_mmap_is_seen_within_the_bound(verifying: Env, oracle: Oracle) -> None:
    env = verifying
    make_plans(env, 2)
    execution = os.path.join(plans_dir(env), "P0", "execution", "EXECUTION_TASK_P0_11_01.md")
    with warm_daemon(env) as c:
        fd = os.open(execution, os.O_RDWR)
        try:
            with mmap.mmap(fd, 0) as m:
                os.close(fd)  # closed before the write: no IN_CLOSE_WRITE after it
                fd = -1
                at = m.find(b"In Progress")
                m[at:at + 11] = b"Complete   "
                m.flush()
        finally:
            if fd >= 0:
                os.close(fd)
        seen_within(c, oracle, 5.0)


def test_an_mtime_restored_while_the_daemon_was_down_is_seen(env: Env, oracle: Oracle) -> None:
    make_plans(env, 2)
    execution = os.path.join(plans_dir(env), "P0", "execution", "EXECUTION_TASK_P0_11_01.md")
    with warm_daemon(env) as c:
        c.call("status")
    env.wait_for(lambda: os.path.exists(env.paths().log[:-4] + ".answers"), what="the answer store")
    assert env.cli("daemon", "stop").returncode == 0
    before = os.stat(execution)
    with open(execution, "r+b") as f:  # same size, same inode, and the old mtime put back
        data = f.read()
        f.seek(0)
        f.write(data.replace(b"In Progress", b"Complete   "))
    os.utime(execution, ns=(before.st_atime_ns, before.st_mtime_ns))
    r = env.cli("status", "--json")
    assert r.returncode == 0 and normal("status", json.loads(r.stdout)) == oracle.ask("status")


def test_the_verification_pass_reports_its_cost(verifying: Env) -> None:
    env = verifying
    make_plans(env, 2)
    with warm_daemon(env) as c:
        env.wait_for(lambda: c.call("stats")["result"]["watcher"]["verify_passes"] >= 2, what="two passes")
        w = c.call("stats")["result"]["watcher"]
    assert w["verify_interval_s"] == 1.0 and 0 <= w["verify_cpu_share"] < 0.5
    assert "verification pass every 1 s" in env.cli("stats").stdout



def test_a_plans_folder_that_goes_and_comes_back_is_watched_again(env: Env, oracle: Oracle) -> None:
    make_plans(env, 2)
    away = plans_dir(env) + ".away"

    def synced(c: Any) -> bool:
        return bool((c.call("stats")["result"]["watcher"] or {}).get("synced"))

    with warm_daemon(env) as c:
        os.rename(plans_dir(env), away)  # a checkout of a branch without it, say
        env.wait_for(lambda: not synced(c), what="the watcher to end")
        assert normal("status", c.call("status")["result"]) == oracle.ask("status") == []
        os.rename(away, plans_dir(env))
        assert normal("status", c.call("status")["result"]) == oracle.ask("status")  # by stat meanwhile
        env.wait_for(lambda: synced(c), timeout=15, what="the watcher back")
    assert_fresh_under(env, oracle, "P1")


def test_a_plan_kept_at_the_workspace_root_is_watched_and_fresh(env: Env, oracle: Oracle) -> None:
    """The root is watched for its own entries (a plan kept there, its files flat beside it), not its tree."""
    make_plans(env, 2)
    plan = write(os.path.join(env.root, "PLAN_ROOTY.md"), plan_text("ROOTY"))
    old = time.time() - 3600
    os.utime(plan, (old, old))
    os.utime(env.root, (old, old))
    with warm_daemon(env) as c:
        w = c.call("stats")["result"]["watcher"]
        assert "." in w["folders"] and os.path.join("work-space", "plans") in w["folders"]
        for i in range(40):
            tmp = plan + ".tmp"
            write(tmp, plan_text("ROOTY", ("1.1",) if i % 2 == 0 else ()))
            os.replace(tmp, plan)
            assert (normal("generate", c.call("generate", {"plan": "@ROOTY"})["result"])
                    == oracle.ask("generate", "@ROOTY"))
            assert normal("status", c.call("status")["result"]) == oracle.ask("status")
        assert c.call("stats")["result"]["cache"]["trusting"]
