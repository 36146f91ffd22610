"""`perfd doctor` against a real workspace, a real daemon, a real (loopback) model server and real
failures: a stopped daemon, a closed port, an unset key, an unknown model, an unreachable Redis, and a
server named by a workspace that is not trusted (which never receives the key)."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import Env

pytestmark = pytest.mark.slow

KEY = "doctor-test-key-123"


class ModelServer:
    """/v1/models on loopback, listing m1 and m2; records the Authorization headers it receives."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.auth.append(self.headers.get("Authorization"))
                if self.path != "/v1/models":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ModelServer]:
    s = ModelServer()
    yield s
    s.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def doctor_env(env: Env, url: str, **extra: str) -> dict[str, str]:
    e = dict(env.environ, HOME=os.path.join(env.base, "home"), PERFD_LLM_BASE_URL=url, PERFD_LLM_MODEL="m1",
             PERFD_LLM_API_KEY_ENV="DOCTOR_KEY", DOCTOR_KEY=KEY)
    for k in [k for k in e if k.startswith("PERFD_TEAM_") or k == "OPENAI_API_KEY"]:
        del e[k]
    e.update(extra)
    return e


def doctor(env: Env, environ: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, str]], str]:
    text = env.cli("doctor", *args, env=environ)
    got = env.cli("doctor", "--json", *args, env=environ)
    assert got.returncode == text.returncode, (text.stdout, got.stdout)
    report = json.loads(got.stdout)
    assert report["ok"] == (got.returncode == 0)
    return got.returncode, {c["name"]: c for c in report["checks"]}, text.stdout


def start_daemon(env: Env, environ: dict[str, str]) -> None:
    got = env.cli("daemon", "start", env=environ)
    assert got.returncode == 0, got.stderr


def test_healthy(env: Env, server: ModelServer) -> None:
    environ = doctor_env(env, server.url)
    ext = os.path.join(environ["HOME"], ".vscode", "extensions", "perfd.perfd-0.1.0")
    os.makedirs(ext)
    with open(os.path.join(ext, "package.json"), "w") as f:
        json.dump({"name": "perfd", "version": "0.1.0"}, f)
    start_daemon(env, environ)
    code, checks, text = doctor(env, environ)
    assert code == 0, text
    assert all(c["status"] in ("pass", "skip") for c in checks.values()), text
    assert checks["perfd"]["detail"].startswith("perfd ") and "Python 3." in checks["perfd"]["detail"]
    assert "1 plan under work-space/plans (@FEAT)" in checks["workspace"]["detail"]
    assert "[llm] model from environment (PERFD_LLM_MODEL)" in checks["settings"]["detail"]
    assert checks["daemon"]["status"] == "pass" and f"pid {env.pid()}" in checks["daemon"]["detail"]
    assert checks["file watcher"]["status"] == ("pass" if sys.platform.startswith("linux") else "skip")
    assert checks["model server"]["status"] == checks["model key"]["status"] == checks["model"]["status"] == "pass"
    assert checks["editor extension"]["detail"].startswith("0.1.0 (")
    assert checks["team Redis"]["status"] == "skip"
    assert f"Bearer {KEY}" in server.auth  # the settings in force named the server: it got the key
    assert text.endswith("all checks pass\n") and len(text.splitlines()) == len(checks) + 1


def test_a_stopped_daemon(env: Env, server: ModelServer) -> None:
    environ = doctor_env(env, server.url)
    start_daemon(env, environ)
    assert env.cli("daemon", "stop", env=environ).returncode == 0
    code, checks, text = doctor(env, environ)
    assert code == 1
    assert checks["daemon"]["status"] == "fail" and checks["daemon"]["detail"].startswith("not running")
    assert "perfd daemon start" in checks["daemon"]["fix"]
    assert "FAIL daemon: not running" in text and text.endswith("1 check failed\n")


def test_an_unreachable_model_server_is_named(env: Env) -> None:
    port = closed_port()
    environ = doctor_env(env, f"http://127.0.0.1:{port}/v1")
    start_daemon(env, environ)
    code, checks, text = doctor(env, environ)
    assert code == 1
    assert checks["model server"]["status"] == "fail"
    assert f"http://127.0.0.1:{port} is unreachable" in checks["model server"]["detail"]
    assert f"FAIL model server: http://127.0.0.1:{port} is unreachable" in text
    assert "[llm] base_url" in checks["model server"]["fix"]


def test_an_unset_key_and_an_unknown_model(env: Env, server: ModelServer) -> None:
    environ = doctor_env(env, server.url, PERFD_LLM_MODEL="nope")
    del environ["DOCTOR_KEY"]
    start_daemon(env, environ)
    code, checks, _ = doctor(env, environ)
    assert code == 1
    assert checks["model key"]["status"] == "fail" and "DOCTOR_KEY is not set" in checks["model key"]["detail"]
    assert checks["model"]["status"] == "fail" and "nope is not in" in checks["model"]["detail"]
    assert "m1, m2" in checks["model"]["detail"]
    assert server.auth and not any(server.auth)  # asked without a key: there was none


def test_an_unreachable_redis_with_team_set(env: Env, server: ModelServer) -> None:
    port = closed_port()
    environ = doctor_env(env, server.url, PERFD_TEAM_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    start_daemon(env, environ)
    code, checks, _ = doctor(env, environ)
    assert code == 1
    assert checks["team Redis"]["status"] == "fail"
    assert f"redis://127.0.0.1:{port}/0 is unreachable" in checks["team Redis"]["detail"]


def test_a_server_named_by_an_untrusted_workspace_never_gets_the_key(env: Env, server: ModelServer) -> None:
    environ = doctor_env(env, server.url)
    for k in ("PERFD_LLM_BASE_URL", "PERFD_LLM_MODEL"):
        del environ[k]
    with open(os.path.join(env.root, "perfd.toml"), "w") as f:
        f.write(f'[llm]\nbase_url = "{server.url}"\nmodel = "m1"\n')
    start_daemon(env, environ)
    code, checks, _ = doctor(env, environ)
    assert code == 1
    assert checks["settings"]["status"] == "fail" and "[llm] base_url" in checks["settings"]["detail"]
    assert "perfd trust" in checks["settings"]["fix"]
    assert not any(a and KEY in a for a in server.auth)


def test_outside_a_workspace(env: Env, server: ModelServer) -> None:
    outside = os.path.join(env.base, "elsewhere")
    os.makedirs(outside)
    environ = doctor_env(env, server.url)
    got = env.cli("doctor", "--json", cwd=outside, env=environ)
    assert got.returncode == 1
    checks = {c["name"]: c for c in json.loads(got.stdout)["checks"]}
    assert checks["workspace"]["status"] == "fail" and "no PLAN workspace" in checks["workspace"]["detail"]
    assert checks["daemon"]["status"] == "skip"
