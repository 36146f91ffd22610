"""The persistent answer store: a restarted engine answers from stored answers only while every input holds."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from perfd.engine.cache import answer_store
from perfd.engine.cache import cache as cache_mod
from perfd.engine import engine as engine_mod
from perfd.engine.engine import Engine

from engine_helpers import WS, counting_parses, two_plans


workspace = two_plans


@pytest.fixture
def store(tmp_path: Path) -> str:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return str(folder / "ws.answers")


def saved(ws: WS, store: str) -> Engine:
    eng = ws.engine()
    eng.status()
    assert eng.save_answers(store) > 0
    return eng


def test_answers_packed_in_slices_make_the_same_file_as_one_save(ws: WS, store: str) -> None:
    workspace(ws)
    eng = saved(ws, store)
    answers = eng.answers_to_store()
    packer = eng.answer_packer()
    for i in range(0, len(answers), 2):  # as the daemon packs them, a slice at a time
        packer.add(answers[i:i + 2])
    assert len(answers) > 2
    with open(store, "rb") as f:
        stored = f.read()
    assert packer.data() == stored  # at once
    assert sum(packer.steps(3)) > 3  # then in slices of rows
    again = store + ".sliced"
    assert packer.write(again) == len(stored)
    with open(again, "rb") as f:
        assert f.read() == stored


class Work:
    """What an engine reads and works out: parses, folder listings, plan decisions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed = counting_parses(monkeypatch)
        self.listed: list[str] = []
        self.decided: list[str] = []
        real_list = cache_mod._folder_material
        real_decide = engine_mod.decide

        def listing(path: str) -> Any:
            self.listed.append(path)
            return real_list(path)

        def deciding(inputs: Any, **kw: Any) -> Any:
            self.decided.append(inputs.name)
            return real_decide(inputs, **kw)

        monkeypatch.setattr(cache_mod, "_folder_material", listing)
        monkeypatch.setattr(engine_mod, "decide", deciding)


def test_a_restarted_engine_answers_status_from_the_store_alone(ws: WS, store: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    eng = saved(ws, store)
    first = eng.status()
    parse_store = store[:-len(".answers")] + ".parse"
    eng.save_parsed(parse_store)
    work = Work(monkeypatch)
    again = ws.engine()
    assert again.load_answers(store) == (5, "")  # the status, 2 plan lines, 2 plans' files
    again.load_parsed(parse_store, lazy=True)
    assert again.status() == first
    assert (work.parsed, work.listed, work.decided) == ([], [], [])
    assert again.memo_misses == 0
    assert again.cache.persisted_pending()  # the parse store was never read
    assert again.plan_status("@ALPHA") == eng.plan_status("@ALPHA")  # now it is, and nothing is parsed
    assert work.parsed == [] and again.cache.persisted_hits > 0


def test_a_changed_input_recomputes_what_it_touches(ws: WS, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    saved(ws, store)
    sub = ws.subplan("ALPHA", "1.2", "✅ Complete")  # another size and mtime
    os.utime(sub, (1_700_000_000, 1_700_000_000))
    work = Work(monkeypatch)
    again = ws.engine()
    again.load_answers(store)
    got = again.status()
    assert work.decided == ["ALPHA"]  # BETA's line is still the stored one
    assert str(sub) in work.parsed
    assert got == ws.engine().status()
    alpha = next(p for p in got.plans if p.plan == "ALPHA")
    assert alpha.state == "subplan_complete" and alpha.done == 1  # the stored line said 1.2 was in progress


def test_a_new_plan_folder_is_seen(ws: WS, store: str) -> None:
    workspace(ws)
    saved(ws, store)
    ws.plan("GAMMA", ["1.1"])
    again = ws.engine()
    again.load_answers(store)
    assert [p.plan for p in again.status().plans] == sorted(["ALPHA", "BETA", "GAMMA"])


def test_a_deleted_file_is_seen(ws: WS, store: str) -> None:
    workspace(ws)
    saved(ws, store)
    os.unlink(ws.feedbacks("ALPHA") / "APPROVED_11.md")
    again = ws.engine()
    again.load_answers(store)
    assert again.status() == ws.engine().status()
    assert again.plan_status("@ALPHA").achievements[0].state != "complete"


@pytest.mark.parametrize("damage", [b"\x93garbage", b"", b"\x81\xa6header\xc0"])
def test_a_damaged_store_is_ignored_and_everything_recomputed(ws: WS, store: str, damage: bytes,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    first = saved(ws, store).status()
    with open(store, "wb") as f:
        f.write(damage)
    work = Work(monkeypatch)
    again = ws.engine()
    assert again.load_answers(store) == (0, "damaged")
    assert again.status() == first
    assert sorted(work.decided) == ["ALPHA", "BETA"]


def test_a_value_that_does_not_decode_damages_the_whole_store(ws: WS, store: str) -> None:
    workspace(ws)
    saved(ws, store)
    with open(store, "rb") as f:
        stored = msgspec.msgpack.decode(f.read(), type=answer_store.StoreFile)
    stored.answers[-1].value = msgspec.Raw(msgspec.msgpack.encode({"not": "a plan line"}))
    with open(store, "wb") as f:
        f.write(msgspec.msgpack.encode(stored))
    assert ws.engine().load_answers(store) == (0, "damaged")
    stored.answers[-1].inputs = [10**6]  # an input not in the table
    stored.answers = stored.answers[-1:]
    with open(store, "wb") as f:
        f.write(msgspec.msgpack.encode(stored))
    assert ws.engine().load_answers(store) == (0, "damaged")


def test_another_engine_version_root_or_configuration_recomputes(ws: WS, store: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    workspace(ws)
    eng = saved(ws, store)
    assert Engine(str(ws.root), config={"cache": {"capacity": 5000}}).load_answers(store) == (0, "other-version")
    config = answer_store.config_digest(eng.config)
    assert answer_store.load(store, root=eng.root + "-other", config=config) == ([], "other-root")
    monkeypatch.setattr(answer_store, "_version", "an engine of another day")
    work = Work(monkeypatch)
    again = ws.engine()
    assert again.load_answers(store) == (0, "other-version")
    again.status()
    assert sorted(work.decided) == ["ALPHA", "BETA"]


def test_a_foreign_shared_or_linked_store_is_ignored(ws: WS, store: str, tmp_path: Path) -> None:
    workspace(ws)
    eng = saved(ws, store)
    os.chmod(store, 0o666)
    assert eng.load_answers(store) == (0, "writable-by-others")
    os.chmod(store, 0o600)
    link = str(tmp_path / "state" / "link.answers")
    os.symlink(store, link)
    assert eng.load_answers(link) == (0, "symlink")
    assert eng.load_answers(str(tmp_path / "state" / "none.answers")) == (0, "missing")
    assert answer_store.load(store, root=eng.root, config=answer_store.config_digest(eng.config),
                             max_bytes=os.path.getsize(store) - 1) == ([], "too-large")


def test_it_is_written_privately_and_atomically(ws: WS, store: str) -> None:
    workspace(ws)
    saved(ws, store)
    assert os.stat(store).st_mode & 0o777 == 0o600
    assert [n for n in os.listdir(os.path.dirname(store))] == ["ws.answers"]  # no temporary left behind


def test_answers_with_an_input_in_the_racy_window_are_not_stored(ws: WS, store: str) -> None:
    workspace(ws)
    sub = str(ws.folder("BETA") / "subplans" / "SUBPLAN_BETA_12.md")
    written = time.time_ns() - 1000 * 1_000_000_000
    os.utime(sub, ns=(written, written))
    eng = ws.engine()
    eng.status()
    answers = eng.cold.answers_to_store()
    config = answer_store.config_digest(eng.config)
    # Saved a millisecond after BETA's SUBPLAN was written: what read it is left out.
    answer_store.save(store, answers, root=eng.root, config=config, now_ns=written + 1_000_000)
    restored, why = answer_store.load(store, root=eng.root, config=config)
    assert why == ""
    assert sorted((type(r.key).__name__, getattr(getattr(r.key, "plan", None), "name", "")) for r in restored) == \
        [("FilesKey", "ALPHA"), ("FilesKey", "BETA"), ("SummaryKey", "ALPHA")]  # BETA's files: its listings only
    answer_store.save(store, answers, root=eng.root, config=config, now_ns=written + 3_000_000_000)
    assert len(answer_store.load(store, root=eng.root, config=config)[0]) == 5
