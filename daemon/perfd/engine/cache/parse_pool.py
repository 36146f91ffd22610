"""Parsing many files on every core: worker processes that stat, read and parse, and send back msgspec.

A cold status of a large workspace is mostly parsing (about 10 ms a plan with
its SUBPLANs and EXECUTION_TASKs), which is pure CPU: `parse_many` spreads it
over worker processes (`python -m perfd.engine.cache.parse_worker`), each fed chunks
of (kind, path) and answering with `Parsed` records in msgpack, which decode
in a fraction of the parse's time. Workers are plain subprocesses over pipes,
not multiprocessing: nothing of the caller (its main module, its threads, its
event loop) is copied or re-imported, and a worker that dies costs its chunk,
which the caller then parses itself.

`decide_many` hands the workers whole plans instead (a `PlanJob`): each worker
lists the plan's folders, parses its files and decides its status line, and
answers with a `PlanPart` per plan (the parsed files, the folder listings and
the two memoised answers with their inputs), so that the caller only merges.
The caller decodes each as a `PlanHead`: the answers at once, the files and
listings (most of the bytes) left packed until it has the time to hold them.
"""

from __future__ import annotations

import os
import queue
import selectors
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import IO, cast

import msgspec

from perfd.engine.cache.cache import RACY_WINDOW_NS, StatKey, digest, stat_key
from perfd.engine.kinds import PARSERS, pack
from perfd.engine.ownership import PlanRef
from perfd.engine.text import read_bytes
from perfd.engine.types import PlanSummary
from perfd.engine.workspace import PlanFiles

FEED_WAIT_S = 0.005  # while items may still be fed: how long one wait lasts before the feed is looked at again
CHUNK = 12  # files per message: small enough to balance the workers, large enough to amortise a round trip
PLAN_CHUNK = 4  # plans per PlanJob (a plan is about 25 files)
_LEN = struct.Struct(">I")
_READ = 1 << 16  # bytes per read of an answer: a pipe's worth (a read of 1 MB allocated, and mapped, 1 MB each time)
_PIPE = 1 << 20  # a worker's answer pipe, enlarged so that it can write a whole answer and go on to its next job


_NIL = msgspec.Raw(b"\xc0")  # msgpack's nil: no value (Raw cannot be optional)


class Parsed(msgspec.Struct, array_like=True, omit_defaults=True):
    """One file, parsed: what the StatCache needs to hold it as if it had parsed it itself."""

    kind: str
    path: str
    key: StatKey | None = None  # (mtime_ns, size, inode, ctime_ns) read before the bytes; None: could not read (no value)
    racy: bytes | None = None  # digest of the bytes when they were written within the racy window
    value: msgspec.Raw = _NIL  # the parsed value, packed (the cache holds it so, unpacked on use)


class Listed(msgspec.Struct, array_like=True):
    """One folder's listing as a worker's Workspace scanned it (names inside the workspace, plan files leading out)."""

    path: str
    key: StatKey
    racy: bytes | None
    names: list[str]
    outside: list[str]


class FilesAnswer(msgspec.Struct, array_like=True):
    """A plan's files (Engine's memoised "files" answer) with the inputs they were found from."""

    archive: str | None
    inputs: list[tuple[str, StatKey | None]]
    value: PlanFiles


class SummaryAnswer(msgspec.Struct, array_like=True):
    """A plan's status line (Engine's memoised "summary" answer) with every input it read."""

    inputs: list[tuple[str, StatKey | None]]
    value: PlanSummary


class PlanPart(msgspec.Struct, array_like=True, omit_defaults=True):
    """One plan, worked out by a worker: what the engine would hold had it worked the plan out itself.

    A bare part (the plan alone) is a plan the worker could not send back: the engine works it out when asked.
    """

    plan: PlanRef
    parsed: list[Parsed] = []
    listed: list[Listed] = []
    links: list[str] = []  # symlinks found on the way (a watcher of the plans folder may not see behind them)
    files: list[FilesAnswer] = []
    summary: SummaryAnswer | None = None  # None: not memoised (an input inside the racy window)


_EMPTY = msgspec.Raw(b"\x90")  # msgpack's empty array


class PlanHead(msgspec.Struct, array_like=True):
    """A PlanPart as the caller first decodes it (the same fields, in the same places): the answers
    decoded, the parsed files and folder listings still packed (list[Parsed] and list[Listed]).

    A status that waits for the warm-up needs only the answers; decoding and holding some
    40,000 files at 1,500 plans (about 0.4 s) waits until it is answered (Engine.take_held).
    """

    plan: PlanRef
    parsed: msgspec.Raw = _EMPTY
    listed: msgspec.Raw = _EMPTY
    links: list[str] = []
    files: list[FilesAnswer] = []
    summary: SummaryAnswer | None = None


class PlanJob(msgspec.Struct):
    """Plans of the workspace at `root` to work out, with its configuration (msgpack)."""

    root: str
    config: msgspec.Raw
    plans: list[PlanRef]


Work = Sequence[tuple[str, str]] | PlanJob  # what one message to a worker asks
Feed = queue.SimpleQueue[Sequence[tuple[str, str]] | None]  # more items for parse_many, None: no more
_REQ_DEC = msgspec.msgpack.Decoder(list[tuple[str, str]] | PlanJob)
_RES_DEC = msgspec.msgpack.Decoder(list[Parsed])
_PARTS_DEC = msgspec.msgpack.Decoder(list[PlanHead])
PARSED_DEC = msgspec.msgpack.Decoder(list[Parsed])
LISTED_DEC = msgspec.msgpack.Decoder(list[Listed])
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
        n = int(raw) if isinstance(raw, (str, int, float)) and raw not in ("", 0, "0", "auto") else 0
    except (TypeError, ValueError):
        n = 0
    if n <= 0:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
    return max(1, min(n, 32))


# -- the worker side -------------------------------------------------------------------


def serve(stdin: IO[bytes], stdout: IO[bytes], *, work_out: Callable[[PlanJob], list[PlanPart]] | None = None) -> None:
    """A worker's loop: read a chunk of (kind, path), answer its Parsed list; or a PlanJob, answer its
    PlanParts (worked out by `work_out`; bare parts without it). Stop at end of input."""
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        body = stdin.read(_LEN.unpack(head)[0])
        req = _REQ_DEC.decode(body)
        if isinstance(req, PlanJob):
            parts = work_out(req) if work_out is not None else [PlanPart(p) for p in req.plans]
            answer = _enc.encode([_sendable_part(part) for part in parts])
        else:
            answer = _enc.encode([parse_one(kind, path) for kind, path in req])
        stdout.write(_LEN.pack(len(answer)) + answer)
        stdout.flush()


def _sendable_part(part: PlanPart) -> msgspec.Raw:
    """The part packed, or the bare plan when something in it cannot cross (a name that is not UTF-8)."""
    try:
        return msgspec.Raw(_enc.encode(part))
    except (UnicodeEncodeError, msgspec.EncodeError, TypeError, OverflowError):
        return msgspec.Raw(_enc.encode(PlanPart(part.plan)))


# -- the caller side -------------------------------------------------------------------


class _Worker:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.chunks: deque[Work] = deque()  # sent and not answered yet, oldest first (answers come in order)
        self.buf = bytearray()

    def send(self, chunk: Work) -> None:
        self.chunks.append(chunk)
        body = _enc.encode(chunk if isinstance(chunk, PlanJob) else list(chunk))
        assert self.proc.stdin is not None
        self.proc.stdin.write(_LEN.pack(len(body)) + body)
        self.proc.stdin.flush()

    def answer(self) -> list[Parsed] | list[PlanHead] | None:
        """The answer to the oldest chunk in flight, once it has fully arrived."""
        if len(self.buf) < 4:
            return None
        n = _LEN.unpack_from(self.buf)[0]
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        plans = isinstance(self.chunks.popleft(), PlanJob)
        return _PARTS_DEC.decode(body) if plans else _RES_DEC.decode(body)


def _here(chunk: Work) -> list[Parsed] | list[PlanHead]:
    """A chunk no worker answers: files parsed here; plans left bare (the engine works them out when asked)."""
    if isinstance(chunk, PlanJob):
        return [PlanHead(p) for p in chunk.plans]
    return [parse_one(kind, path) for kind, path in chunk]


def _spawn(n: int, *, plans: bool = False) -> list[_Worker]:
    """Start `n` workers; `plans`: they load the engine first thing (for plan jobs), not on the first job."""
    import perfd

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(perfd.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    workers = []
    for _ in range(n):
        proc = subprocess.Popen([sys.executable, "-m", "perfd.engine.cache.parse_worker",
                                 *(["--plans"] if plans else [])],
                                stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        _enlarge(proc.stdout)
        workers.append(_Worker(proc))
    return workers


def _enlarge(pipe: IO[bytes] | None) -> None:
    """Make `pipe` hold _PIPE bytes where the system allows it (Linux); elsewhere it keeps its size."""
    try:
        import fcntl

        if pipe is not None:
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE)
    except (ImportError, AttributeError, OSError, ValueError):
        pass  # no such call here, or over the system's limit: the default size works, a little slower


def sendable(path: str) -> bool:
    """Whether `path` can cross to a worker (msgpack strings are UTF-8; a lone surrogate is not)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class WorkerPool:
    """Up to `size` worker processes, owned by whoever made the pool (the Engine): those a call leaves
    running (keep=True, prestart) wait for the next call until stop_idle() or close()."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Worker] = []  # workers kept between two calls (keep=True), ready for the next

    def prestart(self) -> None:
        """Start the workers now (ready for plan jobs), kept for the next parse_many or decide_many (or
        stop_idle()): they start while the caller is still finding out what to give them."""
        try:
            self._idle.extend(_spawn(max(0, self.size - len(self._idle)), plans=True))
        except OSError:
            pass  # the next call starts them, or works here

    def idle(self) -> int:
        """How many workers wait for the next call."""
        return len(self._idle)

    def stop_idle(self) -> None:
        """Stop the workers a call left running (keep=True, prestart)."""
        idle = [w.proc for w in self._idle]
        self._idle.clear()
        _stop(*idle)

    def close(self) -> None:
        """Stop every worker left running; the pool can still be used (it starts new ones)."""
        self.stop_idle()

    def parse_many(self, items: Sequence[tuple[str, str]], *, keep: bool = False,
                   feed: Feed | None = None) -> Iterator[list[Parsed]]:
        """Parse `items` ((kind, path) pairs) over the pool's processes; yields batches as they arrive.

        Every item is answered exactly once, in some order, but for a path that is
        not UTF-8 (left to the caller's lazy parse). When a worker cannot
        be started or dies, its work is parsed here instead. The workers are
        stopped when the iterator ends or is closed, unless `keep`: then they wait
        for the next call (which spares starting them again), or for stop_idle() or close().

        `feed`: more items, put by another thread while this runs (None: no more), so
        that the workers parse while the caller works out what else they should parse.
        """
        todo: list[Work] = []
        _queue_front(todo, items)
        for batch in self._run(todo, keep=keep, feed=feed):
            yield cast(list[Parsed], batch)  # file chunks are answered with Parsed lists

    def decide_many(self, plans: Sequence[PlanRef], *, root: str, config: bytes,
                    keep: bool = False) -> Iterator[list[PlanHead]]:
        """Work out `plans` of the workspace at `root` (configuration `config`, packed) over the pool's processes.

        Yields a PlanHead per plan, in some order, as they arrive. A plan that cannot
        cross to a worker (a name that is not UTF-8), or whose worker died, comes back
        bare: the engine works it out itself when an answer needs it.
        """
        raw = msgspec.Raw(config)
        bare = [p for p in plans if not (sendable(p.path) and sendable(p.folder))]
        if bare:
            yield [PlanHead(p) for p in bare]
        to_send = [p for p in plans if sendable(p.path) and sendable(p.folder)]
        todo: list[Work] = [PlanJob(root, raw, to_send[i:i + PLAN_CHUNK]) for i in range(0, len(to_send), PLAN_CHUNK)]
        todo.reverse()  # pop() takes from the end: the first plans first
        # Two jobs in flight per worker: it starts the next while its answer to the last is read
        # (and waits for this process's interpreter lock to be read), instead of idling meanwhile.
        for batch in self._run(todo, keep=keep, feed=None, depth=2):
            yield cast(list[PlanHead], batch)  # plan jobs are answered with PlanHead lists

    def _run(self, todo: list[Work], *, keep: bool,
             feed: Feed | None,
             depth: int = 1) -> Iterator[list[Parsed] | list[PlanHead]]:
        """Hand out `todo` (popped from the end) and what `feed` brings to the workers, up to `depth` chunks
        in flight each; yield their answers."""
        feeding = feed is not None
        want = self.size if feeding else min(self.size, len(todo))
        idle = self._idle
        pool = [idle.pop() for _ in range(min(want, len(idle)))]
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

        def give(w: _Worker) -> bool:
            """Send `w` chunks until `depth` are in flight or none is left; False when it cannot take them."""
            while todo and len(w.chunks) < depth:
                try:
                    w.send(todo.pop())
                except OSError:
                    todo.extend(w.chunks)
                    w.chunks.clear()
                    return False
            return True

        def hand_out() -> None:
            while todo and waiting:
                w = waiting.pop()
                assert w.proc.stdout is not None
                if not give(w):
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
                        data = os.read(key.fd, _READ)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:  # the worker died: its chunks go to the others, or are parsed here
                        sel.unregister(key.fileobj)
                        todo.extend(w.chunks)
                        w.chunks.clear()
                        continue
                    w.buf += data
                    answers = []
                    while (got := w.answer()) is not None:
                        answers.append(got)
                    if not answers:
                        continue
                    if not give(w):
                        sel.unregister(key.fileobj)
                    elif not w.chunks:
                        sel.unregister(key.fileobj)
                        waiting.append(w)
                    yield from answers
            while todo or feeding:  # no worker (or none left)
                if not todo:
                    pull(block=True)
                    continue
                yield _here(todo.pop())
            finished = True
        finally:
            sel.close()
            done = []
            for w in pool:
                if keep and finished and w.proc.poll() is None:
                    if w.proc.stdout is not None:
                        os.set_blocking(w.proc.stdout.fileno(), True)
                    idle.append(w)
                else:
                    done.append(w.proc)
            _stop(*done)


def _queue_front(todo: list[Work], items: Sequence[tuple[str, str]]) -> None:
    """Queue `items` in chunks, after what is queued already (pop() takes from the end)."""
    # A name that is not UTF-8 can neither cross to a worker nor be packed: such a file is
    # left out here, and parsed (and held unpacked) when an answer first needs it.
    to_send = [it for it in items if sendable(it[1])]
    todo[:0] = reversed([to_send[i:i + CHUNK] for i in range(0, len(to_send), CHUNK)])


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    """End workers: every pipe closed first (each then exits at once, in parallel), then each reaped."""
    for proc in procs:
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
