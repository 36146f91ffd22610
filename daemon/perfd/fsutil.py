"""Writing files the way perfd promises: atomically, and never over a file unasked."""

from __future__ import annotations

import os
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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
