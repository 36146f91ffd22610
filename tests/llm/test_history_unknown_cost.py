"""An answer of a model with no known price is of unknown cost in the history (NULL), never 0, in every format."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import anyio
from fakeserver import FakeServer

from perfd.app import history_view as hv
from perfd.llm import CallRecord, History

# The calls table as perfd wrote it before unknown costs were NULL (cost NOT NULL; workspace and cost_saved added later).
_OLD_CALLS = """
CREATE TABLE calls (id INTEGER PRIMARY KEY, ts REAL NOT NULL, day TEXT NOT NULL, plan TEXT, achievement TEXT,
    state TEXT, model TEXT NOT NULL, latency_ms REAL NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, cost REAL NOT NULL, cache_hit INTEGER NOT NULL, outcome TEXT NOT NULL,
    error TEXT, attempts INTEGER NOT NULL, stream INTEGER NOT NULL, workspace TEXT,
    cost_saved REAL NOT NULL DEFAULT 0);
CREATE INDEX calls_plan ON calls(plan, ts);
PRAGMA user_version=1;
"""


def _old_file(path: str, now: float) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_CALLS)
    conn.execute("INSERT INTO calls (id, ts, day, plan, model, latency_ms, prompt_tokens, completion_tokens, cost, "
                 "cache_hit, outcome, attempts, stream, workspace) VALUES (7, ?, ?, 'P', 'old', 5, 10, 5, 0, 0, "
                 "'ok', 1, 0, '/w')", (now, time.strftime("%Y-%m-%d", time.localtime(now))))
    conn.commit()
    conn.close()


def _record(path: str, *rows: CallRecord) -> None:
    history = History(path)
    for r in rows:
        history.record(r)
    anyio.run(history.flush)
    history.close()


def _call(model: str, cost: float | None, *, cache_hit: bool = False, cost_saved: float | None = 0.0) -> CallRecord:
    return CallRecord(ts=time.time(), model=model, latency_ms=1, outcome="ok", plan="P", prompt_tokens=10,
                      completion_tokens=5, cost=cost, workspace="/w", cache_hit=cache_hit, cost_saved=cost_saved)


def test_an_old_file_is_migrated_in_place_and_its_rows_stay_as_they_were(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    now = time.time()
    _old_file(path, now)
    # Read-only first (stats --history on a file an older perfd wrote): readable as it is.
    ro = History(path, read_only=True)
    assert [s.cost for s in ro.by_model()] == [0.0]
    ro.close()
    _record(path, _call("free-local", None))
    conn = sqlite3.connect(path)
    notnull = {row[1]: row[3] for row in conn.execute("PRAGMA table_info(calls)")}
    assert notnull["cost"] == 0 and notnull["cost_saved"] == 0 and notnull["model"] == 1
    rows = conn.execute("SELECT id, model, cost FROM calls ORDER BY id").fetchall()
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert rows[0] == (7, "old", 0.0) and rows[1][1:] == ("free-local", None)  # the old row as it was; ids kept
    assert {"calls_plan", "calls_day", "calls_outcome", "calls_workspace"} <= indexes
    # Opening the migrated file again changes nothing.
    _record(path, _call("priced", 0.25))
    h = History(path)
    assert [(c.model, c.cost) for c in h.calls(limit=5)] == [("priced", 0.25), ("free-local", None), ("old", 0.0)]
    h.close()


def test_every_history_format_says_unknown(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    _record(path, _call("free-local", None), _call("free-local", None), _call("priced", 0.25),
            _call("priced", 0.0, cache_hit=True, cost_saved=0.25), _call("free-local", 0.0, cache_hit=True,
                                                                          cost_saved=None))
    q = hv.HistoryQuery(path=path, workspace="/w")

    data = json.loads(hv.render(msgspec_replace(q, format="json")))
    models = {g["group"]: g for g in data["by_model"]}
    assert models["free-local"]["cost"] is None and models["free-local"]["unknown_cost_calls"] == 2
    assert models["free-local"]["cost_saved"] is None and models["free-local"]["unknown_saved_calls"] == 1
    assert models["priced"]["cost"] == 0.25 and models["priced"]["unknown_cost_calls"] == 0
    assert models["priced"]["cost_saved"] == 0.25 and models["priced"]["unknown_saved_calls"] == 0
    plan = data["by_plan"][0]  # the total over both models: the known part, and how many are unknown
    assert plan["cost"] == 0.25 and plan["unknown_cost_calls"] == 2
    assert plan["cost_saved"] == 0.25 and plan["unknown_saved_calls"] == 1

    text = hv.render(q)
    lines = text.splitlines()
    free = next(line for line in lines if line.startswith("free-local"))
    assert free.split()[1:8] == ["3", "1", "0", "30", "15", "unknown", "unknown"]
    total = next(line for line in lines if line.startswith("P "))
    assert "≥ 0.2500 (2 calls of unknown cost)" in total and "≥ 0.2500 (1 call of unknown cost)" in total
    chart = next(line for line in lines if line.startswith("cost "))
    assert chart.endswith("sum ≥ 0.2500 (2 calls of unknown cost)")

    md = hv.render(msgspec_replace(q, format="markdown"))
    assert "| free-local | 3 | 1 | 0 | 30 | 15 | unknown | unknown |" in md
    assert "≥ 0.2500 (2 calls of unknown cost)" in md

    rows = list(csv.DictReader(io.StringIO(hv.render(msgspec_replace(q, format="csv")))))
    free_row = next(r for r in rows if r["grouping"] == "model" and r["group"] == "free-local")
    assert free_row["cost"] == "unknown" and free_row["unknown_cost_calls"] == "2"
    assert free_row["cost_saved"] == "unknown" and free_row["unknown_saved_calls"] == "1"
    plan_row = next(r for r in rows if r["grouping"] == "plan")
    assert plan_row["cost"] == "0.250000" and plan_row["unknown_cost_calls"] == "2"


def test_all_unknown_chart_total_says_unknown(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    _record(path, _call("free-local", None))
    chart = next(line for line in hv.render(hv.HistoryQuery(path=path, workspace="/w")).splitlines()
                 if line.startswith("cost "))
    assert chart.endswith("sum unknown")


def msgspec_replace(q: hv.HistoryQuery, **kw: object) -> hv.HistoryQuery:
    import msgspec

    return msgspec.structs.replace(q, **kw)


def test_a_run_of_an_unpriced_model_records_unknown_and_a_priced_one_its_cost(tmp_path: Path, server: FakeServer) -> None:
    import os
    import shutil

    from test_run_command import EXAMPLE, run

    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    assert run(ws, server, "@API-CLIENT", "--next")[0] == 0  # "fake-model": no price
    assert run(ws, server, "@API-CLIENT", "--next")[0] == 0  # a cache hit: cost 0
    (ws / "perfd.toml").write_text("[llm]\nprice_prompt_per_1k = 1.0\nprice_completion_per_1k = 1.0\n")
    assert run(ws, server, "@DOCS-SITE", "2.1")[0] == 0
    h = History(os.path.join(os.environ["PERFD_STATE_DIR"], "llm-history.sqlite3"), read_only=True)
    calls = h.calls(limit=3)
    h.close()
    assert [(c.cache_hit, c.cost is None, c.cost_saved is None) for c in reversed(calls)] == [
        (False, True, False), (True, False, True), (False, False, False)]  # the unpriced hit saved what is unknown
    assert calls[0].cost is not None and calls[0].cost > 0
