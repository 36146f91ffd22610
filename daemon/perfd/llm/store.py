"""One SQLite file for the cache or the history, safe to use from the daemon.

sqlite3 calls block, so nothing here runs on the event loop: reads go through
`anyio.to_thread` and writes are queued to one writer thread that commits
them in batches (a call never waits for a disk sync). One connection is
shared under a lock; WAL mode lets a CLI process read while the daemon writes.

A file that turns out to be corrupt (or not a database at all) is renamed to
`<name>.corrupt-<timestamp>` and rebuilt empty with a logged warning: losing
a cache or old history is fine, crashing the daemon is not. Only the newest
KEEP_SET_ASIDE such files are kept. Another process may set the file aside
(or delete it) while this one has it open: before each use the store checks
that its path still names the file it opened, and reopens it if not, so no
writer keeps writing into a file that was set aside.

A read-only store (`read_only=True`, for `perfd stats --history`) opens the
file for reading only, never creates, repairs or sets aside anything, and
works in a read-only folder.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

log = logging.getLogger("perfd.llm")

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], None]

_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
KEEP_SET_ASIDE = 3  # set-aside files kept per store (newest first); older ones are deleted
_BATCH = 1024
_LINGER_S = 0.02


def is_corruption(exc: BaseException) -> bool:
    """A damaged file (as opposed to "locked", "disk full", "read-only", ...)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


class SQLiteStore:
    """A lazily opened SQLite file with a schema, a writer thread and self-repair."""

    def __init__(self, path: str, schema: str, *, version: int, on_open: Callable[[sqlite3.Connection], None] | None = None,
                 read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the connection has open
        self._schema = schema
        self._version = version
        self._on_open = on_open
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._queue: queue.Queue[Write | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._closed = False  # no new writes are accepted
        self._finished = False  # the queued writes are committed and the file is closed
        self.rebuilt = 0  # how many times a corrupt file was set aside

    # -- opening ------------------------------------------------------------

    def _connect_read_only(self) -> sqlite3.Connection:
        from urllib.parse import quote

        uri = "file:" + quote(os.path.abspath(self.path))
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, check_same_thread=False, timeout=5.0)
            conn.execute("PRAGMA user_version").fetchone()
            return conn
        except sqlite3.OperationalError:
            # A WAL file in a read-only folder: SQLite cannot make its shared-memory
            # index there; immutable=1 reads the file as it is, without one.
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, check_same_thread=False, timeout=5.0)
            conn.execute("PRAGMA user_version").fetchone()
            return conn

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        # Create the file private before SQLite does (it copies the mode to -wal/-shm).
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable enough for a cache
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({row[0] if row else 'no result'})")
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current not in (0, self._version):
                # A file from another schema version: start over rather than guess.
                conn.close()
                self._set_aside(f"schema version {current}, expected {self._version}", suffix="old")
                return self._connect()
            conn.executescript(self._schema)
            if current != self._version:  # only a new file: readers never need the write lock
                conn.execute(f"PRAGMA user_version={self._version}")
            if self._on_open is not None:
                self._on_open(conn)
            st = os.stat(self.path)
            self._ident = (st.st_dev, st.st_ino)
        except BaseException:
            conn.close()
            raise
        return conn

    def _still_ours(self) -> bool:
        """Whether the path still names the file our connection has open (not set aside or deleted since)."""
        if self._ident is None:
            return True
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def _ensure(self) -> sqlite3.Connection:
        if self._conn is not None and not self._still_ours():
            log.info("%s was replaced or set aside by another process; reopening it", self.path)
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        if self._conn is None:
            if self._finished:  # not _closed: close() lets the writer commit what was queued first
                raise sqlite3.ProgrammingError("store is closed")
            try:
                self._conn = self._connect()
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or self.read_only:
                    raise
                self._set_aside(str(exc))
                self._conn = self._connect()
        return self._conn

    def _set_aside(self, why: str, *, suffix: str = "corrupt") -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = f"{self.path}.{suffix}-{stamp}"
        n = 1
        while os.path.exists(target):
            n += 1
            target = f"{self.path}.{suffix}-{stamp}.{n}"
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            pass
        for extra in ("-wal", "-shm"):
            try:
                os.replace(self.path + extra, target + extra)
            except FileNotFoundError:
                pass
        self.rebuilt += 1
        self._ident = None
        log.warning("%s is unusable (%s); moved it to %s and starting a new one", self.path, why, target)
        self._prune_set_aside()

    def _prune_set_aside(self) -> None:
        """Keep the newest KEEP_SET_ASIDE set-aside files (with their -wal and -shm); delete the rest."""
        folder = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        try:
            names = [n for n in os.listdir(folder) if n.startswith((base + ".corrupt-", base + ".old-"))
                     and not n.endswith(("-wal", "-shm"))]
        except OSError:
            return
        def mtime(n: str) -> float:
            try:
                return os.lstat(os.path.join(folder, n)).st_ctime  # the rename: when it was set aside
            except OSError:
                return 0.0
        for n in sorted(names, key=mtime, reverse=True)[KEEP_SET_ASIDE:]:
            for extra in ("", "-wal", "-shm"):
                try:
                    os.unlink(os.path.join(folder, n + extra))
                except OSError:
                    pass

    # -- running ------------------------------------------------------------

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` now, in this thread (blocking; use `arun` from async code)."""
        with self._lock:
            conn = self._ensure()
            try:
                return fn(conn)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc) or self.read_only:
                    raise
                self._set_aside(str(exc))
                return fn(self._ensure())

    async def arun(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self.run, fn)

    def submit(self, write: Write) -> None:
        """Queue a write for the writer thread; returns at once."""
        if self._closed:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name=f"perfd-sqlite:{os.path.basename(self.path)}", daemon=True)
            self._writer.start()
        self._queue.put(write)

    async def flush(self) -> None:
        """Wait until every queued write is committed."""
        if self._writer is not None:
            await anyio.to_thread.run_sync(self._queue.join)

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is not None:
                # Linger a moment so a burst of calls becomes one transaction:
                # fewer commits and far fewer GIL hand-offs with the event loop.
                time.sleep(_LINGER_S)
            batch: list[Write | None] = [item]
            while item is not None and len(batch) < _BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            writes = [w for w in batch if w is not None]
            try:
                if writes:
                    self.run(lambda conn: _transaction(conn, writes))
            except Exception as exc:  # a cache/history write must never kill the daemon
                log.warning("could not write to %s: %s", self.path, exc)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if batch[-1] is None:
                return

    def close(self) -> None:
        """Commit queued writes, stop the writer thread and close the file (blocking)."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
        with self._lock:
            self._finished = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _transaction(conn: sqlite3.Connection, writes: list[Write]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for write in writes:
            write(conn)
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the original error is the one worth reporting
        raise
    conn.execute("COMMIT")
