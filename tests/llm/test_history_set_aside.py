"""A history (or cache) file set aside by another process: every writer reopens the new file.

The daemon holds the history open; a CLI finds the file corrupt and sets it
aside. Before, the daemon kept writing into the set-aside file and `stats
--history` showed no calls. Also: only the newest few set-aside files are
kept, and a reader opens the file for reading only (a read-only folder works,
a damaged file is reported, never repaired by a reader).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from perfd.app.commands import run as cli
from perfd.llm.history import CallRecord, History
from perfd.llm.store import KEEP_SET_ASIDE


def _call(plan: str) -> CallRecord:
    return CallRecord(ts=time.time(), model="m", latency_ms=1.0, outcome="ok", plan=plan)


async def test_a_writer_reopens_a_history_set_aside_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    daemon = History(path)
    daemon.record(_call("BEFORE"))
    await daemon.flush()
    # Another process finds the file damaged and sets it aside (as SQLiteStore does: a rename).
    os.replace(path, path + ".corrupt-20250101T000000")
    other = History(path)
    assert other.count() == 0  # a new, empty file
    other.close()
    daemon.record(_call("AFTER"))
    await daemon.flush()
    reader = History(path, read_only=True)
    assert [s.group for s in reader.by_plan()] == ["AFTER"]  # the daemon wrote into the new file
    reader.close()
    daemon.close()


async def test_only_the_newest_set_aside_files_are_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    for i in range(KEEP_SET_ASIDE + 3):
        with open(path, "wb") as f:
            f.write(b"not a database %d" % i * 50)
        h = History(path)
        assert h.count() == 0
        h.close()
        time.sleep(0.01)
    aside = [n for n in os.listdir(tmp_path) if n.startswith("h.sqlite3.corrupt-")]
    assert len(aside) == KEEP_SET_ASIDE, aside


def test_stats_history_reads_a_read_only_copy_and_reports_damage(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    (ws / "work-space" / "plans").mkdir(parents=True)
    hist = ws / "state" / "h.sqlite3"
    hist.parent.mkdir()
    h = History(str(hist))
    h._store.run(lambda c: c.execute("SELECT 1"))
    h.close()
    (ws / "perfd.toml").write_text(f'[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
                                   f'history_path = "{hist}"\n')
    with sqlite3.connect(hist) as c:
        c.execute("INSERT INTO calls(ts, day, plan, model, latency_ms, prompt_tokens, completion_tokens, cost, "
                  "cache_hit, outcome, attempts, stream) VALUES (1, '2025-01-01', 'P', 'm', 1, 0, 0, 0, 0, 'ok', 1, 0)")
    before = sorted(os.listdir(hist.parent))
    out = cli(["stats", "--history", "--json", "--all"], str(ws))  # --all: the row names no workspace
    assert out.code == 0 and '"P"' in out.stdout, out.stderr
    assert sorted(os.listdir(hist.parent)) == before  # a reader creates nothing
    hist.write_bytes(b"garbage" * 1000)
    out = cli(["stats", "--history"], str(ws))
    assert out.code == 1 and out.stderr.startswith("perfd: cannot read the model-call history")
    assert len(out.stderr.splitlines()) == 1
    assert hist.read_bytes() == b"garbage" * 1000  # not set aside by a reader
    assert not [n for n in os.listdir(hist.parent) if ".corrupt-" in n]


def test_history_text_escapes_plan_names(tmp_path: Path) -> None:
    from perfd.app.history_view import HistoryQuery, render

    path = str(tmp_path / "h.sqlite3")
    h = History(path)
    h._store.run(lambda c: c.execute("SELECT 1"))
    h.close()
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO calls(ts, day, plan, model, latency_ms, prompt_tokens, completion_tokens, cost, "
                  "cache_hit, outcome, attempts, stream) VALUES (1, '2025-01-01', ?, 'm', 1, 0, 0, 0, 0, 'ok', 1, 0)",
                  ("EV\x1b[2JIL\nX",))
    text = render(HistoryQuery(path=path, workspace=None))
    assert "\x1b" not in text and "EV\\e[2JIL\\nX" in text


def test_a_workspace_cannot_point_the_databases_at_a_users_file(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from perfd.llm import LLMConfigError, workspace_llm_config

    ws = tmp_path / "ws"
    (ws / "work-space" / "plans").mkdir(parents=True)
    victim = tmp_path / "home" / ".bashrc"
    victim.parent.mkdir()
    victim.write_text("export SECRET=1\n")
    for key in ("history_path", "cache_path"):
        (ws / "perfd.toml").write_text(f'[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n{key} = "{victim}"\n')
        with pytest.raises(LLMConfigError, match="leads outside the workspace"):
            workspace_llm_config(str(ws))
        (ws / "perfd.toml").write_text(f'[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
                                       f'{key} = "../home/.bashrc"\n')
        with pytest.raises(LLMConfigError, match="leads outside the workspace"):
            workspace_llm_config(str(ws))
    (ws / "perfd.toml").write_text(f'[llm]\nhistory_path = "{victim}"\n')
    out = cli(["stats", "--history"], str(ws))
    assert out.code == 1 and "leads outside the workspace" in out.stderr
    assert victim.read_text() == "export SECRET=1\n" and os.listdir(victim.parent) == [".bashrc"]
    # The user's own environment may point anywhere.
    monkeypatch.setenv("PERFD_LLM_CACHE_PATH", str(tmp_path / "elsewhere.sqlite3"))
    (ws / "perfd.toml").write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n')
    cfg = workspace_llm_config(str(ws))
    assert cfg is not None and cfg.cache_path == str(tmp_path / "elsewhere.sqlite3")
