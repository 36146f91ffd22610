"""perfd's own inotify reader (Linux): a folder tree watched recursively, on a descriptor perfd owns.

Why not watchfiles here: watchfiles hands events over from a thread of its own,
after a debounce, and its lower layer (`watchfiles._rust_notify`) is private, so
a watchfiles release may change it. Owning the descriptor gives two things:
- read-your-writes: the kernel queues an event when the write happens, so
  before answering a request the daemon can take what is pending with one
  non-blocking read (`read_pending`, microseconds) instead of waiting for a
  debounce; and the event loop waits on the descriptor itself (`fileno`), no
  thread needed;
- failures that are never silent: a folder that could not be watched (the
  watch limit, a permission, ...) is recorded with its reason (`unwatched`),
  and a dropped-event overflow is reported as an event of its own.

Only what changes content or listings is asked for (no IN_OPEN / IN_ACCESS /
IN_CLOSE_NOWRITE: reading the plans raises no event). Symbolic links are not
followed: what lies behind one is checked by stat by its reader.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import struct
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger("perfd.daemon")

# <sys/inotify.h>
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x1000000
IN_DONT_FOLLOW = 0x2000000
IN_EXCL_UNLINK = 0x4000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# IN_ATTRIB: a touch, a chmod, an mtime set back; IN_CLOSE_WRITE: a write through mmap raises no IN_MODIFY.
WATCH_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
              | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
READ_SIZE = 64 * 1024  # far more than one event (16 + NAME_MAX + 1 bytes)
MAX_READS = 64  # per read_pending: a flood is taken in bounded slices, the rest stays queued

AddWatch = Callable[[int, str, int], int]
"""(inotify fd, folder, mask) -> watch descriptor; raises OSError (a seam: tests make it fail)."""
Read = Callable[[int, int], bytes]
"""(fd, size) -> bytes, os.read's shape; raises BlockingIOError when nothing is pending (a seam)."""


class Event(NamedTuple):
    """One change: the file or folder it concerns, and the inotify mask saying what happened.

    An overflow (the kernel's queue was full and events were dropped) is an event
    on the tree's root with IN_Q_OVERFLOW: anything may have changed.
    Folders found by a scan (a new folder's content, created before its watch was
    added) come as IN_CREATE events.
    """

    path: str
    mask: int

    @property
    def overflow(self) -> bool:
        return bool(self.mask & IN_Q_OVERFLOW)

    @property
    def is_dir(self) -> bool:
        return bool(self.mask & IN_ISDIR)


class Unwatched(NamedTuple):
    """A folder that could not be watched (and so nothing under it is): why, for the log and the stats."""

    path: str
    errno: int
    reason: str


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add = libc.inotify_add_watch
        self.add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add.restype = ctypes.c_int
        self.rm = libc.inotify_rm_watch
        self.rm.argtypes = [ctypes.c_int, ctypes.c_int]
        self.rm.restype = ctypes.c_int


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc
    if _libc is None:
        try:
            _libc = _Libc()
        except (OSError, AttributeError) as exc:  # no libc symbols: not Linux, or a libc without inotify
            raise OSError(errno.ENOSYS, f"inotify is not available: {exc}") from exc
    return _libc


def _fail(what: str, path: str = "") -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}", *((path,) if path else ()))


def add_watch(fd: int, path: str, mask: int) -> int:
    """inotify_add_watch(2); the watch descriptor, or OSError with the errno."""
    wd = _lib().add(fd, os.fsencode(path), mask)
    if wd < 0:
        raise _fail("inotify_add_watch", path)
    return int(wd)


def max_user_watches() -> int:
    """fs.inotify.max_user_watches (the per-user watch limit), or 0 where it cannot be read."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:  # inotify is Linux's: so is this file
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _reason(code: int) -> str:
    if code == errno.ENOSPC:
        return "the inotify watch limit is reached (fs.inotify.max_user_watches)"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code == errno.ENOMEM:
        return "out of kernel memory for inotify watches"
    return os.strerror(code)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + os.sep)


class InotifyTree:
    """A folder tree watched with inotify, on a non-blocking descriptor this object owns.

    `start()` adds a watch to every folder (a walk: seconds for a huge tree, so
    callers run it off their event loop); `read_pending()` never blocks and
    returns what happened since the last call, following new folders as they
    appear. `fileno()` is for an event loop to wait on. `unwatched` names the
    folders that could not be watched, and why. Not thread-safe: one owner.
    """

    def __init__(self, root: str, *, add: AddWatch | None = None, read: Read | None = None,
                 recursive: bool = True) -> None:
        self.root = os.path.realpath(root)
        self.recursive = recursive  # False: the root's own entries only (its sub-folders are not watched)
        lib = _lib()
        fd = lib.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _fail("inotify_init1")  # EMFILE: fs.inotify.max_user_instances
        self._fd: int = fd
        self._add = add if add is not None else add_watch
        self._read = read if read is not None else os.read
        self._paths: dict[int, str] = {}  # watch descriptor -> folder
        self._wds: dict[str, int] = {}  # folder -> watch descriptor
        self._moved: set[int] = set()  # folders moved away, their new place not known yet (see _moved_from)
        self._root_wd = -1
        self.unwatched: dict[str, Unwatched] = {}
        """Folders not watched (each with everything under it), by path. A folder that vanished before its
        watch was added (ENOENT, ENOTDIR) is not here: its parent's event reports it gone."""
        self.overflows = 0
        self.root_watched = False
        """False before start() and once the root itself was deleted, moved or unmounted: watching has ended."""

    # -- the descriptor ------------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.root_watched = False

    def __enter__(self) -> InotifyTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def watched(self) -> int:
        """How many folders are watched now."""
        return len(self._paths)

    @property
    def complete(self) -> bool:
        """The root is watched and so is every folder under it (as far as the events said)."""
        return self.root_watched and not self.unwatched

    # -- watching --------------------------------------------------------------------------------------

    def start(self) -> None:
        """Watch the root and every folder under it; OSError when the root itself cannot be watched."""
        self._add_tree(self.root, None)
        wd = self._wds.get(self.root)
        if wd is None:
            gone = self.unwatched.get(self.root)
            raise OSError(gone.errno if gone else errno.ENOENT,
                          f"cannot watch {self.root}: {gone.reason if gone else 'it is gone'}")
        self._root_wd = wd
        self.root_watched = True

    def rescan(self) -> None:
        """Add a watch to every folder that has none (after an overflow: events for new folders were lost;
        or to try the unwatched ones again). Folders already watched keep their watch."""
        if self.root_watched:
            self._add_tree(self.root, None)

    def read_pending(self) -> list[Event]:
        """What happened since the last call; [] at once when nothing is pending. Never blocks."""
        events: list[Event] = []
        for _ in range(MAX_READS):
            if self._fd < 0:
                break
            try:
                buf = self._read(self._fd, READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not buf:
                break
            self._parse(buf, events)
        return events

    # -- inside ----------------------------------------------------------------------------------------

    def _parse(self, buf: bytes, out: list[Event]) -> None:
        off, size = 0, _HEADER.size
        while off + size <= len(buf):
            wd, mask, _cookie, length = _HEADER.unpack_from(buf, off)
            name = buf[off + size:off + size + length].split(b"\0", 1)[0]
            off += size + length
            self._handle(wd, mask, os.fsdecode(name), out)

    def _handle(self, wd: int, mask: int, name: str, out: list[Event]) -> None:
        if mask & IN_Q_OVERFLOW:
            self.overflows += 1
            log.warning("the inotify queue overflowed (events were dropped): every file under %s may have changed",
                        self.root)
            out.append(Event(self.root, mask))
            self.rescan()  # new folders among the dropped events have no watch yet
            return
        base = self._paths.get(wd)
        if base is None:
            return  # a watch already forgotten (its IN_IGNORED, or an event queued before it went)
        path = os.path.join(base, name) if name else base
        if mask & IN_IGNORED:  # the watch is gone: its folder was deleted, moved out, or unmounted
            self._forget(wd)
            return
        if mask & IN_ISDIR and name:
            if mask & (IN_CREATE | IN_MOVED_TO):
                out.append(Event(path, mask))
                if self.recursive:
                    # What was created in it before its watch was added raised no event: the scan reports it.
                    self._add_tree(path, out)
                return
            if mask & (IN_MOVED_FROM | IN_DELETE):
                self._moved_from(path)
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
            if wd == self._root_wd:
                log.warning("the watched folder %s was deleted, moved or unmounted: watching ends", self.root)
                self.root_watched = False
            elif mask & IN_MOVE_SELF and wd in self._moved:
                self._drop_moved(base)  # moved out of the tree (a move inside it re-attached it at IN_MOVED_TO)
        out.append(Event(path, mask))

    def _add_tree(self, top: str, found: list[Event] | None) -> None:
        """Watch `top` and every folder under it; with `found`, report each entry under it as created."""
        failed: list[Unwatched] = []
        stack = [top]
        while stack:
            folder = stack.pop()
            if not self._watch(folder, failed):
                continue
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            is_dir = False
                        if is_dir and self.recursive:
                            stack.append(entry.path)
                        if found is not None:
                            found.append(Event(entry.path, IN_CREATE | (IN_ISDIR if is_dir else 0)))
            except OSError as exc:  # gone meanwhile (its parent's event says so), or unreadable
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    gone = Unwatched(folder, exc.errno or 0, f"cannot list it: {_reason(exc.errno or 0)}")
                    self.unwatched[folder] = gone
                    failed.append(gone)
        if failed:
            self._log_failed(failed)

    def _watch(self, folder: str, failed: list[Unwatched]) -> bool:
        try:
            wd = self._add(self._fd, folder, WATCH_MASK)
        except OSError as exc:
            code = exc.errno or 0
            if code in (errno.ENOENT, errno.ENOTDIR):
                return False  # gone, or a file now, before its watch was added: its parent's event says so
            gone = Unwatched(folder, code, _reason(code))
            self.unwatched[folder] = gone
            failed.append(gone)
            return False
        old = self._paths.get(wd)  # the same folder under a new name (moved inside the tree): same watch
        if old is not None and old != folder and self._wds.get(old) == wd:
            del self._wds[old]
        self._moved.discard(wd)
        self._paths[wd] = folder
        self._wds[folder] = wd
        self.unwatched.pop(folder, None)
        return True

    def _moved_from(self, top: str) -> None:
        """A folder left `top` (moved or deleted): its watches (and its subfolders') no longer answer to
        paths under it. A move inside the tree re-attaches them at IN_MOVED_TO (adding a watch to a watched
        folder returns its watch); one out of the tree ends them at IN_MOVE_SELF."""
        for path in [p for p in self._wds if _under(p, top)]:
            self._moved.add(self._wds.pop(path))
        for path in [p for p in self.unwatched if _under(p, top)]:
            del self.unwatched[path]

    def _drop_moved(self, top: str) -> None:
        lib = _lib()
        for wd in [w for w in self._moved if _under(self._paths.get(w, ""), top)]:
            lib.rm(self._fd, wd)  # its IN_IGNORED finds nothing to forget
            self._forget(wd)

    def _forget(self, wd: int) -> None:
        path = self._paths.pop(wd, None)
        if path is not None and self._wds.get(path) == wd:
            del self._wds[path]
        self._moved.discard(wd)
        if wd == self._root_wd:
            self.root_watched = False

    def _log_failed(self, failed: list[Unwatched]) -> None:
        first = failed[0]
        more = f" (and {len(failed) - 1} more folders)" if len(failed) > 1 else ""
        hint = ""
        if any(u.errno == errno.ENOSPC for u in failed):
            # Each folder needs one watch (its subfolders too, which were not even listed).
            hint = f"; raise fs.inotify.max_user_watches (sysctl) by at least {len(failed)}"
        log.warning("not watched: %s%s: %s%s; changes there are not reported", first.path, more, first.reason,
                    hint)
