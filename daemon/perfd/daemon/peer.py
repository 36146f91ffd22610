"""Who is at the other end of the daemon's socket: only the daemon's own user may talk to it."""

from __future__ import annotations

import os
import socket
import struct


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (SO_PEERCRED, struct ucred)."""
    fmt = "3i"
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize(fmt))
    pid, uid, gid = struct.unpack(fmt, data)
    return pid, uid, gid


def peer_allowed(uid: int, own_uid: int | None = None) -> bool:
    """Only the daemon's own user may talk to it."""
    return uid == (os.getuid() if own_uid is None else own_uid)
