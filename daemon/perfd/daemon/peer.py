"""Who is at the other end of the daemon's socket: only the daemon's own user may talk to it.

Each kernel answers the question its own way, so the way is chosen once, when
the daemon starts (`choose`):

- Linux: `SO_PEERCRED`, a `struct ucred` (pid, uid, gid);
- OpenBSD: `SO_PEERCRED` too, but a `struct sockpeercred` (uid, gid, pid);
- macOS, FreeBSD, DragonFly: `LOCAL_PEERCRED` at level `SOL_LOCAL` (0), a
  `struct xucred` (version, uid, group count, groups; FreeBSD 13+ adds the pid),
  plus `LOCAL_PEERPID` on macOS for the pid;
- any other system with libc's `getpeereid(3)` (NetBSD, illumos): uid and gid.

A system with none of them gets a reason instead of a check, and the daemon
refuses to serve rather than serve unchecked. Each branch is a parser of the
kernel's raw bytes (tested with hand-built bytes) behind a reader that fetches
them, so a test can swap the fetch and keep the parser.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from collections.abc import Callable
from typing import NamedTuple


class Peer(NamedTuple):
    """The other end of a connection; pid and gid are None where the kernel does not say."""

    pid: int | None
    uid: int
    gid: int | None


class PeerCheck(NamedTuple):
    """One way of learning a connection's peer, chosen for this system."""

    name: str  # the kernel interface, for the log: "SO_PEERCRED", "LOCAL_PEERCRED", "getpeereid"
    read: Callable[[socket.socket], Peer]


class PeerError(OSError):
    """The kernel's answer could not be read as credentials."""


# -- parsers of the kernel's raw bytes ------------------------------------------------

UCRED = struct.Struct("=iII")  # Linux struct ucred: pid_t pid; uid_t uid; gid_t gid
SOCKPEERCRED = struct.Struct("=IIi")  # OpenBSD struct sockpeercred: uid_t uid; gid_t gid; pid_t pid
# macOS/FreeBSD struct xucred: u_int cr_version; uid_t cr_uid; short cr_ngroups; (2 bytes
# of padding) gid_t cr_groups[NGROUPS = 16]; FreeBSD 13+ then a union holding pid_t cr_pid
# (with a pointer, so 8-aligned, at offset 80).
XUCRED_HEAD = struct.Struct("=IIh2x")
XUCRED_VERSION = 0
XUCRED_NGROUPS = 16
XUCRED_SIZE = XUCRED_HEAD.size + 4 * XUCRED_NGROUPS  # 76
XUCRED_PID_OFFSET = 80
XUCRED_SIZE_WITH_PID = 88  # FreeBSD 13+


def parse_ucred(data: bytes) -> Peer:
    if len(data) < UCRED.size:
        raise PeerError(f"struct ucred of {len(data)} bytes, expected {UCRED.size}")
    pid, uid, gid = UCRED.unpack_from(data)
    return Peer(pid or None, uid, gid)


def parse_sockpeercred(data: bytes) -> Peer:
    if len(data) < SOCKPEERCRED.size:
        raise PeerError(f"struct sockpeercred of {len(data)} bytes, expected {SOCKPEERCRED.size}")
    uid, gid, pid = SOCKPEERCRED.unpack_from(data)
    return Peer(pid or None, uid, gid)


def parse_xucred(data: bytes) -> Peer:
    """A `struct xucred`; the pid when the kernel appends one (FreeBSD 13+), else None."""
    if len(data) < XUCRED_HEAD.size:
        raise PeerError(f"struct xucred of {len(data)} bytes, expected at least {XUCRED_SIZE}")
    version, uid, ngroups = XUCRED_HEAD.unpack_from(data)
    if version != XUCRED_VERSION:
        raise PeerError(f"struct xucred version {version}, expected {XUCRED_VERSION}")
    if not 0 <= ngroups <= XUCRED_NGROUPS or len(data) < XUCRED_HEAD.size + 4 * max(ngroups, 1):
        raise PeerError(f"struct xucred with {ngroups} groups in {len(data)} bytes")
    gid = struct.unpack_from("=I", data, XUCRED_HEAD.size)[0] if ngroups else None
    pid = None
    if len(data) >= XUCRED_SIZE_WITH_PID:
        pid = struct.unpack_from("=i", data, XUCRED_PID_OFFSET)[0] or None
    return Peer(pid, uid, gid)


# -- readers: fetch the bytes, parse them ------------------------------------------------

Getsockopt = Callable[[socket.socket, int, int, int], bytes]


def _getsockopt(sock: socket.socket, level: int, option: int, size: int) -> bytes:
    return sock.getsockopt(level, option, size)


def ucred_check(option: int, *, getsockopt: Getsockopt = _getsockopt) -> PeerCheck:
    """Linux: SO_PEERCRED at SOL_SOCKET."""
    return PeerCheck("SO_PEERCRED", lambda s: parse_ucred(getsockopt(s, socket.SOL_SOCKET, option, UCRED.size)))


def sockpeercred_check(option: int, *, getsockopt: Getsockopt = _getsockopt) -> PeerCheck:
    """OpenBSD: SO_PEERCRED at SOL_SOCKET, fields in another order than Linux's."""
    return PeerCheck("SO_PEERCRED", lambda s: parse_sockpeercred(
        getsockopt(s, socket.SOL_SOCKET, option, SOCKPEERCRED.size)))


SOL_LOCAL = 0
LOCAL_PEERCRED = 0x001
LOCAL_PEERPID = 0x002  # macOS only


def local_peercred_check(*, option: int = LOCAL_PEERCRED, peerpid: int | None = None,
                         getsockopt: Getsockopt = _getsockopt) -> PeerCheck:
    """macOS, FreeBSD: LOCAL_PEERCRED at SOL_LOCAL; on macOS the pid from LOCAL_PEERPID."""

    def read(sock: socket.socket) -> Peer:
        peer = parse_xucred(getsockopt(sock, SOL_LOCAL, option, XUCRED_SIZE_WITH_PID))
        if peer.pid is None and peerpid is not None:
            try:
                pid = struct.unpack("=i", getsockopt(sock, SOL_LOCAL, peerpid, 4)[:4])[0]
            except (OSError, struct.error):
                pid = 0  # the uid is what is checked; the pid only names the peer in the log
            peer = peer._replace(pid=pid or None)
        return peer

    return PeerCheck("LOCAL_PEERCRED", read)


def getpeereid_check(getpeereid: Callable[[int], tuple[int, int]]) -> PeerCheck:
    """A system with getpeereid(3): uid and gid, no pid."""

    def read(sock: socket.socket) -> Peer:
        uid, gid = getpeereid(sock.fileno())
        return Peer(None, uid, gid)

    return PeerCheck("getpeereid", read)


def libc_getpeereid() -> Callable[[int], tuple[int, int]] | None:
    """libc's getpeereid(3) through ctypes, or None where libc has none (glibc, Windows)."""
    try:
        import ctypes
    except ImportError:
        return None
    try:
        # dlopen(NULL): the symbols the interpreter already has, libc's among them; no
        # find_library, which runs ldconfig or a compiler to look for it.
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.getpeereid
    except (OSError, AttributeError):
        return None
    uid_t = ctypes.c_uint32
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(uid_t), ctypes.POINTER(uid_t)]
    fn.restype = ctypes.c_int

    def getpeereid(fd: int) -> tuple[int, int]:
        uid, gid = uid_t(), uid_t()
        if fn(fd, ctypes.byref(uid), ctypes.byref(gid)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return uid.value, gid.value

    return getpeereid


def choose(*, platform: str = sys.platform, module: object = socket,
           find_getpeereid: Callable[[], Callable[[int], tuple[int, int]] | None] = libc_getpeereid,
           ) -> PeerCheck | str:
    """This system's peer check, or why there is none (then the daemon must not serve)."""
    so_peercred = getattr(module, "SO_PEERCRED", None)
    if isinstance(so_peercred, int):
        if platform.startswith("linux"):
            return ucred_check(so_peercred)
        if platform.startswith("openbsd"):
            return sockpeercred_check(so_peercred)
    if platform == "darwin":
        return local_peercred_check(option=getattr(module, "LOCAL_PEERCRED", LOCAL_PEERCRED),
                                    peerpid=getattr(module, "LOCAL_PEERPID", LOCAL_PEERPID))
    if platform.startswith(("freebsd", "dragonfly")):
        return local_peercred_check(option=getattr(module, "LOCAL_PEERCRED", LOCAL_PEERCRED))
    getpeereid = find_getpeereid()
    if getpeereid is not None:
        return getpeereid_check(getpeereid)
    return (f"no way to check who connects to the daemon's socket on {platform} "
            "(neither SO_PEERCRED, LOCAL_PEERCRED nor getpeereid)")


def peer_credentials(sock: socket.socket) -> Peer:
    """The peer of a Unix socket, with this system's check (PeerError/OSError when it cannot say)."""
    check = choose()
    if isinstance(check, str):
        raise PeerError(check)
    return check.read(sock)


def peer_allowed(uid: int, own_uid: int | None = None) -> bool:
    """Only the daemon's own user may talk to it."""
    return uid == (os.getuid() if own_uid is None else own_uid)
