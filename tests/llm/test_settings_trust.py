"""Settings you can trust, through the real CLI: a cloned repository's perfd.toml is input, never authority.

Each attack of the settings issue, tried again with a committed perfd.toml and
nothing else: a key variable and a server of the repository's choosing, a
team Redis with a password variable, a shipped response cache, /metrics on
every interface. Then live settings: a model changed while a daemon runs, a
caller's PERFD_* on one call, a plans folder moved, a broken file; in-process
and through the daemon alike.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeserver import FakeServer
from test_run_command import EXAMPLE

from perfd import exitcodes

pytestmark = pytest.mark.slow
SECRET = "ghp_not-for-the-repository"


class Clone:
    """A cloned workspace, the user's own config folder and state, and the CLI as the user runs it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.root = os.path.realpath(os.path.join(base, "ws"))
        shutil.copytree(EXAMPLE, self.root)
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("PERFD_")}
        self.environ.update(PERFD_RUNTIME_DIR=os.path.join(base, "r"), PERFD_STATE_DIR=os.path.join(base, "s"),
                            XDG_CONFIG_HOME=os.path.join(base, "cfg"), PYTHONDONTWRITEBYTECODE="1",
                            GITHUB_TOKEN=SECRET)

    def toml(self, text: str) -> None:
        Path(self.root, "perfd.toml").write_text(text)

    def user_config(self, text: str) -> None:
        p = Path(self.base, "cfg", "perfd", "config.toml")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "perfd", *args], cwd=self.root, env={**self.environ, **extra},
                              capture_output=True, text=True, timeout=60)

    def daemon_pid(self) -> int:
        r = self.cli("daemon", "status", "--json")
        import json

        return int(json.loads(r.stdout)["pid"]) if r.returncode == 0 else 0

    def stop(self) -> None:
        self.cli("daemon", "stop")


@pytest.fixture
def clone() -> Iterator[Clone]:
    base = tempfile.mkdtemp(prefix="st", dir="/tmp")  # short: a socket path must fit in 108 bytes
    c = Clone(base)
    try:
        yield c
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mine() -> Iterator[FakeServer]:
    """The user's own model server (the `server` fixture plays the repository author's)."""
    with FakeServer(max_lifetime_s=90) as srv:
        yield srv


MODES = [("--no-daemon",), ()]  # in-process, and through a daemon (started by a status first)


def run(clone: Clone, mode: tuple[str, ...], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    if not mode:
        assert clone.cli("status", **extra).returncode in (0, 1)  # a daemon runs for the call that follows
    return clone.cli("run", *mode, "@API-CLIENT", "--next", *args, **extra)


@pytest.mark.parametrize("mode", MODES, ids=["in-process", "daemon"])
def test_an_untrusted_key_variable_and_server_get_nothing(clone: Clone, server: FakeServer, mine: FakeServer,
                                                          mode: tuple[str, ...]) -> None:
    clone.toml(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "evil"\napi_key_env = "GITHUB_TOKEN"\n')
    r = run(clone, mode)
    assert r.returncode == exitcodes.ERROR and r.stdout == ""
    assert "ignoring [llm] base_url, [llm] model, [llm] api_key_env" in r.stderr and "perfd trust" in r.stderr
    assert server.records == []
    # With the user's own model configured, that one is used, without the token, and the call says why.
    clone.user_config(f'[llm]\nbase_url = "{mine.base_url}"\nmodel = "mine"\n')
    r = run(clone, mode)
    assert r.returncode == 0, r.stderr
    assert server.records == [] and mine.records[-1].authorization is None
    assert mine.records[-1].body["model"] == "mine" and SECRET not in str(mine.records[-1].body)
    assert "ignoring [llm] base_url, [llm] model, [llm] api_key_env" in r.stderr and "(using mine)" in r.stderr
    # Trusted by the user: the workspace's settings are used, as they ask.
    assert clone.cli("trust").returncode == 0
    r = run(clone, mode)
    assert r.returncode == 0, r.stderr
    assert server.records[-1].authorization == f"Bearer {SECRET}" and server.records[-1].body["model"] == "evil"


def test_a_password_in_the_redis_url_is_refused(clone: Clone, mine: FakeServer) -> None:
    clone.user_config(f'[llm]\nbase_url = "{mine.base_url}"\nmodel = "mine"\n'
                      '[team]\nredis_url = "redis://127.0.0.1:1/0?password=hunter2"\n')
    r = clone.cli("run", "--no-daemon", "@API-CLIENT", "--next")
    assert r.returncode == exitcodes.ERROR and "holds a password" in r.stderr and "hunter2" not in r.stderr
    assert mine.records == []


def test_an_untrusted_team_redis_is_never_contacted(clone: Clone, mine: FakeServer) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[bytes] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    accepted.append(conn.recv(4096))
                except OSError:
                    accepted.append(b"")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        port = listener.getsockname()[1]
        clone.toml(f'[team]\nredis_url = "redis://127.0.0.1:{port}/0"\nredis_password_env = "GITHUB_TOKEN"\n')
        clone.user_config(f'[llm]\nbase_url = "{mine.base_url}"\nmodel = "mine"\n')
        r = clone.cli("run", "--no-daemon", "@API-CLIENT", "--next")
        assert r.returncode == 0, r.stderr
        assert "ignoring [team] redis_url, [team] redis_password_env" in r.stderr
        assert accepted == [] and len(mine.records) == 1
    finally:
        done.set()
        t.join(timeout=5)
        listener.close()


def test_a_shipped_response_cache_is_not_read(clone: Clone, server: FakeServer, mine: FakeServer) -> None:
    # The repository's author fills a cache inside the workspace (here: by a trusted run of their own).
    clone.toml(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "m"\ncache_path = "shipped.sqlite3"\n')
    assert clone.cli("trust").returncode == 0
    first = clone.cli("run", "--no-daemon", "@API-CLIENT", "--next")
    assert first.returncode == 0 and os.path.exists(os.path.join(clone.root, "shipped.sqlite3"))
    # A victim has never trusted it: the same prompt goes to the victim's own server, the cache unread.
    assert clone.cli("trust", "--revoke").returncode == 0
    clone.user_config(f'[llm]\nbase_url = "{mine.base_url}"\nmodel = "m"\n')
    r = clone.cli("run", "--no-daemon", "@API-CLIENT", "--next")
    assert r.returncode == 0, r.stderr
    assert len(mine.records) == 1 and "1 sent, 0 from cache" in r.stderr and "[llm] cache_path" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_beyond_loopback_wait_for_trust(clone: Clone) -> None:
    port = _free_port()
    clone.toml(f'[daemon]\nmetrics_addr = "0.0.0.0:{port}"\n')
    assert clone.cli("status").returncode == 0  # a daemon starts
    status = clone.cli("daemon", "status")
    assert "waiting for `perfd trust`: [daemon] metrics_addr" in status.stdout and "metrics:" not in status.stdout
    with socket.socket() as s:  # nothing listens on that port, on any interface
        s.bind(("0.0.0.0", port))
    assert "waits for `perfd trust`" in clone.cli("config").stdout


def test_a_model_changed_while_a_daemon_runs_is_used_by_the_next_call_once_trusted(
        clone: Clone, server: FakeServer) -> None:
    clone.toml(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "m1"\n')
    assert clone.cli("trust").returncode == 0
    assert clone.cli("status").returncode == 0
    pid = clone.daemon_pid()
    assert clone.cli("run", "@API-CLIENT", "--next").returncode == 0
    assert server.records[-1].body["model"] == "m1"
    clone.toml(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "m2"\n')
    r = clone.cli("run", "@API-CLIENT", "--next")  # changed since trusted: not used, and said so
    assert r.returncode == exitcodes.ERROR and "[llm] model" in r.stderr and "perfd trust" in r.stderr
    assert len(server.records) == 1
    assert clone.cli("trust").returncode == 0
    r = clone.cli("run", "@API-CLIENT", "--next")
    assert r.returncode == 0 and server.records[-1].body["model"] == "m2", r.stderr
    # PERFD_LLM_MODEL on one call is used by that call only
    assert clone.cli("run", "@API-CLIENT", "--next", "--no-cache", PERFD_LLM_MODEL="m3").returncode == 0
    assert server.records[-1].body["model"] == "m3"
    assert clone.cli("run", "@API-CLIENT", "--next", "--no-cache").returncode == 0
    assert server.records[-1].body["model"] == "m2"
    assert clone.daemon_pid() == pid  # the same daemon served every call: a model change needs no restart
    assert "model: m2 at 127.0.0.1" in clone.cli("daemon", "status").stdout


BAD = {
    "a wrong type": ('[cache]\ncapacity = "big"\n', "perfd: perfd.toml:2: [cache] capacity = 'big': expected int, got str"),
    "an unknown table": ("[cach]\ncapacity = 1\n", "perfd: perfd.toml:1: unknown table [cach] (did you mean [cache]?)"),
    "an unknown key": ("[daemon]\nidle_timeout = 5\n",
                       "perfd: perfd.toml:2: unknown setting [daemon] idle_timeout (did you mean idle_timeout_s?)"),
    "a key outside any table": ("idle_timeout_s = 5\n", "perfd: perfd.toml:1: idle_timeout_s is not a setting"),
    "plans_dir not a string": ("[workspace]\nplans_dir = 5\n", "perfd: perfd.toml:2: [workspace] plans_dir = 5"),
    "invalid TOML": ("[cache\n", "perfd: perfd.toml: invalid TOML: "),
}


@pytest.mark.parametrize("text,line", BAD.values(), ids=BAD.keys())
def test_a_bad_setting_is_one_line_and_exit_1_in_both_modes(clone: Clone, text: str, line: str) -> None:
    assert clone.cli("status").returncode == 0  # a daemon runs, with good settings
    clone.toml(text)
    got = {}
    for mode in ((), ("--no-daemon",)):
        for cmd in (("status",), ("generate", "@API-CLIENT"), ("run", "@API-CLIENT")):
            r = clone.cli(*mode, *cmd)
            assert (r.returncode, r.stdout) == (exitcodes.ERROR, ""), (mode, cmd, r.stderr)
            assert r.stderr.startswith(line) and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
            got[(mode, cmd[0])] = r.stderr
    assert got[((), "status")] == got[(("--no-daemon",), "status")]  # the same line either way
    clone.toml("")  # fixed: answered again, by the daemon that kept serving
    assert clone.cli("status").returncode == 0


def test_a_plans_folder_moved_while_a_daemon_runs_is_seen_by_the_next_call(clone: Clone) -> None:
    assert "@API-CLIENT" in clone.cli("status").stdout
    pid = clone.daemon_pid()
    shutil.copytree(os.path.join(clone.root, "work-space", "plans", "API-CLIENT"),
                    os.path.join(clone.root, "elsewhere", "ONLY-HERE"))
    os.rename(os.path.join(clone.root, "elsewhere", "ONLY-HERE", "PLAN_API-CLIENT.md"),
              os.path.join(clone.root, "elsewhere", "ONLY-HERE", "PLAN_ONLY-HERE.md"))
    clone.toml('[workspace]\nplans_dir = "elsewhere"\n')
    r = clone.cli("status")
    assert r.returncode == 0 and "@ONLY-HERE" in r.stdout and "@API-CLIENT" not in r.stdout, r.stderr
    assert r.stderr == ""  # handed over to a new daemon, silently
    assert clone.daemon_pid() not in (0, pid)


def test_a_callers_own_cache_settings_are_answered_in_its_process(clone: Clone) -> None:
    plain = clone.cli("status")
    r = clone.cli("status", PERFD_CACHE_TTL_S="5")
    assert r.returncode == 0 and r.stdout == plain.stdout
    assert r.stderr == "perfd: your PERFD_* settings differ from the daemon's ([workspace] or [cache]); " \
                       "working in-process\n"
    assert clone.cli("status").stderr == ""  # the daemon goes on serving everyone else


def test_no_help_and_no_settings_command_starts_a_daemon(clone: Clone) -> None:
    for args in (("config",), ("config", "--json"), ("trust", "--show")):
        assert clone.cli(*args).returncode == 0
    assert clone.daemon_pid() == 0


@pytest.mark.parametrize("mode", MODES, ids=["in-process", "daemon"])
def test_a_settings_name_with_control_characters_is_shown_escaped(clone: Clone, mode: tuple[str, ...]) -> None:
    clone.toml('[llm]\n"mod\\u001b[31mel" = "x"\n')  # a quoted TOML key may hold an escape sequence
    r = run(clone, mode)
    assert r.returncode == exitcodes.ERROR and "\x1b" not in r.stderr and "mod\\e[31mel" in r.stderr, r.stderr
