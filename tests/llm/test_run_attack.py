"""`perfd run` when things go wrong after the daemon accepted the run, and a model call's overall deadline.

- a single 2 MiB streamed chunk goes through the daemon (split across frames),
  printed and written once, with one model call;
- a daemon lost after it accepted the run is never followed by a second,
  in-process call (two paid calls, the output twice);
- Ctrl-C ends `perfd run` with exit 130 and one line;
- `total_timeout_s` bounds a call, retries included.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from fakeserver import FakeServer
from llm_helpers import make_config, user
from test_run_daemon import DaemonWs, dws  # noqa: F401  (the fixture)
from waiting import wait_for

from perfd.llm import LLMClient, LLMTimeout

BIG = 2 * 1024 * 1024 + 17


def test_a_2_mib_chunk_is_carried_through_the_daemon_once(dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    server.script({"reply": "\x1b" + "z" * BIG + "\n", "chunks": 1})
    code, out, err = dws.run("run", "@DOCS-SITE", "2.2", "--write")
    assert code == 0, err[-2000:]
    assert out == "\x1b" + "z" * BIG + "\n"  # once, whole
    assert "running in-process" not in err and "exists; not overwritten" not in err
    assert len(server.records) == 1  # one paid call
    path = Path(dws.root) / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "subplans" \
        / "SUBPLAN_DOCS-SITE_22.md"
    assert path.read_text() == out


def test_a_daemon_lost_after_it_accepted_the_run_is_not_followed_by_a_second_call(
        dws: DaemonWs, server: FakeServer) -> None:
    dws.start()
    server.script({"stall": 20})
    p = dws.popen("run", "@DOCS-SITE", "2.1", "--no-cache")
    wait_for(lambda: len(server.records) == 1, what="the daemon's model call")
    assert dws.daemon is not None
    os.kill(dws.daemon.pid, signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3, err
    assert "lost the daemon during the run" in err and "running in-process" not in err
    time.sleep(0.3)
    assert len(server.records) == 1  # never paid twice


@pytest.mark.parametrize("through", ["daemon", "in-process"])
def test_ctrl_c_on_run_exits_130_with_one_line(dws: DaemonWs, server: FakeServer, through: str) -> None:
    if through == "daemon":
        dws.start()
    server.script({"stall": 20})
    p = dws.popen("run", "@DOCS-SITE", "2.1", "--no-cache")
    wait_for(lambda: len(server.records) == 1, what="the model call")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("perfd: ") and " sending achievement " not in ln]
    assert lines == ["perfd: interrupted; the model call was cancelled"], err


async def test_total_timeout_bounds_a_call_with_retries(server: FakeServer) -> None:
    server.script(*[{"stall": 5}] * 4)
    cfg = make_config(server.base_url, cache=False, max_retries=3, timeout_s=0.4, total_timeout_s=0.6,
                      retry_base_s=0.05, retry_max_s=0.05)
    async with LLMClient(cfg) as llm:
        with pytest.raises(LLMTimeout, match="total_timeout_s=0.6"):
            await llm.complete(user("x"))
    assert len(server.records) == 2  # the second attempt clipped to what was left; no third or fourth


async def test_total_timeout_bounds_a_trickling_stream(server: FakeServer) -> None:
    server.script({"reply": "abcdefghij", "chunks": 10, "stream_delay": 0.2})
    cfg = make_config(server.base_url, cache=False, max_retries=0, timeout_s=5, total_timeout_s=0.5)
    got = ""
    async with LLMClient(cfg) as llm:
        with pytest.raises(LLMTimeout, match="total_timeout_s"):
            async with llm.stream(user("x")) as s:
                async for d in s:
                    got += d
    assert 0 < len(got) < 10


def test_total_timeout_is_a_setting(tmp_path: Path) -> None:
    from perfd.llm.config import LLMConfig

    assert LLMConfig(base_url="http://127.0.0.1:1/v1", model="m").total_timeout_s == 300.0
