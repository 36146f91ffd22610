"""Per-user folders perfd keeps things in.

Kept import-light (os only) because the thin CLI client needs runtime_dir()
to find the daemon's socket on every call.
"""

from __future__ import annotations

import os


def _private_dir(path: str) -> str:
    # makedirs(mode=...) is filtered by the umask and leaves existing folders
    # alone, so set the mode explicitly: these folders hold sockets, logs and
    # caches that must stay private to the user.
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():  # Windows has no uids (nor sockets to guard)
        raise PermissionError(f"{path} belongs to another user (uid {st.st_uid})")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


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


def find_workspace_root(start: str, plans_dir: str = PLANS_DIR) -> str | None:
    """Walk up from `start` to the folder that holds `work-space/plans/` or perfd.toml (the one rule)."""
    path = os.path.abspath(start)
    while True:
        if os.path.isdir(os.path.join(path, plans_dir)) or os.path.isfile(os.path.join(path, "perfd.toml")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
