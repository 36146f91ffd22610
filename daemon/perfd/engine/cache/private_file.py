"""Reading and writing perfd's own state files (the parse store, the answer store) safely.

A file is read only when it is a regular file of ours, not writable by group
or others, no larger than a bound, and never through a symlink (O_NOFOLLOW);
it is written to a private temporary file (O_EXCL|O_NOFOLLOW, 0600), synced,
and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from typing import Literal

Refusal = Literal["", "missing", "symlink", "foreign", "writable-by-others", "not-a-file", "too-large",
                  "damaged", "other-version", "other-root"]


def read_private(path: str, *, max_bytes: int) -> tuple[bytes, Refusal]:
    """The bytes of our private file at `path`, or (b"", why not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return b"", "missing"
    except OSError:
        return b"", "symlink" if os.path.islink(path) else "not-a-file"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return b"", "not-a-file"
        if st.st_uid != os.getuid():
            return b"", "foreign"
        if st.st_mode & 0o022:
            return b"", "writable-by-others"
        if st.st_size > max_bytes:
            return b"", "too-large"
        chunks = []
        left = st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), ""
    finally:
        os.close(fd)


def write_private(path: str, data: bytes) -> None:
    """Write `data` to `path` atomically, as a 0600 file of ours. OSError when the folder cannot take it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp)  # a leftover of a killed writer with our pid
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def source_digest(paths: Iterable[str]) -> str:
    """A digest of these source files (name and text) and msgspec's version: the version key of a
    state file, so that a perfd whose code that wrote it changed rebuilds it instead of trusting it."""
    import msgspec

    h = hashlib.blake2b(digest_size=12)
    h.update(msgspec.__version__.encode())
    for path in paths:
        h.update(os.path.basename(path).encode() + b"\0")
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def msgpack_array_header(n: int) -> bytes:
    """What msgpack (msgspec) writes before an array of `n` items: a store's rows can be packed a slice at a
    time (each slice's items after its own header) and joined behind this, byte for byte one encode's."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def packed_items(items: list[object]) -> bytes:
    """`items` packed as msgpack, without their array's header (see msgpack_array_header)."""
    import msgspec

    return msgspec.msgpack.encode(items)[len(msgpack_array_header(len(items))):]
