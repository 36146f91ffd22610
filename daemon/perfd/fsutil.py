"""Writing files the way perfd promises: atomically, and never over a file unasked."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Sequence


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


# POSIX. Windows lacks O_NOFOLLOW, O_DIRECTORY and dir_fd: write_under checks each folder by lstat there.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
_AT = bool(_NOFOLLOW and getattr(os, "O_DIRECTORY", 0)) and os.open in os.supports_dir_fd


def open_folder(root: str, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the folder `root`/`parts`..., each part opened relative to the one before it and
    without following a link (made, when missing and `create`). A part that is a link or a file, or is
    swapped for one meanwhile, raises OSError: what is opened is a real folder under `root`."""
    fd = os.open(root, _FOLDER)
    try:
        for i, name in enumerate(parts):
            where = os.path.join(*parts[:i + 1])
            if name in ("", ".", "..") or os.sep in name:
                raise OSError(errno.EINVAL, "not a plain folder name", where)
            try:
                try:
                    nfd = os.open(name, _FOLDER, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile: opened as any other (and refused if it is a link)
                    nfd = os.open(name, _FOLDER, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link_at(name, fd):  # O_NOFOLLOW met a link
                    raise OSError(errno.ELOOP, "a symbolic link where a folder should be (not followed)",
                                  where) from None
                raise OSError(exc.errno, exc.strerror, where) from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_link_at(name: str, dfd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def write_under(root: str, relpath: str, text: str | bytes, *, force: bool = False) -> None:
    """Write `root`/`relpath` atomically (as write_atomic) where no link can lead it out of `root`.

    Every folder from `root` down is opened without following links (open_folder), and the
    temporary file is created in the last one with O_EXCL|O_NOFOLLOW and renamed (or linked, without
    `force`) relative to that descriptor: whatever is swapped for a link meanwhile, nothing is
    created outside `root`; the swap fails the write (OSError) instead.
    """
    parts = [p for p in relpath.split(os.sep) if p not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, "not a path inside the folder", relpath)
    if not _AT:
        _check_folders(root, parts[:-1])
        write_atomic(os.path.join(root, *parts), text, force=force)
        return
    dfd = open_folder(root, parts[:-1], create=True)
    name = parts[-1]
    tmp = ""
    try:
        if not force and _lexists_at(name, dfd):
            raise FileExists(os.path.join(root, relpath))
        fd = -1
        for _ in range(16):
            tmp = f".perfd-{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, _NEW_FILE, 0o644, dir_fd=dfd)  # the umask applies, as to any new file
                break
            except FileExistsError:
                continue
        if fd < 0:
            raise OSError(errno.EEXIST, "no free temporary name", relpath)
        data = text.encode("utf-8") if isinstance(text, str) else text
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        else:
            try:
                os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
            except FileExistsError as exc:
                raise FileExists(os.path.join(root, relpath)) from exc
            os.unlink(tmp, dir_fd=dfd)
        tmp = ""
        os.fsync(dfd)  # the new name itself survives a crash
    finally:
        if tmp:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
        os.close(dfd)


def _check_folders(root: str, parts: Sequence[str]) -> None:
    """Without dir_fd (Windows): each folder made or checked to be a folder, not a link (best effort)."""
    path = root
    for name in parts:
        path = os.path.join(path, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.makedirs(path, exist_ok=True)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "a symbolic link where a folder should be (not followed)",
                          os.path.relpath(path, root))
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.path.relpath(path, root))


def _lexists_at(name: str, dfd: int) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


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
