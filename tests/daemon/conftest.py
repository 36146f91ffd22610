"""Real daemons on temporary workspaces, driven through the real CLI (subprocesses).

Every daemon a test starts is stopped by the `env` fixture's finalizer
(SIGTERM, then SIGKILL), every wait is bounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perfd.wire.rendezvous import StatePaths

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from waiting import wait_for

PLAN = """# PLAN: Feature Work

**Status**: in progress

## 📋 Achievement Index

- Achievement 1.1: First Thing
- Achievement 1.2: Second Thing
- Achievement 2.1: Third Thing

## Achievements

### Achievement 1.1: First Thing
Do the first thing.

### Achievement 1.2: Second Thing
Do the second thing.

### Achievement 2.1: Third Thing
Do the third thing.
"""


def make_workspace(base: str, name: str = "FEAT") -> str:
    root = os.path.join(base, "ws")
    plan_dir = os.path.join(root, "work-space", "plans", name)
    os.makedirs(os.path.join(plan_dir, "subplans"), exist_ok=True)
    os.makedirs(os.path.join(plan_dir, "execution", "feedbacks"), exist_ok=True)
    with open(os.path.join(plan_dir, f"PLAN_{name}.md"), "w") as f:
        f.write(PLAN)
    return os.path.realpath(root)


class Env:
    def __init__(self, base: str) -> None:
        self.base = base
        self.root = make_workspace(base)
        self.run_dir = os.path.join(base, "r")
        self.state_dir = os.path.join(base, "s")
        self.environ = dict(os.environ, PERFD_RUNTIME_DIR=self.run_dir, PERFD_STATE_DIR=self.state_dir,
                            PYTHONDONTWRITEBYTECODE="1")
        self.environ.pop("PERFD_IDLE_TIMEOUT_S", None)
        self.environ.pop("PERFD_MAX_RSS_MB", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, cwd: str | None = None, timeout: float = 20, env: dict[str, str] | None = None,
            python_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *python_args, "-m", "perfd", *args], cwd=cwd or self.root,
                              env=env or self.environ, capture_output=True, text=True, timeout=timeout)

    def paths(self) -> "StatePaths":
        old = dict(os.environ)
        os.environ.update(PERFD_RUNTIME_DIR=self.run_dir, PERFD_STATE_DIR=self.state_dir)
        try:
            from perfd.wire.rendezvous import state_paths

            return state_paths(self.root)
        finally:
            os.environ.clear()
            os.environ.update(old)

    def pid(self) -> int:
        try:
            with open(self.paths().pid) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def popen_daemon(self, code: str | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        argv = ([sys.executable, "-c", code] if code else
                [sys.executable, "-m", "perfd", "daemon", "run", "--root", self.root])
        p = subprocess.Popen(argv, env=env or self.environ, cwd=self.root, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        return wait_for(pred, timeout, what)

    def connect(self, timeout: float = 5.0) -> Any:
        from perfd.wire.rendezvous import Connection

        return Connection(self.paths().sock, timeout)

    def daemon_pids(self) -> list[int]:
        """Every live perfd daemon process serving this test's runtime folder (psutil: Linux and macOS alike)."""
        out = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                cmd = proc.info["cmdline"] or []
                if proc.info["status"] == psutil.STATUS_ZOMBIE or "daemon" not in cmd or self.root not in cmd:
                    continue
                if proc.environ().get("PERFD_RUNTIME_DIR") == self.run_dir:
                    out.append(proc.pid)
            except psutil.Error:
                continue
        return out

    def cleanup(self) -> None:
        pids = set(self.daemon_pids())
        p = self.pid()
        if p:
            pids.add(p)
        for proc in self.procs:
            if proc.poll() is None:
                pids.add(proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + 5
        for pid in pids:
            while time.monotonic() < end:
                try:
                    if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                        break
                except psutil.Error:
                    break
                time.sleep(0.02)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stderr:
                proc.stderr.close()


@pytest.fixture
def env() -> Iterator[Env]:
    # short paths: a Unix socket path must fit in 108 bytes
    base = tempfile.mkdtemp(prefix="pd", dir="/tmp")
    e = Env(base)
    try:
        yield e
    finally:
        e.cleanup()
        shutil.rmtree(base, ignore_errors=True)
