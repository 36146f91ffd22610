"""What must work on every POSIX system perfd runs on: liveness, start time, RSS, socket path lengths, no /proc."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import perfd
from perfd.cli.autostart import alive, daemon_alive
from perfd.runtime.stats import rss_bytes
from perfd.paths import SOCKET_NAME_MAX, SUN_PATH_MAX, default_runtime_dir, socket_path_fits

PACKAGE = Path(perfd.__file__).parent


# -- no /proc ---------------------------------------------------------------------------------------

def proc_uses(source: str) -> list[int]:
    """Lines of string constants naming /proc (open("/proc/..."), "/proc/%d/stat" % pid, f"/proc/{pid}")."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if text.startswith("/proc") or "/proc/" in text:
                lines.append(node.lineno)
    return lines


def test_the_scan_finds_what_it_claims_to_find() -> None:
    assert proc_uses('open("/proc/self/statm", "rb")') == [1]
    assert proc_uses('x = 1\nopen("/proc/%d/stat" % pid)') == [2]
    assert proc_uses("f'/proc/{pid}/stat'") == [1]
    assert proc_uses("os.listdir(b'/proc')") == [1]
    assert proc_uses('"processes"; "/procurement"') == [1]  # errs on the side of flagging
    assert proc_uses('open("/tmp/x")') == []


def test_no_module_reads_proc() -> None:
    """macOS and the BSDs have no /proc: liveness, start time and RSS come from psutil."""
    found = {str(p.relative_to(PACKAGE)): lines for p in sorted(PACKAGE.rglob("*.py"))
             if (lines := proc_uses(p.read_text(encoding="utf-8")))}
    # The inotify reader is Linux's alone (elsewhere the watcher uses watchfiles): it reads inotify's limit.
    found.pop(os.path.join("runtime", "inotify.py"), None)
    assert found == {}


# -- liveness and start time ---------------------------------------------------------------------------

def test_alive_for_this_process_and_not_for_a_reaped_child() -> None:
    assert alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not alive(child.pid)


def test_pids_that_name_groups_are_never_alive() -> None:
    """A pid file holding 0 or -1 must not make `perfd daemon stop` signal a group or every process."""
    for pid in (0, -1, -os.getpid()):
        assert not alive(pid)


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:  # exited but not reaped: still in the process table
            import psutil

            if psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        os.kill(child.pid, 0)  # the kill-0 check alone would call it alive
        assert not alive(child.pid)
    finally:
        child.wait()


def test_a_process_started_after_the_pid_file_is_not_that_daemon() -> None:
    """A pid given again to a newer process (after a reboot, or a kill -9 and many forks)."""
    assert alive(os.getpid(), started_by=time.time())
    assert not alive(os.getpid(), started_by=time.time() - 3600)


def test_daemon_alive_reads_the_pid_file_and_its_time(tmp_path: Path) -> None:
    from perfd.wire.rendezvous import StatePaths

    paths = StatePaths(*(str(tmp_path / n) for n in ("s", "pid", "l", "sl", "log", "out", "failed")))
    assert not daemon_alive(paths)  # no pid file
    Path(paths.pid).write_text(f"{os.getpid()}\n")
    assert daemon_alive(paths)
    old = time.time() - 3600
    os.utime(paths.pid, (old, old))  # written an hour ago: this process came later
    assert not daemon_alive(paths)


def test_rss_is_the_current_resident_size() -> None:
    before = rss_bytes()
    block = bytearray(64 << 20)  # touched pages count: bytearray zero-fills them
    grown = rss_bytes()
    del block
    assert 16 << 20 < before < 4 << 30
    assert grown - before > 48 << 20


# -- socket path lengths -------------------------------------------------------------------------------

LONG_HOME = "/Users/" + "a-rather-long-user-name-" * 3
MACOS_TMPDIR = "/var/folders/zz/zyxvpxvq6csfxvn_n0000000000000/T/"


def longest_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environ: str | None) -> str:
    """The longest socket path perfd binds under this environment, built from its own parts."""
    from perfd.wire.rendezvous import state_paths

    for k in ("PERFD_RUNTIME_DIR", "XDG_RUNTIME_DIR", "TMPDIR", "HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PERFD_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PERFD_STATE_DIR", str(tmp_path / "state"))
    # The root is hashed into the name, so its length is no matter; the name's length is fixed.
    name = os.path.basename(state_paths("/" + "deep/" * 200 + "workspace").sock)
    monkeypatch.delenv("PERFD_RUNTIME_DIR")
    for k, v in environ.items():
        if v is not None:
            monkeypatch.setenv(k, v)
    return os.path.join(default_runtime_dir(), name)


@pytest.mark.parametrize("environ", [
    {"TMPDIR": MACOS_TMPDIR, "HOME": LONG_HOME},
    {"TMPDIR": "/" + "t" * 200 + "/", "HOME": LONG_HOME},  # a temp folder no socket fits in
    {"TMPDIR": "/" + "t" * (SUN_PATH_MAX - 33) + "/"},  # one byte too long
    {"TMPDIR": None, "HOME": LONG_HOME},
    {"XDG_RUNTIME_DIR": "XDG", "TMPDIR": MACOS_TMPDIR},
    {"XDG_RUNTIME_DIR": "LONGXDG", "TMPDIR": "/" + "t" * 200},
])
def test_the_longest_socket_path_fits_macos(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             environ: dict[str, str | None]) -> None:
    if environ.get("XDG_RUNTIME_DIR") == "XDG":
        environ = dict(environ, XDG_RUNTIME_DIR=str(tmp_path))
    elif environ.get("XDG_RUNTIME_DIR") == "LONGXDG":
        long_xdg = tmp_path / ("x" * 90)
        long_xdg.mkdir()
        environ = dict(environ, XDG_RUNTIME_DIR=str(long_xdg))
    sock = longest_socket(monkeypatch, tmp_path, **environ)
    assert len(os.path.basename(sock)) == SOCKET_NAME_MAX
    assert len(sock.encode()) + 1 <= SUN_PATH_MAX, sock  # with its NUL


def test_a_temp_folder_that_fits_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sock = longest_socket(monkeypatch, tmp_path, TMPDIR=MACOS_TMPDIR)
    assert sock.startswith(MACOS_TMPDIR + f"perfd-{os.getuid()}/")
    monkeypatch.setenv("TMPDIR", "/" + "t" * 100)
    assert default_runtime_dir() == f"/tmp/perfd-{os.getuid()}"


def test_socket_path_fits_counts_bytes_and_the_nul() -> None:
    assert socket_path_fits("/" + "a" * 102)
    assert not socket_path_fits("/" + "a" * 103)
    assert not socket_path_fits("/" + "é" * 52)  # 105 bytes in 53 characters
    assert socket_path_fits("/" + "a" * 106, limit=108)
