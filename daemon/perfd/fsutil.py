"""Writing files the way perfd promises: atomically, and never over a file unasked."""

from __future__ import annotations

import errno
import os
import stat
import tempfile


class FileExists(Exception):
    """The target exists and overwriting was not asked for."""


def write_atomic(path: str, text: str | bytes, *, force: bool = False) -> None:
    """Write `text` (or bytes) to `path` so readers see the old file or the new one, never half of one.

    The text goes to a temporary file in the same folder, is flushed to disk,
    and then takes the target's name: with `force`, by os.replace (atomic on
    POSIX); without, by os.link, which fails if the name exists, so a file
    that appeared meanwhile is never clobbered (no check-then-write race).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not force and os.path.lexists(path):
        raise FileExists(path)
    fd, tmp = tempfile.mkstemp(prefix=".perfd-", suffix=".tmp", dir=folder)
    try:
        data = text.encode("utf-8") if isinstance(text, str) else text
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise FileExists(path) from exc
            os.unlink(tmp)
        tmp = ""
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the new name itself survives a crash
        finally:
            os.close(dfd)
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def read_regular(path: str, *, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` + 1 of them (so the caller can tell a
    file over the limit without reading it all).

    Anything else named like a plan (a FIFO, a device, a socket) raises OSError with a plain
    strerror instead: a plain open() of a FIFO waits for a writer that never comes, which would
    hang the status of everyone. O_NONBLOCK makes that open return at once; fstat on the open
    descriptor then looks at the very file that was opened (no check-then-open race).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or socket)", path)
        if getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        # One read of the size fstat gives (plus one byte, to see EOF): reading `limit` + 1 at
        # once would allocate that much (32 MB for a plan) for every file. A file that grows
        # meanwhile is read on, up to the limit.
        want = min(st.st_size, limit) + 1
        data = os.read(fd, want)
        if len(data) < want:
            return data
        parts = [data]
        total = len(data)
        while total <= limit:
            more = os.read(fd, min(1 << 20, limit + 1 - total))
            if not more:
                break
            parts.append(more)
            total += len(more)
        return b"".join(parts)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
