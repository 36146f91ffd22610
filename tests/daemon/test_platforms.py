"""Other systems, simulated on this one: a kernel without SO_PEERCRED, macOS's peer check, Windows.

Each simulation is a `sitecustomize.py` put first on PYTHONPATH, so it runs in
every perfd process of the test (the CLI, and the daemon it would spawn)
before any perfd code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import Env

pytestmark = pytest.mark.slow

NO_SO_PEERCRED = """
import _socket, socket
for mod in (_socket, socket):
    if hasattr(mod, "SO_PEERCRED"):
        delattr(mod, "SO_PEERCRED")
"""

# What Windows lacks that perfd's daemon side needs: fcntl, fork, uids, Unix sockets, signals'
# process groups. (sys.platform stays: the standard library would then import Windows modules.)
WINDOWS_LIKE = """
import importlib, os, sys, _socket, socket
sys.modules["fcntl"] = None
sys.modules["resource"] = None
sys.modules["pwd"] = None
for name in ("fork", "getuid", "geteuid", "getgid", "setsid", "getpgid", "killpg", "O_NOFOLLOW"):
    if hasattr(os, name):
        delattr(os, name)
for mod in (_socket, socket):
    for name in ("AF_UNIX", "SO_PEERCRED", "socketpair"):
        if hasattr(mod, name):
            delattr(mod, name)
importlib.reload(socket)  # socket.socketpair as on Windows: a connected pair over loopback TCP
"""


def simulated(env: Env, code: str) -> dict[str, str]:
    folder = os.path.join(env.base, "sim")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sitecustomize.py"), "w") as f:
        f.write(textwrap.dedent(code))
    rest = env.environ.get("PYTHONPATH")
    return dict(env.environ, PYTHONPATH=folder + (os.pathsep + rest if rest else ""))


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates other kernels from Linux's")


@linux_only
def test_without_so_peercred_a_call_answers_in_process_at_once_and_no_daemon_is_lost(env: Env) -> None:
    e = simulated(env, NO_SO_PEERCRED)
    probe = env.cli("--no-daemon", "status", env=e)
    assert probe.returncode == 0, probe.stderr
    local = env.cli("--no-daemon", "generate", "--next", "@FEAT")
    t0 = time.monotonic()
    r = env.cli("generate", "--next", "@FEAT", env=e)
    took = time.monotonic() - t0
    assert (r.returncode, r.stdout) == (0, local.stdout)
    first, *rest = r.stderr.splitlines()
    assert first.startswith("perfd: no way to check who connects") and first.endswith("working in-process"), first
    assert "SO_PEERCRED" in first and "lost the daemon" not in r.stderr and "no daemon answered" not in r.stderr
    assert rest == local.stderr.splitlines()
    # No daemon was started to die at its first connection, and none was waited for
    # (before: one spawned per call, and about 5.4 s; the timing itself is bench_platforms.py's).
    assert env.daemon_pids() == [] and env.pid() == 0
    assert not os.path.exists(env.paths().log)
    assert took < 5.0
    # Started by hand, it refuses to serve, in one line.
    d = subprocess.run([sys.executable, "-m", "perfd", "daemon", "run", "--root", env.root], env=e, capture_output=True,
                       text=True, timeout=20)
    assert d.returncode == 1 and d.stderr.count("\n") == 1 and "will not serve" in d.stderr, d.stderr
    assert not os.path.exists(env.paths().sock)


MACOS_DAEMON = """
import socket, struct, sys
from perfd.daemon import peer, server

UID_SHIFT = {uid_shift}

def darwin_getsockopt(sock, level, option, size):
    # What macOS's kernel answers at SOL_LOCAL, made from this kernel's real answer for the peer.
    pid, uid, gid = struct.unpack("=iII", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    assert level == 0 and option in (1, 2), (level, option)
    if option == 2:  # LOCAL_PEERPID
        return struct.pack("=i", pid)
    groups = [gid, 12, 61] + [0] * 13
    return struct.pack("=IIh2x16I", 0, uid + UID_SHIFT, 3, *groups)[:size]

server.choose = lambda: peer.local_peercred_check(option=1, peerpid=2, getsockopt=darwin_getsockopt)
sys.exit(server.main({root!r}))
"""


@linux_only
def test_a_daemon_with_the_macos_peer_check_serves_a_real_peer(env: Env) -> None:
    d = env.popen_daemon(MACOS_DAEMON.format(uid_shift=0, root=env.root))
    env.wait_for(lambda: env.pid() == d.pid, what="daemon up")
    r = env.cli("generate", "--next", "@FEAT")
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    assert r.stdout == env.cli("--no-daemon", "generate", "--next", "@FEAT").stdout
    with env.connect() as c:
        assert c.call("ping")["result"]["pid"] == d.pid
    with open(env.paths().log) as f:
        log = f.read()
    assert "peers checked with LOCAL_PEERCRED" in log and "refused" not in log


@linux_only
def test_the_macos_peer_check_refuses_another_uid_and_keeps_serving(env: Env) -> None:
    d = env.popen_daemon(MACOS_DAEMON.format(uid_shift=1, root=env.root))
    env.wait_for(lambda: env.pid() == d.pid, what="daemon up")
    r = env.cli("status")
    assert r.returncode == 0 and "lost the daemon" in r.stderr  # answered in-process
    with open(env.paths().log) as f:
        assert f"refused a connection from uid {os.getuid() + 1} (pid " in f.read()
    assert d.poll() is None and env.pid() == d.pid


def test_a_peer_check_that_raises_refuses_the_connection_not_the_daemon(env: Env) -> None:
    code = f"""
import sys
from perfd.daemon import peer, server

def broken(sock):
    raise AttributeError("module 'socket' has no attribute 'SO_PEERCRED'")

server.choose = lambda: peer.PeerCheck("broken", broken)
sys.exit(server.main({env.root!r}))
"""
    d = env.popen_daemon(code)
    env.wait_for(lambda: env.pid() == d.pid, what="daemon up")
    for _ in range(3):
        assert env.cli("status").returncode == 0
    assert d.poll() is None and env.pid() == d.pid
    with open(env.paths().log) as f:
        log = f.read()
    assert log.count("peer's credentials are unreadable (AttributeError") == 3 and "stopped" not in log


def test_windows_like_system_works_in_process(env: Env) -> None:
    e = simulated(env, WINDOWS_LIKE)
    probe = subprocess.run([sys.executable, "-c", "import os, _socket; print(hasattr(os, 'fork'), "
                            "hasattr(_socket, 'AF_UNIX'))"], env=e, capture_output=True, text=True, timeout=20)
    assert probe.stdout.split() == ["False", "False"], probe.stderr  # the simulation is on
    local = env.cli("--no-daemon", "status")
    for argv in (("--no-daemon", "status"), ("status",)):
        r = env.cli(*argv, env=e)
        assert (r.returncode, r.stdout, r.stderr) == (0, local.stdout, ""), argv
    r = env.cli("stats", "--history", env=e)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = env.cli("run", "@FEAT", "--next", env=e)  # no model configured: a one-line user error, in-process
    assert r.returncode == 1 and "Traceback" not in r.stderr and "model" in r.stderr, r.stderr
    for argv in (("daemon", "start"), ("daemon", "status"), ("daemon", "stop"), ("daemon",)):
        r = env.cli(*argv, env=e)
        assert r.returncode == 1 and r.stdout == "", argv
        assert r.stderr.count("\n") == 1 and "no daemon on this system" in r.stderr and "--standalone" in r.stderr
    assert env.daemon_pids() == [] and not os.path.exists(env.run_dir)


@pytest.mark.parametrize("argv", [("lsp", "--standalone"), ("lsp",)])
def test_windows_like_system_serves_an_editor_standalone(env: Env, argv: tuple[str, ...]) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
    try:
        from stdio_lsp import StdioLSP
    finally:
        sys.path.pop(0)
    e = simulated(env, WINDOWS_LIKE)
    server = StdioLSP([sys.executable, "-m", "perfd", *argv, "--root", env.root], e)
    try:
        init = server.send("initialize", {"processId": None, "rootUri": "file://" + env.root, "capabilities": {}})
        assert isinstance(init, dict) and "capabilities" in init
        server.send("initialized", {}, request=False)
        plan = os.path.join(env.root, "work-space", "plans", "FEAT", "PLAN_FEAT.md")
        with open(plan) as f:
            text = f.read()
        uri = "file://" + plan
        server.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "markdown", "version": 1,
                                                                "text": text}}, request=False)
        symbols = server.send("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert isinstance(symbols, list) and symbols
    finally:
        server.close()
    assert server.proc.returncode == 0
    assert env.daemon_pids() == [] and not os.path.exists(env.run_dir)
