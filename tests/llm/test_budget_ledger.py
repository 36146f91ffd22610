"""The day's budget counted in the history's ledger: it holds across a daemon restart, in --no-daemon runs
and between two runs at once. Real processes against a stand-in server; each call costs more than half
the day's budget, so a second one is refused before anything is sent."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from fakeserver import FakeServer
from test_run_daemon import DaemonWs

# $0.10 a completion token, 6 tokens at most: each call reserves and costs $0.60 of a $1.00 day.
PRICED = ('price_prompt_per_1k = 0.0\nprice_completion_per_1k = 100.0\nmax_tokens = 6\n'
          'budget_usd_per_day = 1.0\n')


@pytest.fixture
def bws(server: FakeServer) -> Iterator[DaemonWs]:
    base = tempfile.mkdtemp(prefix="pb", dir="/tmp")  # short: a socket path must fit in 108 bytes
    w = DaemonWs(base, server)
    with open(os.path.join(w.root, "perfd.toml"), "w") as f:
        f.write(f'[llm]\nbase_url = "{server.base_url}"\nmodel = "fake-model"\n{PRICED}')
    w.trust()
    try:
        yield w
    finally:
        w.stop()
        shutil.rmtree(base, ignore_errors=True)


def refused(code: int, err: str) -> bool:
    return code == 1 and "daily model budget would be exceeded" in err and "$0.6000 of $1.0000" in err


def test_a_second_call_is_refused_after_a_daemon_restart(bws: DaemonWs, server: FakeServer) -> None:
    bws.start()
    code, out, err = bws.run("run", "@DOCS-SITE", "2.1")
    assert code == 0 and out.startswith("reply#"), err
    bws.stop()
    bws.start()
    code, out, err = bws.run("run", "@DOCS-SITE", "2.2")
    assert refused(code, err), err
    assert len(server.records) == 1


def test_a_second_call_is_refused_in_no_daemon_mode(bws: DaemonWs, server: FakeServer) -> None:
    code, out, err = bws.run("--no-daemon", "run", "@DOCS-SITE", "2.1")
    assert code == 0 and out.startswith("reply#"), err
    code, out, err = bws.run("--no-daemon", "run", "@DOCS-SITE", "2.2")
    assert refused(code, err), err
    assert len(server.records) == 1


def test_of_two_no_daemon_runs_started_together_one_is_refused(bws: DaemonWs, server: FakeServer) -> None:
    server.settings.latency_s = 0.3  # both are under way at once
    a = bws.popen("--no-daemon", "run", "@DOCS-SITE", "2.1")
    b = bws.popen("--no-daemon", "run", "@DOCS-SITE", "2.2")
    (_, err_a), (_, err_b) = a.communicate(timeout=30), b.communicate(timeout=30)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 1], (err_a, err_b)
    assert sum("daily model budget would be exceeded" in e for e in (err_a, err_b)) == 1
    assert len(server.records) == 1
