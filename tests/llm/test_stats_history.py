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
    assert text.startswith(f"model calls: 4 (workspace {os.path.realpath(ws)}) in ")
    assert "DOCS-SITE" in text and "API-CLIENT" in text
    assert "OUTCOME" in text and "\nok " in text
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


def test_history_is_per_workspace_with_all_for_every_one(tmp_path: Path, server: FakeServer) -> None:
    """A plan run in one workspace does not show in another's history; --all shows both."""
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(EXAMPLE, one)
    shutil.copytree(EXAMPLE, two)
    assert run(one, server, "@DOCS-SITE", "2.1")[0] == 0
    assert run(two, server, "@API-CLIENT", "--next")[0] == 0
    mine = json.loads(cli(["stats", "--history", "--json"], str(one)).stdout)
    assert [g["group"] for g in mine["by_plan"]] == ["DOCS-SITE"] and mine["workspace"] == os.path.realpath(one)
    theirs = json.loads(cli(["stats", "--history", "--json"], str(two)).stdout)
    assert [g["group"] for g in theirs["by_plan"]] == ["API-CLIENT"]
    every = json.loads(cli(["stats", "--history", "--json", "--all"], str(one)).stdout)
    assert {g["group"] for g in every["by_plan"]} == {"DOCS-SITE", "API-CLIENT"} and every["workspace"] is None
    assert "--all shows every workspace" in cli(["stats", "--history", "--model", "nope"], str(one)).stdout


def _seed(path: str) -> None:
    """A history with a long plan name, two models, two days, a cache hit and a formula-like name."""
    import anyio

    from perfd.llm import CallRecord, History

    now = time.time()
    rows = [CallRecord(ts=now - 86400, model="m1", latency_ms=100, outcome="ok", plan="PARALLEL-EXECUTION-AUTOMATION",
                       prompt_tokens=100, completion_tokens=50, cost=0.5, workspace="/w"),
            CallRecord(ts=now, model="m2", latency_ms=1, outcome="ok", plan="PARALLEL-EXECUTION-AUTOMATION",
                       prompt_tokens=100, completion_tokens=50, cache_hit=True, cost_saved=0.5, workspace="/w"),
            CallRecord(ts=now, model="m1", latency_ms=10, outcome="timeout", plan="=HYPERLINK(\"x\")", workspace="/w")]
    history = History(path)
    for r in rows:
        history.record(r)
    anyio.run(history.flush)
    history.close()


def test_history_filters_formats_and_charts(tmp_path: Path) -> None:
    from perfd.app import history_view as hv

    path = str(tmp_path / "h.sqlite3")
    _seed(path)
    q = hv.HistoryQuery(path=path, workspace="/w")
    text = hv.render(q, tty=False)
    assert "PARALLEL-EXECUTION-AUTOMATION" in text  # plan names are never cut
    chart = [line for line in text.splitlines() if line.startswith(("calls ", "tokens ", "cost ", "hit rate "))]
    assert len(chart) == 4 and all(len(line) <= 80 for line in chart)
    assert all("│" not in line and "█" not in line for line in chart)  # plain when not a terminal
    calls_bar = chart[0].split("|")[1]
    assert len(calls_bar) == 30 and calls_bar[-2:] != "  "  # a day per column, today last
    tty = hv.render(q, tty=True)
    assert "│" in tty and any(ch in tty for ch in "▁▂▃▄▅▆▇█")
    assert "33% overall" in tty  # one cache hit in the three calls of the chart's days
    # the cache hit's tokens are saved, not paid; its cost saved is a column
    plan = [line for line in text.splitlines() if line.startswith("PARALLEL-EXECUTION-AUTOMATION")][0].split()
    assert plan[1:8] == ["2", "1", "0", "150", "150", "0.5000", "0.5000"]
    # filters
    by_model = json.loads(hv.render(msgspec_replace(q, model="m2", format="json")))
    assert [g["calls"] for g in by_model["by_plan"]] == [1]
    by_plan = json.loads(hv.render(msgspec_replace(q, plan="@PARALLEL-EXECUTION-AUTOMATION", format="json")))
    assert sum(g["calls"] for g in by_plan["by_outcome"]) == 2
    today = json.loads(hv.render(msgspec_replace(q, since=hv.parse_since(time.strftime("%Y-%m-%d")), format="json")))
    assert sum(g["calls"] for g in today["by_outcome"]) == 2
    assert json.loads(hv.render(msgspec_replace(q, workspace="/other", format="json")))["by_plan"] == []
    # CSV: a header row, one row per group, opens in a spreadsheet, never a formula
    import csv
    import io

    rows = list(csv.reader(io.StringIO(hv.render(msgspec_replace(q, format="csv")))))
    assert rows[0][:3] == ["grouping", "group", "calls"] and all(len(r) == len(rows[0]) for r in rows)
    assert {r[0] for r in rows[1:]} == {"plan", "day", "outcome", "model"}
    assert ["plan", "PARALLEL-EXECUTION-AUTOMATION", "2"] == rows[1][:3]
    assert any(r[1] == "'=HYPERLINK(\"x\")" for r in rows)
    # Markdown: tables to paste into a pull request
    md = hv.render(msgspec_replace(q, format="markdown"))
    assert "| plan | calls |" in md and "| PARALLEL-EXECUTION-AUTOMATION | 2 | 1 |" in md
    assert md.count("| --- |") == 4


def msgspec_replace(q: object, **kw: object) -> object:
    import msgspec

    return msgspec.structs.replace(q, **kw)  # type: ignore[type-var]


def test_history_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    for argv, needle in ((["--format", "xml"], "invalid choice: 'xml'"), (["--since", "last tuesday"], "is not a date"),
                         (["--days", "0"], "--days takes a whole number"),
                         (["--json", "--format", "csv"], "disagree")):
        out = cli(["stats", "--history", *argv], str(ws))
        assert out.code == 2 and needle in out.stderr and "Traceback" not in out.stderr, (argv, out)
        assert len(out.stderr.splitlines()) <= 2
    out = cli(["stats", "--plan", "X"], str(ws))
    assert out.code == 2 and "--plan goes with --history" in out.stderr


def test_history_reads_without_a_daemon_through_the_thin_client(tmp_path: Path) -> None:
    """The thin client answers `stats --history` itself: no daemon is started for it."""
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    env = {**os.environ, "PERFD_STATE_DIR": os.environ["PERFD_STATE_DIR"], "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    (tmp_path / "run").mkdir(mode=0o700)
    p = subprocess.run([sys.executable, "-m", "perfd", "stats", "--history", "--format", "csv"], cwd=str(ws),
                       capture_output=True, text=True, timeout=30, env=env)
    assert p.returncode == 0 and p.stdout.startswith("grouping,group,calls"), p.stderr
    assert not list((tmp_path / "run").rglob("*.sock")) and not list((tmp_path / "run").rglob("*.pid"))
