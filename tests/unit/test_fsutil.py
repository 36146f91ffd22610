import errno
import os
import threading
from pathlib import Path

import pytest

from perfd.fsutil import FileExists, read_regular, write_atomic


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


def test_read_regular_reads_up_to_one_past_the_limit(tmp_path):
    p = tmp_path / "PLAN_X.md"
    p.write_bytes(b"x" * 100)
    assert read_regular(str(p), limit=1000) == b"x" * 100
    assert read_regular(str(p), limit=10) == b"x" * 11  # the caller tells "too large" without reading it all


def _in_a_thread(call):
    """call()'s result or exception, failing (not hanging) if it blocks: a plain open() of a FIFO would."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading a FIFO blocked"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_read_regular_refuses_a_fifo_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "PLAN_PIPE.md"
    os.mkfifo(fifo)
    got = _in_a_thread(lambda: read_regular(str(fifo), limit=10))
    assert isinstance(got, OSError) and got.strerror.startswith("not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_settings_file_swapped_for_a_fifo_is_a_clear_error_not_a_hang(tmp_path, monkeypatch):
    from perfd.settings.sources import SettingsError, read_file

    os.mkfifo(tmp_path / "perfd.toml")
    # the file was a regular one when it was looked for (workspace_file), and is a FIFO when it is read
    got = _in_a_thread(lambda: read_file(str(tmp_path / "perfd.toml"), root=str(tmp_path)))
    assert isinstance(got, SettingsError) and "perfd.toml: not a regular file" in str(got)


def test_read_regular_reads_on_when_the_file_grew_after_fstat(tmp_path, monkeypatch):
    import perfd.fsutil as fsutil

    p = tmp_path / "PLAN_X.md"
    p.write_bytes(b"y" * 300_000)
    real_fstat = os.fstat

    class Small:
        def __init__(self, st):
            self.st_mode, self.st_size = st.st_mode, 10  # as if fstat came before a writer added the rest

    monkeypatch.setattr(fsutil.os, "fstat", lambda fd: Small(real_fstat(fd)))
    assert read_regular(str(p), limit=1 << 20) == b"y" * 300_000
    assert read_regular(str(p), limit=1000) == b"y" * 1001  # still only one past the limit


@pytest.mark.parametrize("at", [True, False], ids=["dir_fd", "no_dir_fd"])
def test_write_under_makes_folders_and_never_follows_a_link_out(tmp_path: Path, at: bool,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import perfd.fsutil as fsutil
    from perfd.fsutil import write_under

    monkeypatch.setattr(fsutil, "_AT", at and fsutil._AT)
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    write_under(str(root), os.path.join("a", "b", "c.md"), "one\n")
    assert (root / "a" / "b" / "c.md").read_text() == "one\n"
    with pytest.raises(FileExists):
        write_under(str(root), os.path.join("a", "b", "c.md"), "two\n")
    write_under(str(root), os.path.join("a", "b", "c.md"), "two\n", force=True)
    assert (root / "a" / "b" / "c.md").read_text() == "two\n"
    (root / "link").symlink_to(outside)
    with pytest.raises(OSError, match="a symbolic link where a folder should be") as info:
        write_under(str(root), os.path.join("link", "x", "c.md"), "out\n")
    assert info.value.filename == "link"
    (root / "a" / "file").write_text("")
    with pytest.raises(OSError) as info:
        write_under(str(root), os.path.join("a", "file", "c.md"), "in\n")
    assert info.value.errno == errno.ENOTDIR and info.value.filename == os.path.join("a", "file")
    assert list(outside.iterdir()) == [] and not list(root.rglob(".perfd-*"))
    with pytest.raises(OSError):
        write_under(str(root), os.path.join("..", "outside", "c.md"), "out\n")
