"""The daemon's peer check, one branch per kernel, fed the kernels' raw bytes built by hand.

Each struct is written out byte by byte (little-endian, as on x86-64 and arm64
macOS), not with the parser's own struct formats, so a wrong offset or field
order in the parser fails here.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from perfd.daemon import peer
from perfd.daemon.peer import Peer, PeerError


def le32(n: int) -> bytes:
    return n.to_bytes(4, "little", signed=n < 0)


def le16(n: int) -> bytes:
    return n.to_bytes(2, "little", signed=n < 0)


# -- Linux: struct ucred { pid_t pid; uid_t uid; gid_t gid; } ---------------------------------

def test_linux_ucred() -> None:
    raw = b"\x39\x30\x00\x00" + b"\xe8\x03\x00\x00" + b"\x64\x00\x00\x00"  # pid 12345, uid 1000, gid 100
    assert peer.parse_ucred(raw) == Peer(12345, 1000, 100)


def test_linux_ucred_uid_above_2_31_is_unsigned() -> None:
    assert peer.parse_ucred(le32(7) + b"\xfe\xff\xff\xff" + le32(5)) == Peer(7, 0xFFFFFFFE, 5)


def test_linux_ucred_too_short() -> None:
    with pytest.raises(PeerError):
        peer.parse_ucred(b"\x01\x00\x00\x00\xe8\x03")


# -- OpenBSD: struct sockpeercred { uid_t uid; gid_t gid; pid_t pid; } --------------------------

def test_openbsd_sockpeercred_order_differs_from_linux() -> None:
    raw = le32(1000) + le32(100) + le32(4242)
    assert peer.parse_sockpeercred(raw) == Peer(4242, 1000, 100)
    assert peer.parse_ucred(raw) != Peer(4242, 1000, 100)


# -- macOS / FreeBSD: struct xucred ----------------------------------------------------------------

def xucred(uid: int, groups: list[int], *, version: int = 0, ngroups: int | None = None,
           pid: int | None = None) -> bytes:
    """The bytes of a struct xucred as the kernel writes it (76 bytes; FreeBSD 13+: 88, pid at 80)."""
    n = len(groups) if ngroups is None else ngroups
    out = le32(version) + le32(uid) + le16(n) + b"\0\0"
    out += b"".join(le32(g) for g in groups) + b"\0" * 4 * (16 - len(groups))
    assert len(out) == 76
    if pid is not None:
        out += b"\0" * 4 + le32(pid) + b"\0" * 4  # padding to the 8-aligned union, the pid, the rest of it
        assert len(out) == 88
    return out


def test_macos_xucred() -> None:
    assert peer.parse_xucred(xucred(501, [20, 12, 61, 79])) == Peer(None, 501, 20)


def test_freebsd_xucred_with_pid() -> None:
    assert peer.parse_xucred(xucred(1001, [1001, 0], pid=9876)) == Peer(9876, 1001, 1001)


def test_xucred_without_groups_has_no_gid() -> None:
    assert peer.parse_xucred(xucred(501, [])) == Peer(None, 501, None)


@pytest.mark.parametrize("raw", [
    xucred(501, [20], version=1),  # a version this parser does not know
    xucred(501, [20], ngroups=17),  # more groups than NGROUPS
    xucred(501, [20], ngroups=-1),
    xucred(501, [20])[:10],  # cut short
    b"",
])
def test_xucred_refused_when_malformed(raw: bytes) -> None:
    with pytest.raises(PeerError):
        peer.parse_xucred(raw)


def fake_getsockopt(answers: dict[tuple[int, int], bytes]) -> peer.Getsockopt:
    def getsockopt(sock: socket.socket, level: int, option: int, size: int) -> bytes:
        if (level, option) not in answers:
            raise OSError(92, "Protocol not available")
        return answers[(level, option)][:size]

    return getsockopt


def test_macos_reader_asks_sol_local_and_adds_the_pid_from_local_peerpid() -> None:
    check = peer.local_peercred_check(option=1, peerpid=2, getsockopt=fake_getsockopt(
        {(0, 1): xucred(501, [20]), (0, 2): le32(31337)}))
    assert check.name == "LOCAL_PEERCRED"
    assert check.read(socket.socket()) == Peer(31337, 501, 20)


def test_macos_reader_without_local_peerpid_still_checks_the_uid() -> None:
    check = peer.local_peercred_check(option=1, peerpid=2, getsockopt=fake_getsockopt({(0, 1): xucred(501, [20])}))
    assert check.read(socket.socket()) == Peer(None, 501, 20)


def test_getpeereid_stand_in() -> None:
    seen: list[int] = []

    def getpeereid(fd: int) -> tuple[int, int]:
        seen.append(fd)
        return 1000, 100

    with socket.socket(socket.AF_UNIX) as s:
        assert peer.getpeereid_check(getpeereid).read(s) == Peer(None, 1000, 100)
        assert seen == [s.fileno()]


def test_getpeereid_failure_is_an_oserror() -> None:
    def getpeereid(fd: int) -> tuple[int, int]:
        raise OSError(57, "Socket is not connected")

    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:
        peer.getpeereid_check(getpeereid).read(s)


# -- the choice, made once per system --------------------------------------------------------------

def no_getpeereid() -> None:
    return None


def stand_in() -> Callable[[int], tuple[int, int]]:
    return lambda fd: (1, 1)


@pytest.mark.parametrize(("platform", "module", "find", "expected"), [
    ("linux", SimpleNamespace(SO_PEERCRED=17), no_getpeereid, "SO_PEERCRED"),
    ("openbsd7", SimpleNamespace(SO_PEERCRED=0x1022), no_getpeereid, "SO_PEERCRED"),
    ("darwin", SimpleNamespace(), no_getpeereid, "LOCAL_PEERCRED"),
    ("darwin", SimpleNamespace(LOCAL_PEERCRED=1), stand_in, "LOCAL_PEERCRED"),
    ("freebsd14", SimpleNamespace(), no_getpeereid, "LOCAL_PEERCRED"),
    ("netbsd10", SimpleNamespace(), stand_in, "getpeereid"),
    ("sunos5", SimpleNamespace(SO_PEERCRED=0x1000), stand_in, "getpeereid"),  # unknown layout: not read
    ("linux", SimpleNamespace(), stand_in, "getpeereid"),
])
def test_choose(platform: str, module: object, find: Callable[[], object], expected: str) -> None:
    check = peer.choose(platform=platform, module=module, find_getpeereid=find)  # type: ignore[arg-type]
    assert isinstance(check, peer.PeerCheck) and check.name == expected


def test_choose_on_linux_reads_the_openbsd_layout_never() -> None:
    linux = peer.choose(platform="linux", module=SimpleNamespace(SO_PEERCRED=17), find_getpeereid=no_getpeereid)
    openbsd = peer.choose(platform="openbsd7", module=SimpleNamespace(SO_PEERCRED=17), find_getpeereid=no_getpeereid)
    assert isinstance(linux, peer.PeerCheck) and isinstance(openbsd, peer.PeerCheck)
    raw = le32(1) + le32(2) + le32(3)
    fake = SimpleNamespace(getsockopt=lambda level, option, size: raw)
    assert linux.read(fake) == Peer(1, 2, 3)  # type: ignore[arg-type]
    assert openbsd.read(fake) == Peer(3, 1, 2)  # type: ignore[arg-type]


def test_choose_with_no_way_gives_a_one_line_reason() -> None:
    why = peer.choose(platform="linux", module=SimpleNamespace(), find_getpeereid=no_getpeereid)
    assert isinstance(why, str) and "\n" not in why
    assert "SO_PEERCRED" in why and "getpeereid" in why


def test_glibc_has_no_getpeereid_and_the_lookup_says_so() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    assert peer.libc_getpeereid() is None


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED systems")
def test_this_systems_check_reads_a_real_peer() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        check = peer.choose()
        assert isinstance(check, peer.PeerCheck)
        got = check.read(a)
        assert got.uid == os.getuid() and got.pid == os.getpid()
        assert peer.peer_allowed(got.uid) and not peer.peer_allowed(got.uid + 1)


@pytest.mark.skipif(sys.platform != "darwin", reason="macOS")
def test_macos_local_peercred_reads_a_real_peer() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        check = peer.choose()
        assert isinstance(check, peer.PeerCheck) and check.name == "LOCAL_PEERCRED"
        got = check.read(a)
        assert got.uid == os.getuid() and got.pid == os.getpid() and got.gid == os.getegid()
