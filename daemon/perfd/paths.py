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
    if st.st_uid != os.getuid():
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
    """Sockets and locks: $XDG_RUNTIME_DIR/perfd, else a per-user folder under the temp dir."""
    base = os.environ.get("PERFD_RUNTIME_DIR")
    if base:
        return _private_dir(base)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return _private_dir(os.path.join(xdg, "perfd"))
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return _private_dir(os.path.join(tmp, f"perfd-{os.getuid()}"))


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
