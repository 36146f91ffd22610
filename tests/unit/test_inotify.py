"""perfd's own inotify reader, on real inotify (Linux), and the watcher built on it.

Failures that a machine cannot be made to produce on demand (the watch limit, a
queue overflow) come through the reader's seams: `add` (inotify_add_watch) and
`read` (os.read on the descriptor).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")

from perfd.runtime import inotify  # noqa: E402
from perfd.runtime.inotify import (  # noqa: E402
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Event,
    InotifyTree,
)
from perfd.runtime.watcher import watch  # noqa: E402


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "plans"
    (r / "FEAT" / "execution").mkdir(parents=True)
    (r / "FEAT" / "PLAN_FEAT.md").write_text("# PLAN\n")
    return r.resolve()


@pytest.fixture
def tree(root: Path) -> Iterator[InotifyTree]:
    with InotifyTree(str(root)) as t:
        t.start()
        yield t


def paths(events: list[Event], mask: int = 0) -> set[str]:
    return {e.path for e in events if not mask or e.mask & mask}


def pending(tree: InotifyTree, until: Callable[[list[Event]], bool] = bool, timeout: float = 2.0) -> list[Event]:
    """Events read until `until` holds for them (the kernel queues an event as the change happens, so this
    normally holds at the first read)."""
    got: list[Event] = []
    end = time.monotonic() + timeout
    while not until(got) and time.monotonic() < end:
        got += tree.read_pending()
    return got


def fail_for(folders: set[str], code: int = errno.ENOSPC) -> inotify.AddWatch:
    def add(fd: int, path: str, mask: int) -> int:
        if path in folders:
            raise OSError(code, os.strerror(code), path)
        return inotify.add_watch(fd, path, mask)
    return add


# -- reading -----------------------------------------------------------------------------------------


def test_read_pending_never_blocks(tree: InotifyTree) -> None:
    assert not os.get_blocking(tree.fileno())
    t0 = time.perf_counter()
    for _ in range(100):
        assert tree.read_pending() == []
    assert time.perf_counter() - t0 < 0.5  # a blocking read would wait for ever


def test_every_folder_of_the_tree_is_watched(tree: InotifyTree, root: Path) -> None:
    assert tree.watched == 3 and tree.complete and tree.unwatched == {}
    (root / "FEAT" / "execution" / "EXECUTION_TASK_FEAT_01_01.md").write_text("x")
    assert str(root / "FEAT" / "execution" / "EXECUTION_TASK_FEAT_01_01.md") in paths(pending(tree), IN_CREATE)


def test_create_modify_rename_over_and_delete_are_seen_at_the_first_read(tree: InotifyTree, root: Path) -> None:
    plan = root / "FEAT" / "PLAN_FEAT.md"
    approved = root / "FEAT" / "APPROVED_11.md"
    approved.write_text("# APPROVED\n")
    assert str(approved) in paths(tree.read_pending(), IN_CREATE)  # no waiting: queued by the write itself

    plan.write_text("# PLAN!\n")
    assert str(plan) in paths(tree.read_pending(), IN_MODIFY)

    tmp = root / "FEAT" / ".PLAN_FEAT.md.tmp"
    tmp.write_text("# PLAN, replaced\n")
    os.replace(tmp, plan)
    events = tree.read_pending()
    assert str(plan) in paths(events, IN_MOVED_TO) and str(tmp) in paths(events, IN_MOVED_FROM)

    approved.unlink()
    assert str(approved) in paths(tree.read_pending(), IN_DELETE)


def test_a_new_folder_is_followed_and_what_was_created_in_it_before_its_watch_is_reported(
        tree: InotifyTree, root: Path) -> None:
    new = root / "NEW"
    (new / "subplans").mkdir(parents=True)
    (new / "subplans" / "SUBPLAN_NEW_01.md").write_text("x")  # before the watch on NEW exists: the scan sees it
    events = tree.read_pending()
    assert {str(new), str(new / "subplans")} <= paths(events, IN_ISDIR)
    assert str(new / "subplans" / "SUBPLAN_NEW_01.md") in paths(events, IN_CREATE)
    assert tree.watched == 5

    (new / "subplans" / "SUBPLAN_NEW_02.md").write_text("y")  # after: its own event
    assert str(new / "subplans" / "SUBPLAN_NEW_02.md") in paths(tree.read_pending(), IN_CREATE)


def test_a_folder_moved_inside_the_tree_reports_its_new_paths(tree: InotifyTree, root: Path) -> None:
    (root / "FEAT").rename(root / "DONE")
    events = tree.read_pending()
    assert str(root / "FEAT") in paths(events, IN_MOVED_FROM) and str(root / "DONE") in paths(events, IN_MOVED_TO)
    assert tree.watched == 3
    (root / "DONE" / "execution" / "x.md").write_text("x")
    assert str(root / "DONE" / "execution" / "x.md") in paths(tree.read_pending(), IN_CREATE)


def test_a_folder_moved_out_of_the_tree_is_no_longer_watched(tree: InotifyTree, root: Path, tmp_path: Path) -> None:
    (root / "FEAT").rename(tmp_path / "away")
    assert str(root / "FEAT") in paths(tree.read_pending(), IN_MOVED_FROM)
    assert tree.watched == 1
    (tmp_path / "away" / "x.md").write_text("x")
    assert tree.read_pending() == []


def test_a_deleted_folder_drops_its_watch_and_a_deleted_root_ends_watching(tree: InotifyTree, root: Path) -> None:
    (root / "FEAT" / "execution").rmdir()
    assert str(root / "FEAT" / "execution") in paths(pending(tree, lambda e: tree.watched == 2))
    assert tree.watched == 2 and tree.root_watched
    (root / "FEAT" / "PLAN_FEAT.md").unlink()
    (root / "FEAT").rmdir()
    root.rmdir()
    pending(tree, lambda e: not tree.root_watched)
    assert not tree.root_watched and not tree.complete


# -- failures ----------------------------------------------------------------------------------------


def test_a_folder_that_cannot_be_watched_is_recorded_with_why(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    feat = str(root / "FEAT")
    with caplog.at_level(logging.WARNING, "perfd.daemon"), InotifyTree(str(root), add=fail_for({feat})) as t:
        t.start()
        assert t.root_watched and not t.complete
        assert list(t.unwatched) == [feat] and t.unwatched[feat].errno == errno.ENOSPC
        assert "fs.inotify.max_user_watches" in t.unwatched[feat].reason
        assert t.watched == 1  # the root; FEAT and what lies under it are not
        assert feat in caplog.text and "max_user_watches" in caplog.text

        # Gone, it is no longer unwatched.
        (root / "FEAT" / "PLAN_FEAT.md").unlink()
        (root / "FEAT" / "execution").rmdir()
        (root / "FEAT").rmdir()
        pending(t, lambda e: not t.unwatched)
        assert t.complete


def test_a_new_folder_that_cannot_be_watched_is_recorded(root: Path) -> None:
    new = str(root / "NEW")
    with InotifyTree(str(root), add=fail_for({new}, errno.EACCES)) as t:
        t.start()
        assert t.complete
        os.mkdir(new)
        assert new in paths(t.read_pending(), IN_ISDIR)
        assert t.unwatched[new].reason == "permission denied" and not t.complete


def test_a_folder_gone_before_its_watch_is_not_recorded(root: Path) -> None:
    new = str(root / "NEW")
    with InotifyTree(str(root), add=fail_for({new}, errno.ENOENT)) as t:
        t.start()
        os.mkdir(new)
        assert new in paths(t.read_pending())
        assert t.complete  # nothing there to watch: its parent reports it gone


def test_a_root_that_cannot_be_watched_fails_start(root: Path) -> None:
    with InotifyTree(str(root), add=fail_for({str(root)})) as t, pytest.raises(OSError) as failed:
        t.start()
    assert failed.value.errno == errno.ENOSPC


def test_an_overflow_is_reported_and_new_folders_among_the_dropped_events_are_watched(root: Path) -> None:
    overflowed = False

    def read(fd: int, size: int) -> bytes:
        nonlocal overflowed
        if overflowed:
            return os.read(fd, size)
        overflowed = True
        os.read(fd, size)  # what the kernel dropped
        return struct.pack("iIII", -1, IN_Q_OVERFLOW, 0, 0)

    with InotifyTree(str(root), read=read) as t:
        t.start()
        (root / "NEW").mkdir()
        events = t.read_pending()
        assert [e for e in events if e.overflow] == [Event(str(root), IN_Q_OVERFLOW)]
        assert t.overflows == 1
        (root / "NEW" / "x.md").write_text("x")  # its watch came from the rescan after the overflow
        assert str(root / "NEW" / "x.md") in paths(t.read_pending(), IN_CREATE)


# -- the watcher on it ---------------------------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.batches: list[set[str]] = []
        self.states: list[bool] = []
        self.fail = False

    async def changes(self, paths: set[str]) -> None:
        self.batches.append(paths)
        if self.fail:
            raise RuntimeError("a failing callback")

    def all(self) -> set[str]:
        return set().union(*self.batches)


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.005)


async def test_the_watcher_reports_debounced_real_paths_and_its_state(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(root)  # given through a link: real paths are reported
    seen, stop = Seen(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch(str(link), seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: seen.states == [True])
        seen.fail = True  # logged; watching goes on
        t0 = time.monotonic()
        (root / "FEAT" / "APPROVED_11.md").write_text("x")
        (root / "FEAT" / "PLAN_FEAT.md").unlink()
        await wait_until(lambda: bool(seen.batches))
        assert time.monotonic() - t0 < 1
        (root / "FEAT" / "FIX_12.md").write_text("y")
        await wait_until(lambda: str(root / "FEAT" / "FIX_12.md") in seen.all())
        assert {str(root / "FEAT" / "APPROVED_11.md"), str(root / "FEAT" / "PLAN_FEAT.md")} <= seen.all()
        stop.set()
    assert seen.states == [True, False]


async def test_the_watcher_is_not_trusted_while_a_folder_is_unwatched(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = str(root / "NEW")

    class Failing(InotifyTree):
        def __init__(self, folder: str, *, recursive: bool = True) -> None:
            super().__init__(folder, add=fail_for({new}), recursive=recursive)

    monkeypatch.setattr(inotify, "InotifyTree", Failing)
    seen, stop = Seen(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch(str(root), seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: seen.states == [True])
        os.mkdir(new)
        await wait_until(lambda: seen.states == [True, False])  # NEW's changes would go unseen
        os.rmdir(new)
        await wait_until(lambda: seen.states == [True, False, True])  # every folder watched again
        stop.set()
    assert seen.states == [True, False, True, False]


async def test_a_folder_unwatched_from_the_start_is_said_at_once(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feat = str(root / "FEAT")

    class Failing(InotifyTree):
        def __init__(self, folder: str, *, recursive: bool = True) -> None:
            super().__init__(folder, add=fail_for({feat}), recursive=recursive)

    monkeypatch.setattr(inotify, "InotifyTree", Failing)
    seen, stop = Seen(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch(str(root), seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: seen.states == [False])  # up, but not to be trusted (a daemon need not wait)
        (root / "FEAT").rename(root.parent / "away")
        await wait_until(lambda: seen.states == [False, True])
        stop.set()
    assert seen.states == [False, True, False]


async def test_an_overflow_restarts_the_watchers_word(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    overflow = False

    def read(fd: int, size: int) -> bytes:
        nonlocal overflow
        data = os.read(fd, size)
        if overflow:
            overflow = False
            return struct.pack("iIII", -1, IN_Q_OVERFLOW, 0, 0)
        return data

    class Overflowing(InotifyTree):
        def __init__(self, folder: str, *, recursive: bool = True) -> None:
            super().__init__(folder, read=read, recursive=recursive)

    monkeypatch.setattr(inotify, "InotifyTree", Overflowing)
    seen, stop = Seen(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch(str(root), seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: seen.states == [True])
        overflow = True
        (root / "x.md").write_text("x")  # its event is dropped: an overflow instead
        await wait_until(lambda: bool(seen.batches))
        assert seen.states == [True, False, True]  # the caller checks everything again
        assert seen.batches == [set()]  # anything may have changed
        stop.set()


async def test_without_inotify_the_watcher_uses_watchfiles(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")
    monkeypatch.setenv("WATCHFILES_POLL_DELAY_MS", "20")
    seen, stop = Seen(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watch(str(root), seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: seen.states == [True])
        (root / "FEAT" / "APPROVED_11.md").write_text("x")
        await wait_until(lambda: str(root / "FEAT" / "APPROVED_11.md") in seen.all())
        stop.set()
    assert seen.states == [True, False]


async def test_a_missing_folder_is_not_watched(tmp_path: Path) -> None:
    seen = Seen()
    await watch(str(tmp_path / "none"), seen.changes, on_state=seen.states.append)
    assert seen.states == [] and seen.batches == []


async def test_a_sync_takes_a_write_at_once_before_the_loop_sees_it(root: Path) -> None:
    """Read-your-writes: the write's event is pending when the write returns; sync() takes it then and
    there (no await between them: the watcher's loop cannot have run), and the loop still reports it."""
    from perfd.runtime.watcher import Drained, Watcher

    drained: list[Drained] = []
    seen, stop = Seen(), anyio.Event()
    watcher = Watcher([str(root)], on_drained=drained.append)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watcher.run(seen.changes, stop_event=stop, on_state=seen.states.append))
        await wait_until(lambda: watcher.synced)
        for i in range(50):
            path = root / "FEAT" / f"APPROVED_{i}.md"
            path.write_text("x")
            watcher.sync()
            assert drained and str(path) in drained[-1].paths, i
        await wait_until(lambda: str(root / "FEAT" / "APPROVED_49.md") in seen.all())
        assert watcher.report().synced and watcher.report().backend == "inotify"
        stop.set()
    assert seen.states == [True, False]


async def test_a_folder_on_a_file_system_without_events_is_not_synced(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from perfd.runtime import watcher as watcher_mod

    monkeypatch.setattr(watcher_mod, "fs_type", lambda path: 0x6969)  # NFS
    w = watcher_mod.Watcher([str(root)])
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: w.run(Seen().changes, stop_event=stop))
        await wait_until(lambda: w.up)
        assert not w.synced
        report = w.report()
        assert report.no_events == [str(root)] and not report.synced
        stop.set()
