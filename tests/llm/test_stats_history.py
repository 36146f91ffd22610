"""`perfd stats --history [--json]`: the call history by plan, by day and by outcome, after real calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fakeserver import FakeServer
from test_run_command import EXAMPLE, run

from perfd.app.commands import run as cli


def test_history_summaries_after_a_few_calls(tmp_path: Path, server: FakeServer) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    assert "none recorded yet" in cli(["stats", "--history"], str(ws)).stdout  # nothing yet, nothing created
    assert not os.path.exists(os.path.join(os.environ["PERFD_STATE_DIR"], "llm-history.sqlite3"))
    assert run(ws, server, "@DOCS-SITE", "2.1")[0] == 0
    assert run(ws, server, "@DOCS-SITE", "2.1")[0] == 0  # a cache hit
    assert run(ws, server, "@API-CLIENT", "--next")[0] == 0
    plan = ws / "work-space" / "plans" / "a_real-use-cases" / "DOCS-SITE" / "PLAN_DOCS-SITE.md"
    plan.write_text(plan.read_text().replace("Achievement 2.2: Tutorials", "Achievement 2.2: Tutorials !fail"))
    assert run(ws, server, "@DOCS-SITE", "2.2")[0] == 3  # a failed call is recorded too

    out = cli(["stats", "--history", "--json"], str(ws))
    assert out.code == 0, out.stderr
    data = json.loads(out.stdout)
    plans = {g["group"]: g for g in data["by_plan"]}
    assert plans["DOCS-SITE"]["calls"] == 3 and plans["DOCS-SITE"]["cache_hits"] == 1
    assert plans["DOCS-SITE"]["errors"] == 1 and plans["API-CLIENT"]["calls"] == 1
    assert [d["group"] for d in data["by_day"]] == [time.strftime("%Y-%m-%d")]
    assert data["by_day"][0]["calls"] == 4
    outcomes = {g["group"]: g["calls"] for g in data["by_outcome"]}
    assert outcomes["ok"] == 3 and sum(outcomes.values()) == 4

    text = cli(["stats", "--history"], str(ws)).stdout
    assert text.startswith("model calls: 4 in ") and "DOCS-SITE" in text and "API-CLIENT" in text
    assert "outcome" in text and "ok" in text
    # Inside the daemon (stats_for given) it reads the same file.
    assert cli(["stats", "--history", "--json"], str(ws), stats_for=lambda: None).stdout == out.stdout
    # And from the command line, without a daemon.
    p = subprocess.run([sys.executable, "-m", "perfd", "--no-daemon", "stats", "--history", "--json"], cwd=str(ws),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and json.loads(p.stdout) == data
    assert cli(["stats", "--history", "--prometheus"], str(ws)).code == 2


def test_history_follows_the_workspaces_history_path(tmp_path: Path, server: FakeServer) -> None:
    """A relative [llm] history_path is taken from the root, by `perfd run` and by `stats --history` alike."""
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    (ws / "perfd.toml").write_text('[llm]\nhistory_path = "records/calls.sqlite3"\n')
    assert run(ws, server, "@API-CLIENT", "--next")[0] == 0
    assert (ws / "records" / "calls.sqlite3").exists()
    assert not os.path.exists(os.path.join(os.environ["PERFD_STATE_DIR"], "llm-history.sqlite3"))
    sub = ws / "work-space" / "plans"
    for where in (str(ws), str(sub)):  # from anywhere inside the workspace
        out = cli(["stats", "--history", "--json"], where)
        assert out.code == 0, out.stderr
        assert json.loads(out.stdout)["by_outcome"][0]["calls"] == 1
    assert cli(["stats", "--history", "--json", "--root", str(ws)], "/").stdout == out.stdout
    # the environment wins over the file, as for every [llm] setting
    os.environ["PERFD_LLM_HISTORY_PATH"] = str(tmp_path / "elsewhere.sqlite3")
    try:
        assert "none recorded yet" in cli(["stats", "--history"], str(ws)).stdout
    finally:
        del os.environ["PERFD_LLM_HISTORY_PATH"]
    (ws / "perfd.toml").write_text("[llm\n")
    bad = cli(["stats", "--history"], str(ws))
    assert bad.code == 1 and "perfd.toml" in bad.stderr
