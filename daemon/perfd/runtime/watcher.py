"""The one file watcher: the daemon's and `perfd lsp --standalone`'s.

It watches the folders plans are read from and does two things with what it
sees: at once, synchronously, it hands each change to `on_drained` (the
engine forgets what the change touched), and, debounced, it reports batches to
a callback (editors and subscribers are told). What a change means is the
caller's and the engine's business.

Read-your-writes (Linux). The kernel queues an inotify event while the write
that raised it is still in its system call, so when a client's write has
returned, its event is pending on perfd's descriptor. `sync()` takes what is
pending with one non-blocking read per watched folder tree (a few
microseconds when nothing is) and hands it over before an answer relies on
the watcher: the daemon's engine calls it first thing for every answer (see
StatCache.sync_with). This is watchman's sync cookie without the cookie: the
daemon owns the descriptor, so there is nothing to wait for.

Elsewhere (macOS's FSEvents delivers events with a latency of its own, the
BSDs' kqueue through watchfiles' thread, WATCHFILES_FORCE_POLLING) there is
no pending queue to take: such a watcher is not `synced`, and answers are
validated by stat of their inputs, which is what is correct there.

Failures are never silent: a folder that could not be watched (the watch
limit, a permission, a race with a new folder) is named in `report()` and
the log, with the sysctl to raise and by how much, and is checked by stat
until it is watched; an overflow makes the caller check everything once.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from perfd.wire.protocol import UnwatchedFolder, WatcherReport

if TYPE_CHECKING:
    import anyio

    from perfd.runtime.inotify import AddWatch, Event, InotifyTree, Unwatched
    from perfd.runtime.verify import VerifyReport

log = logging.getLogger("perfd.daemon")
DEBOUNCE_MS = 50  # a batch is at most this old when it is reported...
STEP_MS = 10  # ...or sooner, once no event came for this long
TIMEOUT_MS = 1000  # watchfiles: how often its waiting thread looks at the stop event

OnChanges = Callable[[set[str]], Awaitable[None]]
OnState = Callable[[bool], None]


class Drained(NamedTuple):
    """What one sync took: the changed paths (real where they exist), and whether everything must be checked
    once more (`restart`: an overflow dropped events, or the set of folders watched changed)."""

    paths: set[str]
    restart: bool


OnDrained = Callable[[Drained], None]


class Watcher:
    """Watches `folders` (each recursively) until stopped; see the module's doc.

    `on_drained` is called synchronously, on the caller's thread, with what
    each read took (by `run`'s loop or by `sync`); `add` is inotify's
    add-watch seam (tests make it fail).
    """

    def __init__(self, folders: Sequence[str | tuple[str, bool]], *, on_drained: OnDrained | None = None,
                 add: AddWatch | None = None, root: str | None = None) -> None:
        """`folders`: each a path (its whole tree) or (path, recursive): recursive False watches the folder's
        own entries only (a workspace root holding plans, whose other sub-folders are none of perfd's)."""
        wanted: dict[str, bool] = {}
        for f in folders:
            path, recursive = (f, True) if isinstance(f, str) else f
            if os.path.isdir(path):
                real = os.path.realpath(path)
                wanted[real] = wanted.get(real, False) or recursive
        # A folder inside another one's whole tree is watched with it.
        trees = [f for f, rec in wanted.items() if rec]
        self.folders = sorted(f for f in wanted if not any(f != o and f.startswith(o + os.sep) for o in trees))
        self.recursive = {f: wanted[f] for f in self.folders}
        self.root = os.path.realpath(root) if root is not None else None  # for the report's relative paths
        self.on_drained = on_drained
        self._add = add
        self.backend = "none"
        self.trees: list[InotifyTree] = []
        self.up = False  # watching (the watches are in place)
        self.came_up = False  # it was, at some time
        self.overflows = 0
        self._batch: set[str] = set()  # taken but not reported yet (the debounced callback)
        self._restart = False
        self._wake: anyio.Event | None = None
        self._unwatched_seen: frozenset[str] = frozenset()
        self.no_events = [f for f in self.folders if no_events_fs(f)]

    # -- what answers rely on ------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether sync() takes every change made before it was called (inotify, watching, no folder on a file
        system without events): only then may answers trust it."""
        return self.up and self.backend == "inotify" and not self.no_events

    def watched_folders(self) -> list[tuple[str, bool]]:
        """The folders being watched now (real paths), each with whether its whole tree is."""
        return [(t.root, t.recursive) for t in self.trees if t.root_watched]

    def unwatched(self) -> dict[str, Unwatched]:
        """Folders under the watched ones that hold no watch, with why (checked by stat meanwhile)."""
        out: dict[str, Unwatched] = {}
        for t in self.trees:
            out.update(t.unwatched)
        return out

    def sync(self) -> None:
        """Take every event pending now (never blocks) and hand it to on_drained; the debounced report follows."""
        if not self.trees:
            return
        events = []
        for tree in self.trees:
            events += tree.read_pending()
        if events:
            self._take(events)

    def _take(self, events: list[Event]) -> None:
        paths: set[str] = set()
        restart = False
        for e in events:
            if e.overflow:
                restart = True
                self.overflows += 1
            else:
                paths.add(e.path)
        unwatched = frozenset(self.unwatched())
        if unwatched != self._unwatched_seen:  # a folder lost or gained its watch: vouch again from scratch
            self._unwatched_seen = unwatched
            restart = True
        if any(not t.root_watched for t in self.trees):
            restart = True  # a watched root went away (deleted, moved, unmounted)
        real = {os.path.realpath(p) if os.path.exists(p) else p for p in paths}
        self._batch |= real
        self._restart |= restart
        if self._wake is not None:
            self._wake.set()
        if self.on_drained is not None:
            self.on_drained(Drained(real, restart))

    # -- the loop --------------------------------------------------------------------------------------

    async def run(self, on_changes: OnChanges, *, stop_event: anyio.Event | None = None,
                  on_state: OnState | None = None) -> None:
        """Watch until `stop_event` (or cancellation); `on_changes` gets each debounced batch, and
        `on_state(True/False)` says when watching starts and stops. A failing callback is logged and
        watching goes on; a failing watcher is logged and ends. Nothing to watch: returns at once."""
        if not self.folders:
            log.info("no plans folder to watch")
            return
        import anyio

        stop = stop_event if stop_event is not None else anyio.Event()
        if sys.platform.startswith("linux") and not os.environ.get("WATCHFILES_FORCE_POLLING"):
            from perfd.runtime import inotify

            try:
                for f in self.folders:
                    if self._add is None:
                        self.trees.append(inotify.InotifyTree(f, recursive=self.recursive[f]))
                    else:
                        self.trees.append(inotify.InotifyTree(f, add=self._add, recursive=self.recursive[f]))
            except OSError as exc:
                for t in self.trees:
                    t.close()
                self.trees = []
                log.warning("cannot use inotify (%s): watching with watchfiles", exc)
            else:
                try:
                    await self._run_inotify(on_changes, stop, on_state)
                finally:
                    for t in self.trees:
                        t.close()
                return
        await self._run_portable(on_changes, stop, on_state)

    def _set_up(self, up: bool, on_state: OnState | None) -> None:
        if up != self.up:
            self.up = up
            self.came_up |= up
            if on_state is not None:
                on_state(up)

    async def _run_inotify(self, on_changes: OnChanges, stop: anyio.Event, on_state: OnState | None) -> None:
        import anyio
        import anyio.to_thread

        def start() -> None:
            for t in self.trees:
                t.start()

        try:
            # Adding a watch to every folder of a large tree is a walk (about 100 ms for the 6,000 folders of
            # 1,500 plans): off the event loop, so that requests (and the warm-up) go on meanwhile.
            await anyio.to_thread.run_sync(start)
        except Exception:
            log.exception("cannot watch %s", ", ".join(self.folders))
            return
        if stop.is_set():  # stopped while the watches were being added
            return
        self.backend = "inotify"
        self._unwatched_seen = frozenset(self.unwatched())
        # One descriptor to wait on for every tree.
        poll = select.epoll()
        for t in self.trees:
            poll.register(t.fileno(), select.EPOLLIN)
        try:
            self._set_up(True, on_state)
            fd = poll.fileno()
            while all(t.root_watched for t in self.trees):
                while not (self._batch or self._restart):  # the first event (or a sync that took some)
                    if stop.is_set():
                        return
                    await self._next(fd, stop)
                    if not all(t.root_watched for t in self.trees):
                        break
                # Debounce: gather until no event came for STEP_MS, or DEBOUNCE_MS after the first.
                deadline = time.monotonic() + DEBOUNCE_MS / 1000
                while not stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    with anyio.move_on_after(min(STEP_MS / 1000, left)) as quiet:
                        await self._next(fd, stop)
                    if quiet.cancelled_caught:
                        break
                batch, self._batch = self._batch, set()
                restart, self._restart = self._restart, False
                if batch or restart:
                    await _report(batch, on_changes)
                if stop.is_set():
                    return
        except Exception:
            log.exception("watcher stopped")
        finally:
            poll.close()
            self._set_up(False, on_state)

    async def _next(self, fd: int, stop: anyio.Event) -> None:
        """Wait until the descriptor is readable, a sync took events meanwhile, or `stop` is set; then take
        what is pending."""
        import anyio

        wake = self._wake = anyio.Event()
        async with anyio.create_task_group() as tg:
            async def until(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(until, wake)
            tg.start_soon(until, stop)
            await anyio.wait_readable(fd)
            tg.cancel_scope.cancel()
        self._wake = None
        self.sync()

    # -- elsewhere: watchfiles' public API -----------------------------------------------------------

    async def _run_portable(self, on_changes: OnChanges, stop: anyio.Event, on_state: OnState | None) -> None:
        try:
            import watchfiles
        except ImportError:
            log.warning("watchfiles is not installed: not watching %s", ", ".join(self.folders))
            return
        polling = True if os.environ.get("WATCHFILES_FORCE_POLLING") else None
        self.backend = "polling" if polling else "watchfiles"
        try:
            # yield_on_timeout: the first (empty) batch says the watches are in place.
            # Whole trees only: watchfiles cannot watch a folder's own entries alone (a workspace root's
            # sub-folders are none of perfd's). What is not watched here is checked by stat all the same.
            trees = [f for f in self.folders if self.recursive[f]]
            if not trees:
                return
            async for changes in watchfiles.awatch(*trees, watch_filter=None, stop_event=stop,
                                                   debounce=DEBOUNCE_MS, step=STEP_MS, rust_timeout=TIMEOUT_MS,
                                                   yield_on_timeout=True, force_polling=polling, recursive=True,
                                                   ignore_permission_denied=True):
                self._set_up(True, on_state)
                if changes:
                    paths = {p for _change, p in changes}
                    real = {os.path.realpath(p) if os.path.exists(p) else p for p in paths}
                    if self.on_drained is not None:
                        self.on_drained(Drained(real, False))
                    await _report(real, on_changes)
        except Exception:
            log.exception("watcher stopped" if self.up else f"cannot watch {', '.join(self.folders)}")
        finally:
            self._set_up(False, on_state)

    # -- what stats say ------------------------------------------------------------------------------

    def report(self, *, verify: VerifyReport | None = None) -> WatcherReport:
        unwatched = self.unwatched()
        from perfd.runtime.inotify import max_user_watches

        limit = max_user_watches() if self.backend == "inotify" else 0
        needed = sum(1 for u in unwatched.values() if u.errno == errno.ENOSPC)
        return WatcherReport(
            backend=self.backend if self.up else "none", synced=self.synced,
            folders=[self._shown(f) for f in self.folders],
            watched=sum(t.watched for t in self.trees),
            unwatched=[UnwatchedFolder(self._shown(p), u.reason) for p, u in sorted(unwatched.items())],
            no_events=[self._shown(f) for f in self.no_events], overflows=self.overflows,
            max_user_watches=limit, watches_needed=needed,
            verify_interval_s=verify.interval_s if verify else 0.0, verify_passes=verify.passes if verify else 0,
            verify_found=verify.found if verify else 0, verify_cpu_share=verify.cpu_share() if verify else 0.0)

    def _shown(self, path: str) -> str:
        if self.root is not None and (path == self.root or path.startswith(self.root + os.sep)):
            return os.path.relpath(path, self.root)
        return path


async def watch(folder: str, on_changes: OnChanges, *,
                stop_event: anyio.Event | None = None, on_state: OnState | None = None) -> None:
    """Watch `folder` recursively until `stop_event` (or cancellation); a missing folder is not watched.

    `on_changes` gets each debounced batch as real paths (deleted ones as given);
    `on_state(True/False)` says whether it can be trusted: with inotify, True
    while every folder under `folder` is watched (when one is not, False, and
    the log says which). A dropped-event overflow is reported as a restart,
    on_state(False) then on_state(True), and a batch (maybe empty: anything may
    have changed).
    """
    state: bool | None = None

    def say(on: bool) -> None:
        nonlocal state
        if on != state:
            state = on
            if on_state is not None:
                on_state(on)

    def drained(d: Drained) -> None:
        if watcher.up and d.restart:
            say(False)
        if watcher.up:
            say(not watcher.unwatched() and all(t.root_watched for t in watcher.trees))

    watcher = Watcher([folder], on_drained=drained)
    if not watcher.folders:
        log.info("no plans folder %s: not watching", folder)
        return

    def up(on: bool) -> None:
        say(on and (watcher.backend != "inotify" or not watcher.unwatched()))
    await watcher.run(on_changes, stop_event=stop_event, on_state=up)


async def _report(paths: set[str], on_changes: OnChanges) -> None:
    try:
        await on_changes(paths)
    except Exception:
        log.exception("handling a batch of file changes")


# statfs(2) f_type of file systems whose changes made elsewhere raise no inotify event here (another client
# of the server, the Windows side of WSL, a FUSE daemon): answers there are validated by stat.
NO_EVENT_FS = {
    0x6969: "nfs", 0xFF534D42: "cifs", 0xFE534D42: "smb2", 0x517B: "smb", 0x01021997: "9p (WSL, VMs)",
    0x65735546: "fuse", 0x00C36400: "ceph", 0x5346414F: "afs", 0x73757245: "coda", 0x47504653: "gpfs",
    0x0BD00BD0: "lustre", 0x786F4256: "vboxsf", 0x53464846: "wslfs", 0x7461636F: "ocfs2", 0x01161970: "gfs2",
}
FsType = Callable[[str], int | None]


def _statfs_type(path: str) -> int | None:
    """statfs(2)'s f_type for `path` (Linux), or None where it cannot be had."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
        if libc.statfs(os.fsencode(path), buf) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


fs_type: FsType = _statfs_type  # a seam: tests stand in a file system without events


def no_events_fs(path: str) -> str | None:
    """The name of `path`'s file system when it raises no events for changes made elsewhere, else None."""
    t = fs_type(path)
    return NO_EVENT_FS.get(t) if t is not None else None
