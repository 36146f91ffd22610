"""Per-user folders perfd keeps things in, and creating files in them without following links.

Kept import-light (os, and stat, which os has already loaded) because the
thin CLI client needs runtime_dir() to find the daemon's socket on every call.

A private folder is trusted only when lstat shows a real directory (not a
symlink) owned by this user; one that is not is refused with UnsafeFolder
(an OSError with a one-line reason), never followed, chmodded or written
into: another local user could otherwise plant a symlink to a file of their
choosing and have a root-run perfd overwrite it.
"""


import os
import stat

if False:  # for type checkers only: the thin client imports this module on every call
    from collections.abc import Mapping


class UnsafeFolder(OSError):
    """A folder perfd would keep private files in cannot be trusted; str() is a one-line reason."""


def check_private_dir(path: str) -> os.stat_result:
    """lstat `path` and refuse it unless it is a real directory owned by this user (UnsafeFolder)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFolder(f"{path} is a symlink; refusing to use it for private files")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is not a folder; refusing to use it for private files")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():  # Windows has no uids (nor sockets to guard)
        raise UnsafeFolder(f"{path} belongs to another user (uid {st.st_uid}); refusing to use it")
    return st


def _private_dir(path: str) -> str:
    # mkdir (not makedirs) for the folder itself, so that an existing one is
    # lstat-checked rather than trusted; parents are ordinary folders.
    parent = os.path.dirname(path)
    try:
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    except OSError as exc:  # a file where a folder should be (XDG_STATE_HOME=/some/file), no permission
        raise UnsafeFolder(f"cannot make the folder {path}: {exc.strerror or exc}"
                           f"{' (' + exc.filename + ')' if exc.filename and exc.filename != path else ''}") from None
    st = check_private_dir(path)
    if st.st_mode & 0o077 and hasattr(os, "fchmod"):  # (Windows has no modes to tighten)
        # Ours, but too open (an older perfd, a umask): tighten it through a
        # descriptor opened without following links, the very folder lstat saw.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino) or fst.st_uid != getattr(os, "getuid", lambda: fst.st_uid)():
                raise UnsafeFolder(f"{path} changed while perfd checked it; refusing to use it")
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return path


# O_NOFOLLOW is POSIX; Windows (no symlink attacks on a per-user folder there, and no daemon) lacks it.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
NOFOLLOW_CREATE = os.O_CREAT | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_private(path: str, flags: int, mode: int = 0o600) -> int:
    """os.open for perfd's own files (locks, logs): never through a symlink (ELOOP instead)."""
    return os.open(path, flags | NOFOLLOW_CREATE, mode)


def create_exclusive(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a new file at `path`, which must not exist (O_EXCL: a planted file or symlink makes it fail)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def replace_private(path: str, data: bytes) -> None:
    """Atomically put `data` at `path` (a pid file): a fresh temporary created with O_EXCL, then rename.

    A leftover or planted `<path>.tmp` (a symlink included) is unlinked, never
    written through; rename replaces a symlink at `path` itself rather than
    following it.
    """
    tmp = path + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    create_exclusive(tmp, data)
    os.replace(tmp, path)


def state_dir() -> str:
    """Logs, the response cache and history: $XDG_STATE_HOME/perfd or ~/.local/state/perfd."""
    base = os.environ.get("PERFD_STATE_DIR")
    if base:
        return _private_dir(base)
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return _private_dir(os.path.join(xdg, "perfd"))


def runtime_dir() -> str:
    """Sockets and locks: $PERFD_RUNTIME_DIR as given, else the first of the usual places whose sockets fit."""
    base = os.environ.get("PERFD_RUNTIME_DIR")
    if base:
        return _private_dir(base)
    return _private_dir(default_runtime_dir())


# A Unix socket's path must fit in sockaddr_un.sun_path with its NUL: 104 bytes on macOS
# and the BSDs, 108 on Linux. perfd's own choice of folder keeps to the smaller everywhere.
SUN_PATH_MAX = 104
# The longest name perfd binds in its runtime folder: "<16 hex digits>.sock" (wire.rendezvous).
SOCKET_NAME_MAX = len("0123456789abcdef.sock")


def socket_path_fits(path: str, limit: int = SUN_PATH_MAX) -> bool:
    """Whether `path` can be bound as a Unix socket where sun_path holds `limit` bytes."""
    return len(os.fsencode(path)) < limit


def default_runtime_dir() -> str:
    """$XDG_RUNTIME_DIR/perfd, else perfd-<uid> in $TMPDIR, else in /tmp: the first whose sockets fit.

    macOS gives every user a $TMPDIR of about 50 bytes (/var/folders/xx/.../T/), and
    a user may set a longer one; /tmp/perfd-<uid>/ always leaves room for a socket name.
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    candidates = []
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        candidates.append(os.path.join(xdg, "perfd"))
    tmp = os.environ.get("TMPDIR")
    if tmp:
        candidates.append(os.path.join(tmp, f"perfd-{uid}"))
    candidates.append(os.path.join("/tmp", f"perfd-{uid}"))
    for folder in candidates:
        if socket_path_fits(os.path.join(folder, "x" * SOCKET_NAME_MAX)):
            return folder
    return candidates[-1]


PLANS_DIR = os.path.join("work-space", "plans")


def is_workspace_root(path: str, plans_dir: str = PLANS_DIR) -> bool:
    """Whether `path` holds `work-space/plans/` or perfd.toml (the one rule)."""
    return os.path.isdir(os.path.join(path, plans_dir)) or os.path.isfile(os.path.join(path, "perfd.toml"))


def holds_plans(root: str, plans_dir: str = PLANS_DIR) -> bool:
    """Whether a daemon is worth starting for `root`: a perfd.toml (which may move the plans elsewhere),
    or a plans folder with anything in it."""
    if os.path.isfile(os.path.join(root, "perfd.toml")):
        return True
    try:
        with os.scandir(os.path.join(root, plans_dir)) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def settings_variables(env: "Mapping[str, str]") -> dict[str, str]:
    """The variables of `env` that are settings (PERFD_*, but not these two, which say where perfd keeps its
    files): what a client sends with a request, and what a daemon sets aside for a request's own."""
    return {k: v for k, v in env.items()
            if k[:6] == "PERFD_" and k != "PERFD_RUNTIME_DIR" and k != "PERFD_STATE_DIR"}


def find_workspace_root(start: str, plans_dir: str = PLANS_DIR) -> str | None:
    """Walk up from `start` to the folder that holds `work-space/plans/` or perfd.toml (the one rule)."""
    path = os.path.abspath(start)
    while True:
        if is_workspace_root(path, plans_dir):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
