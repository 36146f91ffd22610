"""The persistent parse store: a new engine takes what an earlier one parsed, and nothing it should not."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from perfd.engine.cache import parse_store
from perfd.engine.engine import Engine

from engine_helpers import WS, counting_parses, two_plans


workspace = two_plans


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "ws.parse")


def saved(ws: WS, store: str) -> Engine:
    os.makedirs(os.path.dirname(store), mode=0o700, exist_ok=True)
    eng = ws.engine()
    eng.status()
    assert eng.save_parsed(store) > 0
    return eng


def test_a_new_engine_answers_from_the_store_without_parsing(ws: WS, store: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    first = saved(ws, store)
    parsed = counting_parses(monkeypatch)
    again = ws.engine()
    assert again.load_parsed(store) == ""
    assert again.status() == first.status()
    assert parsed == []
    assert again.cache.stats().persisted_hits == 8  # 2 PLANs, 4 SUBPLANs, 2 EXECUTION_TASKs
    assert again.plan_status("@ALPHA") == first.plan_status("@ALPHA")


def test_entries_taken_first_and_packed_in_slices_make_the_same_file_as_one_save(ws: WS, store: str) -> None:
    workspace(ws)
    eng = saved(ws, store)
    entries = eng.parsed_to_store()  # as the daemon takes them on its loop
    packing = eng.parse_packing(entries)
    assert sum(packing.steps(3)) == len(entries) >= 8  # several slices
    with open(store, "rb") as f:
        assert packing.data() == f.read()
    assert parse_store.Packing([], root=str(ws.root)).data() == parse_store.pack([], root=str(ws.root))


def test_a_file_changed_since_is_parsed_again(ws: WS, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    saved(ws, store)
    sub = ws.subplan("ALPHA", "1.2", "✅ Complete")  # another size and mtime
    os.utime(sub, (1_700_000_000, 1_700_000_000))
    parsed = counting_parses(monkeypatch)
    again = ws.engine()
    again.load_parsed(store)
    st = again.plan_status("@ALPHA")
    assert parsed == [str(sub)]
    assert [a.state for a in st.achievements] == ["complete", "subplan_complete"]


def test_a_file_rewritten_with_the_same_size_is_parsed_again(
        ws: WS, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    plan = ws.folder("ALPHA") / "PLAN_ALPHA.md"
    eng = ws.engine()
    eng.status()
    os.makedirs(os.path.dirname(store), exist_ok=True)
    eng.save_parsed(store)
    loaded, why = parse_store.load(store, root=eng.root)
    assert why == "" and ("plan", str(plan)) in loaded
    ws.write(plan, plan.read_text().replace("Title 1.1", "Title 1.x"))  # same size, a new mtime
    now_ns = time.time_ns()
    os.utime(plan, ns=(now_ns, now_ns))  # within the racy window, as a fresh write is
    parsed = counting_parses(monkeypatch)
    again = ws.engine()
    again.load_parsed(store)
    st = again.plan_status("@ALPHA")
    assert str(plan) in parsed and st.achievements[0].title == "Title 1.x"


@pytest.mark.parametrize("damage", [b"", b"\x00" * 100, b"not msgpack at all", "truncated"])
def test_a_damaged_store_is_ignored_and_rebuilt(ws: WS, store: str, damage: Any) -> None:
    workspace(ws)
    saved(ws, store)
    data = Path(store).read_bytes()
    Path(store).write_bytes(data[: len(data) // 2] if damage == "truncated" else damage)
    eng = ws.engine()
    assert eng.load_parsed(store) == "damaged"
    eng.status()
    eng.save_parsed(store)
    assert ws.engine().load_parsed(store) == ""


def test_a_store_of_another_parser_version_or_root_is_ignored(ws: WS, store: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    eng = saved(ws, store)
    assert parse_store.load(store, root=eng.root + "-other")[1] == "other-root"
    monkeypatch.setattr(parse_store, "_version", "a parser of another day")
    assert ws.engine().load_parsed(store) == "other-version"


def test_a_foreign_or_shared_store_is_ignored(ws: WS, store: str) -> None:
    workspace(ws)
    eng = saved(ws, store)
    os.chmod(store, 0o666)
    assert eng.load_parsed(store) == "writable-by-others"
    os.chmod(store, 0o620)
    assert eng.load_parsed(store) == "writable-by-others"
    os.chmod(store, 0o600)
    if os.getuid() == 0:
        os.chown(store, 12345, -1)
        assert eng.load_parsed(store) == "foreign"
        os.chown(store, 0, -1)
    assert eng.load_parsed(store) == ""


def test_the_store_is_never_read_or_written_through_a_symlink(ws: WS, store: str, tmp_path: Path) -> None:
    workspace(ws)
    eng = saved(ws, store)
    real = tmp_path / "elsewhere.parse"
    os.replace(store, real)
    os.symlink(real, store)
    assert eng.load_parsed(store) == "symlink"
    # A write replaces the link with a file of its own; the link's target is left alone.
    before = real.read_bytes()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, f"{store}.{os.getpid()}.tmp")  # a planted temporary name
    eng.save_parsed(store)
    assert not os.path.islink(store) and real.read_bytes() == before and victim.read_text() == "precious"
    assert os.stat(store).st_mode & 0o777 == 0o600
    assert eng.load_parsed(store) == ""


def test_the_store_is_bounded(ws: WS, store: str) -> None:
    workspace(ws)
    eng = saved(ws, store)
    full = os.path.getsize(store)
    values = eng.cache.packed_values()
    size = parse_store.save(store, values, root=eng.root, max_bytes=full // 2)
    assert size <= full // 2
    loaded, why = parse_store.load(store, root=eng.root)
    assert why == "" and 0 < len(loaded) < len(values)
    # the most recently used entries are the ones kept
    assert (values[-1][0], values[-1][1]) in loaded
    assert parse_store.load(store, root=eng.root, max_bytes=size - 1) == ({}, "too-large")


def test_entries_outside_the_root_are_dropped(ws: WS, store: str) -> None:
    workspace(ws)
    eng = saved(ws, store)
    values = eng.cache.packed_values()
    kind, _path, key, value = values[0]
    parse_store.save(store, values + [(kind, "/etc/passwd", key, value)], root=eng.root)
    loaded, _why = parse_store.load(store, root=eng.root)
    assert all(p.startswith(eng.root + os.sep) for _k, p in loaded)
    assert len(loaded) == len(values)


def test_a_missing_store_is_no_problem(ws: WS, store: str) -> None:
    workspace(ws)
    assert ws.engine().load_parsed(store) == "missing"


def test_entries_not_taken_yet_are_kept_when_the_store_is_written_again(ws: WS, store: str) -> None:
    workspace(ws)
    saved(ws, store)
    full, _why = parse_store.load(store, root=str(ws.engine().root))
    eng = ws.engine()
    eng.load_parsed(store, lazy=True)  # a restart answered from stored answers: nothing taken yet
    eng.save_parsed(store)
    assert parse_store.load(store, root=eng.root)[0] == full
    eng = ws.engine()
    eng.load_parsed(store)
    eng.plan_status("@ALPHA")  # takes ALPHA's files; BETA's stay where they were
    eng.save_parsed(store)
    assert parse_store.load(store, root=eng.root)[0] == full


def test_the_version_keys_digest_the_sources_that_exist() -> None:
    # A moved module would otherwise be digested as "missing", and a change to it would not
    # invalidate the stores.
    from perfd.engine.cache import answer_store

    parser = parse_store.parser_sources()
    assert all(os.path.isfile(p) for p in parser)
    assert {os.path.basename(p) for p in parser} >= {"plan_parser.py", "docs_parser.py", "kinds.py"}
    engine = {os.path.basename(p) for p in answer_store.engine_sources()}
    assert {"engine.py", "state.py", "prompts.py", "cache.py", "answer_store.py"} <= engine
