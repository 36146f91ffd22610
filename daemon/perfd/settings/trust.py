"""Workspace trust: the user's say-so that a workspace file may set what sends, reads outside or spends.

As direnv's `allow` and mise's `trust`: `perfd trust` records a digest of the
workspace's absolute path and of every value in its settings file that needs
trust (perfd.settings.schema.TRUST). Any change to those values gives
another digest, so the record no longer matches and the settings wait again
until the user trusts the new content. Records live in the user's state
folder, one small private file per workspace, written atomically; nothing
in the workspace can vouch for itself.
"""

from __future__ import annotations

import hashlib
import json
import os

import msgspec

from perfd.paths import replace_private, state_dir

from .sources import SettingsError

TRUST_FOLDER = "trusted"


class TrustRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What `perfd trust` recorded: the workspace, the digest, and the settings it allowed (for --show)."""

    root: str
    digest: str
    settings: dict[str, str]  # "[table] key" -> the value as TOML would write it


def digest(root: str, values: dict[str, object]) -> str:
    """One digest of a workspace's path and its trust-needing values ("[table] key" -> value)."""
    text = json.dumps({"root": root, "settings": values}, sort_keys=True, default=repr, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def record_path(root: str) -> str:
    """The record's file for `root` (SettingsError when the state folder cannot be used)."""
    try:
        folder = os.path.join(state_dir(), TRUST_FOLDER)
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        where = exc.filename or "the state folder"
        raise SettingsError(f"cannot use {where} for trust records: {exc.strerror or exc} "
                            "(check XDG_STATE_HOME / PERFD_STATE_DIR)") from None
    name = hashlib.sha256(os.fsencode(root)).hexdigest()[:32] + ".json"
    return os.path.join(folder, name)


def read(root: str) -> TrustRecord | None:
    """The record for `root`, or None (none, unreadable or not perfd's: trust is never assumed)."""
    path = record_path(root)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        data = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        rec = msgspec.json.decode(data, type=TrustRecord)
    except msgspec.DecodeError:
        return None
    return rec if rec.root == root else None


def is_trusted(root: str, current: str) -> bool:
    rec = read(root)
    return rec is not None and rec.digest == current


def write(root: str, current: str, shown: dict[str, str]) -> str:
    """Record trust in `root`'s current values; the record's path."""
    path = record_path(root)
    replace_private(path, msgspec.json.encode(TrustRecord(root=root, digest=current, settings=shown)))
    return path


def revoke(root: str) -> bool:
    """Forget the record for `root`; whether there was one."""
    try:
        os.unlink(record_path(root))
    except FileNotFoundError:
        return False
    return True
