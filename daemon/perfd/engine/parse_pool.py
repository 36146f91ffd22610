"""Parsing many files on every core: worker processes that stat, read and parse, and send back msgspec.

A cold status of a large workspace is mostly parsing (about 10 ms a plan with
its SUBPLANs and EXECUTION_TASKs), which is pure CPU: `parse_many` spreads it
over worker processes (`python -m perfd.engine.parse_worker`), each fed chunks
of (kind, path) and answering with `Parsed` records in msgpack, which decode
in a fraction of the parse's time. Workers are plain subprocesses over pipes,
not multiprocessing: nothing of the caller (its main module, its threads, its
event loop) is copied or re-imported, and a worker that dies costs its chunk,
which the caller then parses itself.
"""

from __future__ import annotations

import os
import queue
import selectors
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from perfd.engine.cache import RACY_WINDOW_NS, StatKey, digest, stat_key
from perfd.engine.kinds import PARSERS, pack
from perfd.engine.text import read_bytes

FEED_WAIT_S = 0.005  # while items may still be fed: how long one wait lasts before the feed is looked at again
CHUNK = 12  # files per message: small enough to balance the workers, large enough to amortise a round trip
_LEN = struct.Struct(">I")


_NIL = msgspec.Raw(b"\xc0")  # msgpack's nil: no value (Raw cannot be optional)


class Parsed(msgspec.Struct, array_like=True, omit_defaults=True):
    """One file, parsed: what the StatCache needs to hold it as if it had parsed it itself."""

    kind: str
    path: str
    key: StatKey | None = None  # (mtime_ns, size, inode) read before the bytes; None: could not read (no value)
    racy: bytes | None = None  # digest of the bytes when they were written within the racy window
    value: msgspec.Raw = _NIL  # the parsed value, packed (the cache holds it so, unpacked on use)


_REQ_DEC = msgspec.msgpack.Decoder(list[tuple[str, str]])
_RES_DEC = msgspec.msgpack.Decoder(list[Parsed])
_enc = msgspec.msgpack.Encoder()


def parse_one(kind: str, path: str) -> Parsed:
    """Stat, read and parse one file as the StatCache would (stat first, then the bytes)."""
    parse = PARSERS.get(kind)
    if parse is None:
        return Parsed(kind, path)
    try:
        st = os.stat(path)
        read_ns = time.time_ns()
        data = read_bytes(path)
    except OSError:
        return Parsed(kind, path)
    value = parse(data, path)
    return Parsed(kind, path, stat_key(st), digest(data) if read_ns - st.st_mtime_ns < RACY_WINDOW_NS else None,
                  msgspec.Raw(pack(value)))


def workers_wanted(setting: object = None) -> int:
    """How many worker processes: PERFD_PARSE_WORKERS, else `setting` ([cache] parse_workers), else the cores."""
    raw: object = os.environ.get("PERFD_PARSE_WORKERS") or setting
    try:
        n = int(raw) if raw not in (None, "", 0, "0", "auto") else 0  # type: ignore[call-overload]
    except (TypeError, ValueError):
        n = 0
    if n <= 0:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
    return max(1, min(n, 32))


# -- the worker side -------------------------------------------------------------------


def serve(stdin: Any, stdout: Any) -> None:
    """A worker's loop: read a chunk of (kind, path), answer its Parsed list; stop at end of input."""
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        body = stdin.read(_LEN.unpack(head)[0])
        answer = _enc.encode([parse_one(kind, path) for kind, path in _REQ_DEC.decode(body)])
        stdout.write(_LEN.pack(len(answer)) + answer)
        stdout.flush()


# -- the caller side -------------------------------------------------------------------


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.chunk: Sequence[tuple[str, str]] = ()
        self.buf = bytearray()

    def send(self, chunk: Sequence[tuple[str, str]]) -> None:
        self.chunk = chunk
        body = _enc.encode(list(chunk))
        assert self.proc.stdin is not None
        self.proc.stdin.write(_LEN.pack(len(body)) + body)
        self.proc.stdin.flush()

    def answer(self) -> list[Parsed] | None:
        """The answer to the chunk, once it has fully arrived."""
        if len(self.buf) < 4:
            return None
        n = _LEN.unpack_from(self.buf)[0]
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        self.chunk = ()
        return _RES_DEC.decode(body)


def _spawn(n: int) -> list[_Worker]:
    import perfd

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(perfd.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    workers = []
    for _ in range(n):
        proc = subprocess.Popen([sys.executable, "-m", "perfd.engine.parse_worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        workers.append(_Worker(proc))
    return workers


_idle: list[_Worker] = []  # workers kept between two parse_many calls (keep=True), ready for the next


def stop_idle() -> None:
    """Stop the workers a parse_many(keep=True) left running."""
    while _idle:
        _stop(_idle.pop().proc)


def sendable(path: str) -> bool:
    """Whether `path` can cross to a worker (msgpack strings are UTF-8; a lone surrogate is not)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_many(items: Sequence[tuple[str, str]], *, workers: int, keep: bool = False,
               feed: queue.SimpleQueue[Sequence[tuple[str, str]] | None] | None = None) -> Iterator[list[Parsed]]:
    """Parse `items` ((kind, path) pairs) over `workers` processes; yields batches as they arrive.

    Every item is answered exactly once, in some order, but for a path that is
    not UTF-8 (left to the caller's lazy parse). When a worker cannot
    be started or dies, its work is parsed here instead. The workers are
    stopped when the iterator ends or is closed, unless `keep`: then they wait
    for the next call (which spares starting them again), or for stop_idle().

    `feed`: more items, put by another thread while this runs (None: no more), so
    that the workers parse while the caller works out what else they should parse.
    """
    todo: list[Sequence[tuple[str, str]]] = []
    _queue_front(todo, items)
    feeding = feed is not None
    want = workers if feeding else min(workers, len(todo))
    pool = [_idle.pop() for _ in range(min(want, len(_idle)))]
    try:
        pool += _spawn(want - len(pool))
    except OSError:
        pass
    waiting: list[_Worker] = list(pool)  # live workers with no chunk
    finished = False
    sel = selectors.DefaultSelector()

    def pull(block: bool) -> None:
        nonlocal feeding
        while feeding and feed is not None:
            try:
                got = feed.get(block=block, timeout=FEED_WAIT_S if block else None)
            except queue.Empty:
                return
            if got is None:
                feeding = False
                return
            _queue_front(todo, got)
            block = False

    def hand_out() -> None:
        while todo and waiting:
            w = waiting.pop()
            assert w.proc.stdout is not None
            try:
                w.send(todo.pop())
            except OSError:
                todo.append(w.chunk)
                continue
            os.set_blocking(w.proc.stdout.fileno(), False)
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)

    try:
        hand_out()
        while sel.get_map() or (feeding and waiting):
            pull(block=not sel.get_map())
            hand_out()
            if not sel.get_map():
                continue
            for key, _ev in sel.select(timeout=FEED_WAIT_S if feeding else None):
                w = key.data
                try:
                    data = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the worker died: its chunk is parsed here
                    sel.unregister(key.fileobj)
                    if w.chunk:
                        todo.append(w.chunk)
                    continue
                w.buf += data
                got = w.answer()
                if got is None:
                    continue
                if todo:
                    try:
                        w.send(todo.pop())
                    except OSError:
                        todo.append(w.chunk)
                        sel.unregister(key.fileobj)
                else:
                    sel.unregister(key.fileobj)
                    waiting.append(w)
                yield got
        while todo or feeding:  # no worker (or none left)
            if not todo:
                pull(block=True)
                continue
            yield [parse_one(kind, path) for kind, path in todo.pop()]
        finished = True
    finally:
        sel.close()
        for w in pool:
            if keep and finished and w.proc.poll() is None:
                if w.proc.stdout is not None:
                    os.set_blocking(w.proc.stdout.fileno(), True)
                _idle.append(w)
            else:
                _stop(w.proc)


def _queue_front(todo: list[Sequence[tuple[str, str]]], items: Sequence[tuple[str, str]]) -> None:
    """Queue `items` in chunks, after what is queued already (pop() takes from the end)."""
    # A name that is not UTF-8 can neither cross to a worker nor be packed: such a file is
    # left out here, and parsed (and held unpacked) when an answer first needs it.
    to_send = [it for it in items if sendable(it[1])]
    todo[:0] = reversed([to_send[i:i + CHUNK] for i in range(0, len(to_send), CHUNK)])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
