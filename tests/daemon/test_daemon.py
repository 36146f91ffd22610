"""Integration tests: a real daemon per test, driven through the real CLI and raw socket frames."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import msgspec
import pytest

from conftest import Env, make_workspace

from perfd import exitcodes

pytestmark = pytest.mark.slow

FEED = os.path.join("work-space", "plans", "FEAT", "execution", "feedbacks")


def _warm(env: Env) -> int:
    r = env.cli("status")
    assert r.returncode == 0, r.stderr
    assert "working in-process" not in r.stderr
    pid = env.wait_for(env.pid, what="pid file")
    return int(pid)


def test_autostart_and_output_identical_with_and_without_daemon(env: Env) -> None:
    cases = [
        ("status",), ("status", "--json"), ("status", "@FEAT"), ("generate", "--next", "@FEAT"),
        ("generate", "@FEAT", "1.2", "--json"), ("generate", "@NOPE"), ("generate", "@FEAT", "9.9"),
        ("generate", "--bogus"), ("--version",), ("generate", "../../../etc/passwd"),
    ]
    assert env.pid() == 0
    for argv in cases:
        via_daemon = env.cli(*argv)
        local = env.cli("--no-daemon", *argv)
        assert "working in-process" not in via_daemon.stderr
        assert (via_daemon.stdout, via_daemon.stderr, via_daemon.returncode) == \
               (local.stdout, local.stderr, local.returncode), argv
    assert env.pid() != 0
    assert len(env.daemon_pids()) == 1
    # from a subfolder too: the root is found by walking up
    sub = os.path.join(env.root, "work-space", "plans", "FEAT", "subplans")
    assert env.cli("generate", "--next", cwd=sub).stdout == env.cli("--no-daemon", "generate", "--next", cwd=sub).stdout
    # --root goes before or after the command, as the thin client reads it anywhere
    before = env.cli("--root", env.root, "status", cwd="/")
    assert before.returncode == 0 and "@FEAT" in before.stdout
    assert env.cli("status", "--root", env.root, cwd="/").stdout == before.stdout
    assert env.cli("--no-daemon", "status", "--root", env.root, cwd="/").stdout == before.stdout


def test_permissions_and_peer_check(env: Env) -> None:
    _warm(env)
    paths = env.paths()
    assert stat.S_IMODE(os.stat(env.run_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(env.state_dir).st_mode) == 0o700
    st = os.stat(paths.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    from perfd.daemon.peer import peer_allowed, peer_credentials

    assert peer_allowed(os.getuid())
    assert not peer_allowed(os.getuid() + 1)
    assert not peer_allowed(12345, own_uid=0)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(paths.sock)
    pid, uid, _gid = peer_credentials(s)
    assert uid == os.getuid() and pid == env.pid()
    s.close()


def test_kill9_then_next_client_recovers(env: Env) -> None:
    pid = _warm(env)
    os.kill(pid, signal.SIGKILL)
    env.wait_for(lambda: pid not in env.daemon_pids(), what="daemon death")
    assert os.path.exists(env.paths().sock)  # stale socket left behind
    r = env.cli("generate", "--next", "@FEAT")
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    new = env.pid()
    assert new and new != pid
    assert env.daemon_pids() == [new]


def test_a_connection_reset_by_a_daemon_that_died_is_made_again_to_a_new_one(env: Env) -> None:
    """The kill -9 race above, made certain: a daemon killed as a client connects still lets it in (the
    kernel frees a dying process's memory before it closes its listening socket), then resets it."""
    paths = env.paths()
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    with open(paths.pid, "w") as f:
        f.write(f"{dead.pid}\n")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(paths.sock)
    listener.listen()
    listener.settimeout(20)
    taken: list[socket.socket] = []

    def die() -> None:
        conn, _ = listener.accept()
        taken.append(conn)
        conn.settimeout(20)
        conn.recv(1, socket.MSG_PEEK)  # the request came, and is left unread
        listener.close()  # nothing listens any more; the socket file stays behind, as after kill -9
        conn.close()  # with the request unread: the client's connection is reset

    dying = threading.Thread(target=die)
    dying.start()
    try:
        r = env.cli("generate", "--next", "@FEAT")
    finally:
        dying.join(timeout=25)
        listener.close()
    assert len(taken) == 1
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    assert r.stdout == env.cli("--no-daemon", "generate", "--next", "@FEAT").stdout
    new = env.pid()
    assert new and new != dead.pid
    assert env.daemon_pids() == [new]


def test_a_daemon_still_exiting_when_the_client_looks_is_replaced_once_it_is_gone(env: Env) -> None:
    """Nothing listens on the socket, but the pid file names a process still alive: a daemon killed with -9
    has closed its socket a moment before it is gone. Once it is, the waiting client starts a new one."""
    paths = env.paths()
    exiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.4)"])
    with open(paths.pid, "w") as f:
        f.write(f"{exiting.pid}\n")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(paths.sock)  # the socket file left behind, nothing listening on it
    stale.close()
    try:
        r = env.cli("generate", "--next", "@FEAT")
    finally:
        exiting.wait(timeout=5)
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    new = env.pid()
    assert new and new != exiting.pid
    assert env.daemon_pids() == [new]


def test_two_daemons_for_one_root_exactly_one_survives(env: Env) -> None:
    procs = [env.popen_daemon() for _ in range(3)]
    env.wait_for(lambda: sum(p.poll() is not None for p in procs) == 2, timeout=15, what="two refusals")
    losers = [p for p in procs if p.poll() is not None]
    assert all(p.returncode == exitcodes.ALREADY_RUNNING for p in losers)
    assert all(b"already serves" in p.stderr.read() for p in losers)  # type: ignore[union-attr]
    winner = next(p for p in procs if p.poll() is None)
    env.wait_for(lambda: env.pid() == winner.pid, what="winner's pid file")
    assert env.cli("status").returncode == 0
    assert env.daemon_pids() == [winner.pid]


def test_racing_clients_start_exactly_one_daemon(env: Env) -> None:
    argv = [sys.executable, "-m", "perfd", "generate", "--next", "@FEAT"]
    procs = [subprocess.Popen(argv, cwd=env.root, env=env.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(8)]
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(b"working in-process" not in err for _out, err in outs), outs
    assert len({out for out, _err in outs}) == 1
    assert len(env.daemon_pids()) == 1
    with open(env.paths().log) as f:
        assert f.read().count(" serving ") == 1


def test_idle_shutdown_clears_state(env: Env) -> None:
    env.environ["PERFD_IDLE_TIMEOUT_S"] = "0.5"
    pid = _warm(env)
    env.wait_for(lambda: pid not in env.daemon_pids(), timeout=10, what="idle exit")
    assert not os.path.exists(env.paths().sock) and not os.path.exists(env.paths().pid)
    with open(env.paths().log) as f:
        assert "idle for 0.5 s" in f.read()


def test_a_daemon_whose_workspace_is_deleted_exits(env: Env) -> None:
    pid = _warm(env)
    shutil.rmtree(env.root)
    env.wait_for(lambda: pid not in env.daemon_pids(), timeout=10, what="exit after the workspace went away")
    assert not os.path.exists(env.paths().sock)
    with open(env.paths().log) as f:
        assert "the workspace folder is gone" in f.read()


def test_idle_timeout_from_perfd_toml(env: Env) -> None:
    with open(os.path.join(env.root, "perfd.toml"), "w") as f:
        f.write("[daemon]\nidle_timeout_s = 0.4\n")
    pid = _warm(env)
    env.wait_for(lambda: pid not in env.daemon_pids(), timeout=10, what="idle exit")


def test_an_idle_timeout_of_0_means_never(env: Env) -> None:
    with open(os.path.join(env.root, "perfd.toml"), "w") as f:
        f.write("[daemon]\nidle_timeout_s = 0\n")
    pid = _warm(env)
    time.sleep(1.5)  # past a housekeeping round (1 s): a daemon that took 0 as "at once" would be gone
    assert pid in env.daemon_pids()
    with open(env.paths().log) as f:
        assert "idle for" not in f.read()


def test_memory_cap_exits_cleanly(env: Env) -> None:
    e = dict(env.environ, PERFD_MAX_RSS_MB="1")
    p = env.popen_daemon(env=e)
    assert p.wait(timeout=15) == 0
    with open(env.paths().log) as f:
        log = f.read()
    assert "over max_rss_mb = 1 MB" in log and "memory cap 1 MB" in log
    assert not os.path.exists(env.paths().sock)


def test_sigterm_is_a_clean_shutdown(env: Env) -> None:
    pid = _warm(env)
    os.kill(pid, signal.SIGTERM)
    env.wait_for(lambda: pid not in env.daemon_pids(), what="exit on SIGTERM")
    assert not os.path.exists(env.paths().sock) and not os.path.exists(env.paths().pid)


def test_daemon_commands_start_status_stop_restart_logs(env: Env) -> None:
    r = env.cli("daemon", "status")
    assert r.returncode == 1 and "no daemon running" in r.stderr
    r = env.cli("daemon", "start")
    assert r.returncode == 0, r.stderr
    pid = env.pid()
    assert f"pid {pid}" in r.stdout
    assert "running" in env.cli("daemon", "status").stdout
    r = env.cli("daemon", "restart")
    assert r.returncode == 0 and env.pid() not in (0, pid)
    assert " serving " in env.cli("daemon", "logs").stdout
    r = env.cli("daemon", "stop")
    assert r.returncode == 0 and "stopped" in r.stdout
    assert not os.path.exists(env.paths().sock) and not os.path.exists(env.paths().pid)
    assert env.daemon_pids() == []


def test_version_mismatch_restarts_the_daemon(env: Env) -> None:
    code = ("import sys, perfd; perfd.__version__ = '0.0.0-old'; from perfd.daemon.server import main; "
            f"sys.exit(main({env.root!r}))")
    old = env.popen_daemon(code)
    env.wait_for(lambda: env.pid() == old.pid, what="old daemon up")
    with env.connect() as c:
        assert c.call("ping")["result"]["version"] == "0.0.0-old"
        init = c.call("initialize", {"version": "0.1.0"})["result"]
        assert init["compatible"] is False
    r = env.cli("generate", "--next", "@FEAT")
    assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr
    assert old.wait(timeout=10) == 0
    new = env.pid()
    assert new and new != old.pid
    import perfd

    with env.connect() as c:
        assert c.call("ping")["result"]["version"] == perfd.__version__


def _raw(sock: socket.socket, body: bytes) -> dict:
    sock.sendall(struct.pack(">I", len(body)) + body)
    return _read(sock)


def _read(sock: socket.socket) -> dict:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        assert chunk, "connection closed"
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return msgspec.json.decode(body)  # type: ignore[no-any-return]


def test_bad_inputs_get_jsonrpc_errors_and_the_daemon_keeps_serving(env: Env) -> None:
    _warm(env)
    path = env.paths().sock

    def conn() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        return s

    s = conn()
    assert _raw(s, b"{not json")["error"]["code"] == -32700
    assert _raw(s, b"\xff\xfe\x00")["error"]["code"] == -32700
    assert _raw(s, b'{"jsonrpc":"2.0","id":7}')["error"]["code"] == -32600
    assert _raw(s, b'{"jsonrpc":"1.0","id":7,"method":"ping"}')["error"]["code"] == -32600
    assert _raw(s, b"[1,2,3]")["error"]["code"] == -32600
    r = _raw(s, b'{"jsonrpc":"2.0","id":8,"method":"nope"}')
    assert r["error"]["code"] == -32601 and r["id"] == 8
    assert _raw(s, b'{"jsonrpc":"2.0","id":9,"method":"generate","params":{"plan":5}}')["error"]["code"] == -32602
    assert _raw(s, b'{"jsonrpc":"2.0","id":9,"method":"generate","params":{"plan":"@FEAT","x":1}}')["error"]["code"] == -32602
    assert _raw(s, b'{"jsonrpc":"2.0","id":9,"method":"generate","params":[1]}')["error"]["code"] == -32602
    assert _raw(s, b'{"jsonrpc":"2.0","id":9,"method":"cli","params":{}}')["error"]["code"] == -32602
    r = _raw(s, b'{"jsonrpc":"2.0","id":10,"method":"generate","params":{"plan":"../../../../etc/passwd"}}')
    assert r["error"]["code"] == 1001 and r["error"]["data"]["code"] == "outside-workspace"
    # through a symlink inside the workspace that points outside it
    outside = os.path.join(env.base, "outside")
    os.makedirs(outside)
    with open(os.path.join(outside, "PLAN_X.md"), "w") as f:
        f.write("# PLAN: x\n")
    os.symlink(outside, os.path.join(env.root, "work-space", "plans", "LINK"))
    r = _raw(s, b'{"jsonrpc":"2.0","id":11,"method":"generate","params":{"plan":"work-space/plans/LINK/PLAN_X.md"}}')
    assert r["error"]["code"] == 1001 and r["error"]["data"]["code"] == "outside-workspace"
    r = _raw(s, b'{"jsonrpc":"2.0","id":12,"method":"invalidate","params":{"path":"../.."}}')
    assert r["error"]["data"]["code"] == "outside-workspace"
    r = _raw(s, b'{"jsonrpc":"2.0","id":13,"method":"generate","params":{"plan":"@NOPE"}}')
    assert r["error"]["data"]["code"] == "unknown-plan" and "FEAT" in r["error"]["data"]["candidates"]
    assert _raw(s, b'{"jsonrpc":"2.0","id":14,"method":"ping"}')["result"]["pong"] is True
    s.close()
    # over 1 MiB: an error, then the connection is closed
    s = conn()
    s.sendall(struct.pack(">I", (1 << 20) + 1) + b"x" * 100)
    assert _read(s)["error"]["code"] == -32600
    assert s.recv(10) == b""
    s.close()
    # a client that sends half a frame and leaves
    s = conn()
    s.sendall(struct.pack(">I", 100) + b"{")
    s.close()
    with env.connect() as c:
        assert c.call("ping")["result"]["pong"] is True
        st = c.call("stats")["result"]
        errs = {m["method"]: m["errors"] for m in st["methods"]}
        assert errs["(unknown)"] == 1 and errs["generate"] >= 4
    assert env.cli("status").returncode == 0


def test_engine_methods_over_the_socket(env: Env) -> None:
    _warm(env)
    with env.connect() as c:
        g = c.call("generate", {"plan": "@FEAT"})["result"]
        assert g["plan"] == "FEAT" and g["achievement"] == "1.1"
        assert c.call("status")["result"]["plans"][0]["next"] == "1.1"
        assert c.call("status", {"plan": "@FEAT"})["result"]["total"] == 3
        assert c.call("invalidate")["result"]["invalidated"] >= 1
        assert c.call("invalidate", {"path": "work-space/plans"})["result"]["invalidated"] == 0  # nothing read since
        assert c.call("status", {"plan": "@FEAT"})["result"]["total"] == 3  # reads the plan's folder again
        entries = c.call("stats")["result"]["cache"]["entries"]
        assert entries >= 1
        # every entry a status reads is under the plans folder, but the workspace root's own listing (plans
        # may be kept at the root): invalidating the plans folder drops all the others, once
        assert c.call("invalidate", {"path": "work-space/plans"})["result"]["invalidated"] == entries - 1
        assert c.call("invalidate", {"path": "work-space/plans"})["result"]["invalidated"] == 0
        r = c.call("cli", {"argv": ["status"], "cwd": env.root})["result"]
        assert r["code"] == 0 and "@FEAT" in r["stdout"]
        assert c.call("cli", {"argv": ["daemon", "stop"], "cwd": env.root})["result"]["code"] == 2
        r = c.call("cli", {"argv": ["status"], "cwd": env.root, "version": "9.9"})
        assert r["error"]["code"] == 1002
        # a notification (no id) gets no answer; the next request does
        c.sock.sendall(struct.pack(">I", 36) + b'{"jsonrpc":"2.0","method":"ping"}   ')
        assert c.call("ping")["result"]["pong"] is True


def test_a_foreign_root_is_refused_with_exit_1_naming_both(env: Env) -> None:
    """A command line for another root gets this daemon's refusal (exit 1), not a cold engine built for it."""
    _warm(env)
    from perfd.wire.ipc import parse_raw

    other = make_workspace(os.path.join(env.base, "elsewhere"))
    with env.connect() as c:
        for params in ({"argv": ["status"], "cwd": other, "root": other},  # the root a client found and sent
                       {"argv": ["status", "@FEAT", "--root", other], "cwd": "/"}):  # none sent: the one named
            c.send_body(msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": "cli",
                                             "params": {**params, "raw": True}}))
            code, out, err = parse_raw(c.recv_body())
            assert (code, out, err.decode()) == (1, b"", f"perfd: this daemon serves {env.root}, not {other}\n")
        c.send_body(msgspec.json.encode({"jsonrpc": "2.0", "id": 2, "method": "cli", "params": {
            "argv": ["status", "@FEAT"], "cwd": "/", "root": env.root, "raw": True}}))
        code, out, err = parse_raw(c.recv_body())
        assert code == 0 and b"@FEAT" in out, err  # its own root, sent: used as is (cwd is outside it)
    # and the thin client sends the root it found: from a subfolder, the daemon answers as before
    sub = os.path.join(env.root, "work-space", "plans", "FEAT")
    assert env.cli("status", "@FEAT", cwd=sub).stdout == env.cli("--no-daemon", "status", "@FEAT", cwd=sub).stdout


def test_200_concurrent_clients(env: Env) -> None:
    _warm(env)
    from perfd.wire.ipc import parse_raw

    expected = env.cli("--no-daemon", "generate", "--next", "@FEAT")
    results: list[object] = []
    barrier = threading.Barrier(200, timeout=20)

    def one() -> None:
        try:
            with env.connect(timeout=20) as c:
                barrier.wait()
                method = "ping" if len(results) % 5 == 0 else "cli"
                if method == "ping":
                    results.append(c.call("ping")["result"]["pong"])
                    return
                c.send_body(msgspec.json.encode({"jsonrpc": "2.0", "id": 1, "method": "cli", "params": {
                    "argv": ["generate", "--next", "@FEAT"], "cwd": env.root, "raw": True}}))
                code, out, err = parse_raw(c.recv_body())
                results.append((code, out.decode(), err.decode()) ==
                               (expected.returncode, expected.stdout, expected.stderr))
        except Exception as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 200 and all(r is True for r in results), [r for r in results if r is not True][:3]
    # a few whole CLI processes at the same time as well
    procs = [subprocess.Popen([sys.executable, "-m", "perfd", "status"], cwd=env.root, env=env.environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(10)]
    assert all(p.communicate(timeout=30)[1] == b"" and p.returncode == 0 for p in procs)
    assert len(env.daemon_pids()) == 1


def test_watcher_notifies_subscribers_and_answers_change_at_once(env: Env) -> None:
    _warm(env)
    before = env.cli("generate", "--next", "@FEAT")
    assert "achievement 1.1" in before.stderr
    with env.connect(timeout=10) as c:
        assert c.call("subscribe")["result"]["subscribed"] is True
        time.sleep(0.3)  # let inotify set up its watches
        with open(os.path.join(env.root, FEED, "APPROVED_11.md"), "w") as f:
            f.write("# APPROVED: Achievement 1.1\n")
        msg = c.recv()
        while msg.get("method") != "planChanged":
            msg = c.recv()
        p = msg["params"]
        assert p["plan"] == "FEAT" and p["next"] == "1.2" and p["done"] == 1
        assert any(x.endswith("APPROVED_11.md") for x in p["changed"])
        # Once the watcher has reported it, every answer has it. (Not before: while the watcher is
        # trusted, warm answers stat nothing, and a change is seen when its event arrives, 10 to
        # 60 ms after the write; a client that started faster than that raced the event.)
        after = env.cli("generate", "--next", "@FEAT")
        assert "achievement 1.2" in after.stderr, after.stderr
        st = c.call("stats")["result"]
        assert st["watcher_events"] >= 1 and st["subscribers"] == 1
    # the subscriber left: its subscription (and any work) is gone
    with env.connect() as c2:
        env.wait_for(lambda: c2.call("stats")["result"]["subscribers"] == 0, what="unsubscribe on disconnect")


def test_stats_text_json_prometheus(env: Env) -> None:
    _warm(env)
    env.cli("generate", "--next", "@FEAT")
    text = env.cli("stats")
    assert text.returncode == 0 and "hit rate" in text.stdout and "generate" in text.stdout
    js = msgspec.json.decode(env.cli("stats", "--json").stdout)
    assert js["cache"]["entries"] > 0 and js["rss_bytes"] > 0 and js["uptime_s"] > 0
    # Command lines are counted under their command, not under one `cli` method.
    methods = {m["method"]: m for m in js["methods"]}
    assert "cli" not in methods and methods["status"]["requests"] >= 1 and methods["generate"]["requests"] == 1
    assert methods["generate"]["latency"]["p50_ms"] > 0 and methods["generate"]["total_s"] > 0
    prom = env.cli("stats", "--prometheus").stdout
    assert "# TYPE perfd_requests_total counter" in prom
    assert 'perfd_requests_total{command="generate"} 1' in prom
    assert 'perfd_request_duration_seconds{command="status",quantile="0.99"}' in prom
    # what the editor runs beside its session's start: --root after the command, from anywhere
    assert msgspec.json.decode(env.cli("stats", "--json", "--root", env.root, cwd="/").stdout)["pid"] == js["pid"]
    # in-process `stats` asks the daemon too, with the same rendering
    assert "hit rate" in env.cli("--no-daemon", "stats").stdout


def test_the_headline_hit_rate_counts_every_cache_level(env: Env) -> None:
    """A warm daemon answers from its answer memo without a single file lookup: the rate says so."""
    old = time.time() - 60  # files older than the racy window: answers may be memoised
    for folder, dirs, files in os.walk(env.root):
        for name in dirs + files:
            os.utime(os.path.join(folder, name), (old, old))
        os.utime(folder, (old, old))
    _warm(env)
    for _ in range(5):
        assert env.cli("status").returncode == 0
    js = msgspec.json.decode(env.cli("stats", "--json").stdout)
    levels = {lv["name"]: lv for lv in js["levels"]}
    assert set(levels) == {"answers", "files"}  # no model client yet
    assert levels["answers"]["hits"] == js["memo_hits"] >= 5 and levels["answers"]["misses"] == js["memo_misses"] >= 1
    assert levels["files"]["hits"] == js["cache"]["hits"] and levels["files"]["misses"] == js["cache"]["misses"]
    hits = sum(lv["hits"] for lv in levels.values())
    lookups = hits + sum(lv["misses"] for lv in levels.values())
    assert js["hit_rate"] == pytest.approx(hits / lookups) and js["hit_rate"] > levels["files"]["hit_rate"]
    text = env.cli("stats").stdout
    assert f"cache hit rate {js['hit_rate']:.1%} (hits over lookups, every level)" in text
    assert f"answers {levels['answers']['hits']}/" in text and "files " in text
    prom = env.cli("stats", "--prometheus").stdout
    assert f'perfd_cache_hit_ratio{{level="all"}} {js["hit_rate"]!r}' in prom
    assert 'perfd_cache_hits_total{level="answers"}' in prom and "perfd_file_cache_invalidations_total" in prom


def test_errors_follow_one_rule_for_every_command(env: Env) -> None:
    """A user error counts as an error whatever the command: generate's as run's (exit 1 = error)."""
    _warm(env)
    assert env.cli("generate", "@NOPE").returncode == 1
    assert env.cli("status", "@NOPE").returncode == 1
    assert env.cli("generate", "@FEAT").returncode == 0
    methods = {m["method"]: m for m in msgspec.json.decode(env.cli("stats", "--json").stdout)["methods"]}
    assert methods["generate"]["requests"] == 2 and methods["generate"]["errors"] == 1
    assert methods["status"]["errors"] == 1
    with env.connect() as c:  # a JSON-RPC error is an error too
        c.call("generate", {"plan": "@NOPE"})
    methods = {m["method"]: m for m in msgspec.json.decode(env.cli("stats", "--json").stdout)["methods"]}
    assert methods["generate"]["errors"] == 2


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; the README's test set-up installs it)")
    return path


def _promtool_ok(promtool: str, text: str) -> None:
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (p.stdout, p.stderr, text)


def test_prometheus_output_passes_promtool(env: Env, promtool: str) -> None:
    _warm(env)
    env.cli("generate", "@NOPE")
    _promtool_ok(promtool, env.cli("stats", "--prometheus").stdout)


def test_metrics_endpoint_is_scraped_over_http(env: Env, promtool: str) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(os.path.join(env.root, "perfd.toml"), "w") as f:
        f.write(f'[daemon]\nmetrics_addr = ":{port}"\n')  # no host: loopback
    _warm(env)
    js = env.wait_for(lambda: (j := msgspec.json.decode(env.cli("stats", "--json").stdout))["metrics_addr"] and j,
                      what="metrics endpoint")
    assert js["metrics_addr"] == f"127.0.0.1:{port}" and js["metrics_error"] is None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = r.read().decode()
    assert "perfd_metrics_endpoint_up 1" in body and 'perfd_requests_total{command="status"}' in body
    _promtool_ok(promtool, body)
    for path, code in (("/", 404), ("/metrics/../etc", 404)):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
            raise AssertionError(path)
        except urllib.error.HTTPError as exc:
            assert exc.code == code
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("POST accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405
    # A scraper that sends garbage or nothing does not hurt the daemon.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x00" * 10000)
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert env.cli("status").returncode == 0


def test_a_metrics_address_in_use_or_invalid_keeps_the_daemon_serving(env: Env) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with open(os.path.join(env.root, "perfd.toml"), "w") as f:
            f.write(f'[daemon]\nmetrics_addr = "127.0.0.1:{port}"\n')
        _warm(env)
        js = env.wait_for(lambda: (j := msgspec.json.decode(env.cli("stats", "--json").stdout))["metrics_error"] and j,
                          what="metrics error")
        assert f"cannot listen on 127.0.0.1:{port}" in js["metrics_error"] and js["metrics_addr"] is None
        assert "metrics: not served: cannot listen" in env.cli("stats").stdout
        assert f"/metrics not served: cannot listen on 127.0.0.1:{port}" in env.cli("daemon", "status").stdout
        with open(env.paths().log) as f:
            assert "metrics endpoint off: cannot listen" in f.read()
    env.cli("daemon", "stop")
    with open(os.path.join(env.root, "perfd.toml"), "w") as f:
        f.write('[daemon]\nmetrics_addr = "not an address"\n')
    _warm(env)
    js = env.wait_for(lambda: (j := msgspec.json.decode(env.cli("stats", "--json").stdout))["metrics_error"] and j,
                      what="metrics error")
    assert "metrics_addr 'not an address'" in js["metrics_error"] and "perfd.toml" in js["metrics_error"]
    assert env.cli("generate", "@FEAT").returncode == 0
    st = env.cli("daemon", "status")
    assert st.returncode == 0 and "/metrics not served: metrics_addr 'not an address'" in st.stdout
    # Started by hand, the configuration error is the answer: exit 1, one line, the daemon serves anyway.
    env.cli("daemon", "stop")
    started = env.cli("daemon", "start")
    assert started.returncode == 1 and started.stderr.count("metrics_addr 'not an address'") == 1
    assert "Traceback" not in started.stderr and env.cli("status").returncode == 0


def test_stats_without_daemon_says_so(env: Env) -> None:
    r = env.cli("--no-daemon", "stats")
    assert r.returncode == 1 and "no daemon running" in r.stderr


def _imported(importtime_stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


def test_thin_client_imports_almost_nothing(env: Env) -> None:
    _warm(env)
    r = env.cli("generate", "--next", "@FEAT", python_args=("-X", "importtime"))
    assert r.returncode == 0 and "working in-process" not in r.stderr
    # Subtract what this interpreter imports before any perfd code runs: a site
    # .pth file of the machine's (one imports certifi, hence pathlib and zipfile)
    # is not the client's doing, and the client cannot avoid it.
    bare = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=env.environ,
                          capture_output=True, text=True, timeout=20)
    imported = _imported(r.stderr) - _imported(bare.stderr)
    for banned in ("pygls", "anyio", "httpx", "msgspec", "watchfiles", "json", "argparse", "pathlib", "re",
                   "socket", "asyncio", "perfd.app.commands", "perfd.engine", "psutil", "perfd.daemon.peer",
                   "perfd.cli.autostart"):
        assert banned not in imported, banned
    assert "_socket" in imported


CLIENT_BANNED = ("re", "argparse", "json", "pathlib", "socket", "asyncio", "msgspec", "anyio", "pygls", "httpx", "psutil",
                 "watchfiles", "perfd.engine", "perfd.app.commands",
                 # read from perfd/__init__.py (SERVED), or imported only on an error path: each module
                 # the warm call loads costs it about 0.2 ms
                 "perfd.command_registry", "perfd.exitcodes", "__future__")


def test_installed_command_imports_only_the_thin_client(env: Env) -> None:
    """The `perfd` command installed beside this interpreter, as a user runs it: its own
    code (an installer's entry-point wrapper would be here) adds nothing to the thin client."""
    perfd = shutil.which("perfd", path=os.path.dirname(sys.executable))
    assert perfd, f"no perfd command beside {sys.executable}: install perfd (pip install -e .)"
    _warm(env)
    argv = [perfd, "generate", "--next", "@FEAT"]

    def imports(*python_args: str, pythonpath: str | None = None) -> set[str]:
        """What the command's process imports beyond a bare `python <python_args> -c pass`."""
        e = dict(env.environ, PYTHONPROFILEIMPORTTIME="1")
        if pythonpath is not None:
            e["PYTHONPATH"] = pythonpath
        run = [sys.executable, *python_args, *argv] if python_args else argv
        r = subprocess.run(run, cwd=env.root, env=e, capture_output=True, text=True, timeout=20)
        assert r.returncode == 0 and "working in-process" not in r.stderr, r.stderr[-2000:]
        bare = subprocess.run([sys.executable, *python_args, "-c", "pass"], env=e, capture_output=True, text=True,
                              timeout=20)
        got = _imported(r.stderr) - _imported(bare.stderr)
        assert "perfd.cli.client" in got, f"no import times: was PYTHONPROFILEIMPORTTIME ignored?\n{r.stderr[-2000:]}"
        return got

    # As the user runs it: the interpreter's own start-up (site and the machine's .pth
    # files) is subtracted, it is not the command's doing.
    imported = imports()
    assert not [m for m in CLIENT_BANNED if m in imported], f"{perfd} imports {sorted(imported)}"
    assert "_socket" in imported
    # The same file without site: a site .pth of this machine's imports certifi, hence
    # re and pathlib, before any script runs, which hides from the run above what the
    # command's own code imports (the entry-point wrapper of pip before 25.0: `import re`).
    where = subprocess.run([sys.executable, "-c", "import os, perfd; print(os.path.dirname(perfd.__path__[0]))"],
                           env=env.environ, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    imported = imports("-S", pythonpath=where)
    assert not [m for m in CLIENT_BANNED if m in imported], f"{perfd} (without site) imports {sorted(imported)}"
    assert "_socket" in imported


def test_no_daemon_flag_and_no_workspace_work_in_process(env: Env) -> None:
    r = env.cli("--no-daemon", "status")
    assert r.returncode == 0 and env.pid() == 0
    # after the subcommand too, as the README shows `perfd run --no-daemon`
    r = env.cli("status", "--no-daemon")
    assert r.returncode == 0 and "@FEAT" in r.stdout and env.pid() == 0
    r = env.cli("run", "@FEAT", "--no-daemon")
    assert r.returncode == 1 and "no model is configured" in r.stderr and "unrecognized" not in r.stderr
    assert env.pid() == 0
    r = env.cli("status", cwd=env.base)
    assert r.returncode == 1 and "no PLAN workspace" in r.stderr and env.pid() == 0


def test_fallback_in_process_when_the_daemon_cannot_start(env: Env) -> None:
    # a runtime folder path too long for a Unix socket: the daemon cannot bind
    long_dir = os.path.join(env.base, "x" * 120)
    e = dict(env.environ, PERFD_RUNTIME_DIR=long_dir)
    r = env.cli("generate", "--next", "@FEAT", env=e, timeout=30)
    assert r.returncode == 0
    lines = r.stderr.splitlines()
    assert lines[0].startswith("perfd: ") and lines[0].endswith("working in-process")
    assert "too long for a Unix socket" in lines[0]  # known before spawning a daemon that could not bind
    assert not [n for n in os.listdir(env.state_dir) if n.endswith(".out")]  # a spawned daemon's output goes there
    assert "achievement 1.1" in r.stderr
