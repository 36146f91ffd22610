"""`perfd run` through the daemon: one shared LLMClient (pool, rate limit, cache), streamed output, cancellation.

Real processes: a daemon started with the fake server in perfd.toml, and
`python -m perfd run ...` clients. Every wait is bounded; the daemon is
stopped (SIGTERM, then SIGKILL) by the fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fakeserver import FakeServer
from waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "daemon" / "perfd" / "example"
WINDOW_S = 1.0


class DaemonWs:
    def __init__(self, base: str, server: FakeServer) -> None:
        self.root = os.path.join(base, "ws")
        shutil.copytree(EXAMPLE, self.root)
        self.root = os.path.realpath(self.root)
        with open(os.path.join(self.root, "perfd.toml"), "w") as f:
            f.write(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "fake-model"\nrpm = 1\nwindow_s = {WINDOW_S}\n')
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
        self.environ.update(PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
                            PYTHONDONTWRITEBYTECODE="1")
        self.daemon: subprocess.Popen[bytes] | None = None
        self.trust()

    def trust(self) -> None:
        """The workspace's [llm] sends prompts to a server: the user trusts it (again after each edit)."""
        subprocess.run([sys.executable, "-m", "perfd", "trust", "--root", self.root], env=self.environ, check=True,
                       capture_output=True, timeout=30)

    def sock(self) -> str:
        old = dict(os.environ)
        os.environ.update(PERFD_RUNTIME_DIR=self.environ["PERFD_RUNTIME_DIR"])
        try:
            from perfd.wire.rendezvous import state_paths

            return str(state_paths(self.root).sock)
        finally:
            os.environ.clear()
            os.environ.update(old)

    def start(self) -> None:
        self.daemon = subprocess.Popen([sys.executable, "-m", "perfd", "daemon", "run", "--root", self.root],
                                       env=self.environ, cwd=self.root, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        from perfd.wire.rendezvous import Connection

        def up() -> bool:
            try:
                with Connection(self.sock(), 1.0) as c:
                    return bool(c.call("ping").get("result"))
            except OSError:
                return False

        wait_for(up, what="the daemon")

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "perfd", *args], cwd=self.root, env=self.environ,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str) -> tuple[int, str, str]:
        p = self.popen(*args)
        out, err = p.communicate(timeout=30)
        return p.returncode, out, err

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait(timeout=5)


@pytest.fixture
def dws(server: FakeServer) -> Iterator[DaemonWs]:
    base = tempfile.mkdtemp(prefix="pr", dir="/tmp")  # short: a socket path must fit in 108 bytes
    w = DaemonWs(base, server)
    try:
        yield w
    finally:
        w.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_without_a_daemon_run_works_in_process(dws: DaemonWs, server: FakeServer) -> None:
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1")
    assert code == 0, err
    assert out.startswith("reply#") and "sending achievement 2.1" in err and "daemon" not in err


def test_two_runs_share_the_daemons_client_rate_limit_pool_and_cache(dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    a = dws.popen("run", "@DOCS-SITE", "2.1", "--no-cache")
    b = dws.popen("run", "@DOCS-SITE", "2.2", "--no-cache")
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=30), b.communicate(timeout=30)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    assert out_a.startswith("reply#") and out_b.startswith("reply#")
    assert "sending achievement 2.1 (" in err_a and "sending achievement 2.2 (" in err_b
    assert len(server.records) == 2
    # One rate limiter (rpm = 1 per WINDOW_S): the second request waited for the window.
    first, second = sorted(r.arrival for r in server.records)
    assert second - first >= WINDOW_S * 0.9
    # One pool too: the second process's call went out on the connection the first opened.
    assert server.connections_opened == 1

    # One cache: an answer fetched by one client is a hit for another (no new request).
    code, out1, err1 = dws.run("run", "@DOCS-SITE", "2.3")
    assert code == 0, err1
    assert len(server.records) == 3
    code, out2, err2 = dws.run("run", "@DOCS-SITE", "2.3")
    assert code == 0 and out2 == out1 and len(server.records) == 3
    assert " sent · " in err1 and " from cache · " in err2

    # The same output as the in-process path (a cache hit there too: the cache file is shared).
    code, out3, err3 = dws.run("--no-daemon", "run", "@DOCS-SITE", "2.3")
    assert (code, out3, err3) == (0, out2, err2) or (code, out3, _untimed(err3)) == (0, out2, _untimed(err2))


def test_write_and_errors_through_the_daemon(dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    code, out, err = dws.run("run", "@DOCS-SITE", "2.2", "--write")
    assert code == 0, err
    path = Path(dws.root) / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans" \
        / "SUBPLAN_DOCS-SITE_22.md"
    assert path.read_text() == out and "-> wrote work-space/plans/a_real-use-cases/DOCS-SITE/subplans/" in err
    code, _, err = dws.run("run", "@NO-SUCH-PLAN")
    assert code == 1 and "perfd: " in err
    code, _, err = dws.run("run", "@DOCS-SITE", "2.1", "--parallel")
    assert code == 2


def test_through_the_daemon_nothing_is_sent_for_nothing_and_a_blocked_one_is_refused(
        dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    code, out, err = dws.run("run", "@DOCS-SITE", "1.1", "--json")
    assert code == 0 and '"nothing_to_do":true' in out and "nothing to do" in err, err
    code, out, err = dws.run("run", "@DOCS-SITE", "3.1")
    assert code == 1 and "waits on" in err and "--blocked-ok" in err and "running in-process" not in err
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1", "--dry-run")
    assert code == 0 and "dry run, nothing sent" in err and "(achievement 2.1's section)" in out
    assert server.records == []


def test_a_failed_write_through_the_daemon_is_one_line_exit_write_and_the_answer_kept(
        dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    folder = Path(dws.root) / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans"
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1", "--write")
    assert code == 5 and out.startswith("reply#") and len(server.records) == 1, err
    last = err.splitlines()[-1]
    assert last.startswith("perfd: cannot write work-space/plans/a_real-use-cases/DOCS-SITE/subplans/"
                           "SUBPLAN_DOCS-SITE_21.md: Not a directory (")
    assert "internal error" not in err and "running in-process" not in err
    code, again, err = dws.run("stats", "--history", "--answer", last.rsplit("--answer ", 1)[1])
    assert code == 0 and again == out.rstrip("\n"), err


def test_the_daemon_answers_run_with_notifications_then_a_summary(dws: DaemonWs, server: FakeServer) -> None:
    import perfd
    from perfd.wire.rendezvous import Connection

    dws.start()
    with Connection(dws.sock(), 20.0) as c:
        resp = c.call("run", {"argv": ["run", "@DOCS-SITE", "2.1"], "cwd": dws.root, "version": perfd.__version__})
        # call() skipped the notifications; ask again and collect them by hand (a cache hit now).
        c.send_body(b'{"jsonrpc":"2.0","id":99,"method":"run","params":{"argv":["run","@DOCS-SITE","2.1"],'
                    b'"cwd":' + repr(dws.root).replace("'", '"').encode() + b'}}')
        chunks: list[dict[str, Any]] = []
        while True:
            msg = c.recv()
            if msg.get("method") == "runChunk":
                chunks.append(msg["params"])
            elif msg.get("id") == 99:
                final = msg
                break
    result = resp["result"]
    [answer] = result["answers"]
    assert result["code"] == 0 and answer["achievement"] == "2.1" and answer["tokens"] > 0
    assert answer["cached"] is False and answer["ok"] is True and answer.get("error") is None
    assert result["summary"]["achievements"] == 1 and result["summary"]["code"] == 0
    assert final["result"]["answers"][0]["cached"] is True and final["result"]["summary"]["cached"] == 1
    text = "".join(ch["text"] for ch in chunks if ch["stream"] == "out")
    assert text.startswith("reply#") and len([ch for ch in chunks if ch["stream"] == "out"]) > 1
    errs = "".join(ch["text"] for ch in chunks if ch["stream"] == "err")
    assert "2.1 (no_subplan): answer from the response cache" in errs and "sending" not in errs


def test_a_client_that_leaves_cancels_the_daemons_call(dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    server.settings.stream_delay_s = 60.0  # the first chunk, then a long pause
    p = dws.popen("run", "@DOCS-SITE", "2.1", "--no-cache")
    try:
        assert p.stdout is not None
        assert p.stdout.read(6) == "reply#"  # streamed through the daemon as it arrives
    finally:
        p.kill()
        p.communicate(timeout=10)
    # The daemon cancelled the request's task, which closed the HTTP response.
    wait_for(lambda: server.closed_by_client == 1 and server.in_flight == 0, what="the call to be cancelled")
    server.settings.stream_delay_s = 0.0
    code, out, err = dws.run("run", "@DOCS-SITE", "2.2")
    assert code == 0 and out.startswith("reply#"), err


def test_a_daemon_without_the_key_falls_back_to_in_process(dws: DaemonWs, server: FakeServer) -> None:
    toml = Path(dws.root) / "perfd.toml"
    toml.write_text(toml.read_text() + 'api_key_env = "PERFD_TEST_KEY"\n')
    dws.trust()  # a new key variable: trusted anew
    dws.start()  # started without PERFD_TEST_KEY
    env = dict(dws.environ, PERFD_TEST_KEY="sk-test")
    p = subprocess.run([sys.executable, "-m", "perfd", "run", "@DOCS-SITE", "2.1"], cwd=dws.root, env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "the daemon's environment has no PERFD_TEST_KEY" in p.stderr and "running in-process" in p.stderr
    assert server.records[-1].authorization == "Bearer sk-test"


def test_stats_show_the_daemons_model_client(dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    code, _, err = dws.run("run", "@DOCS-SITE", "2.1")
    assert code == 0, err
    code, text, err = dws.run("stats")
    assert code == 0, err
    assert "model: fake-model at " in text and "breaker closed" in text and "calls 1" in text
    code, js, _ = dws.run("stats", "--json")
    llm = msgspec.json.decode(js)["llm"]
    assert llm["requests"] == 1 and llm["breaker_state"] == "closed" and llm["connections_opened"] == 1
    code, prom, _ = dws.run("stats", "--prometheus")
    assert 'perfd_llm_breaker_state{state="closed"} 1' in prom and "perfd_llm_requests_total 1" in prom


def _untimed(text: str) -> str:
    """Output with its seconds masked (two runs print the same bytes but for how long they took)."""
    import re

    return re.sub(r"\d+\.\d s\b", "_ s", text)


def test_the_run_client_imports_neither_the_engine_nor_the_model_client(dws: DaemonWs, server: FakeServer) -> None:
    """`perfd run` through a daemon: the client process is a thin one (no engine, no msgspec, no httpx)."""
    dws.start()
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "perfd", "run", "@DOCS-SITE", "2.1"],
                       cwd=dws.root, env=dws.environ, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("reply#"), p.stderr[-2000:]
    bare = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], env=dws.environ,
                          capture_output=True, text=True, timeout=20)

    def imported(text: str) -> set[str]:
        return {line.split("|")[-1].strip() for line in text.splitlines() if line.startswith("import time:")}

    got = imported(p.stderr) - imported(bare.stderr)
    assert "perfd.cli.run_client" in got
    for banned in ("perfd.engine", "perfd.engine.engine", "perfd.app.run", "perfd.llm", "httpx", "msgspec", "anyio"):
        assert banned not in got, banned


def test_a_configuration_typo_is_reported_once(dws: DaemonWs) -> None:
    """The daemon's answer is the workspace's own mistake: no in-process run to say it again."""
    with open(os.path.join(dws.root, "perfd.toml"), "w") as f:
        f.write('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodle = "x"\n')
    dws.start()
    code, out, err = dws.run("run", "@DOCS-SITE", "2.1")
    assert code == 1 and out == ""
    assert err.count("perfd.toml:3: unknown setting [llm] modle (did you mean model?)") == 1  # file, line, guess
    assert "in-process" not in err and "daemon error" not in err
