import os
import threading

import pytest

from perfd.fsutil import FileExists, write_atomic


def test_writes_new_file(tmp_path):
    p = tmp_path / "sub" / "SUBPLAN_X_11.md"
    write_atomic(str(p), "hello\n")
    assert p.read_text() == "hello\n"
    assert [n for n in os.listdir(p.parent) if n.startswith(".perfd-")] == []


def test_refuses_to_overwrite_without_force(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("mine")
    with pytest.raises(FileExists):
        write_atomic(str(p), "theirs")
    assert p.read_text() == "mine"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".perfd-")] == []


def test_force_replaces(tmp_path):
    p = tmp_path / "a.md"
    p.write_text("old")
    write_atomic(str(p), "new", force=True)
    assert p.read_text() == "new"


def test_racing_writers_never_clobber(tmp_path):
    p = str(tmp_path / "race.md")
    wins, losses = [], []

    def writer(i: int) -> None:
        try:
            write_atomic(p, f"writer {i}\n")
            wins.append(i)
        except FileExists:
            losses.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 15
    with open(p) as f:
        assert f.read() == f"writer {wins[0]}\n"
