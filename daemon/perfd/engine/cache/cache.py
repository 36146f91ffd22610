"""One cache type for parsed files and directory scans, keyed by what stat says.

An entry is valid while the path's (st_mtime_ns, st_size, st_ino, st_ctime_ns)
are what they were when the value was computed, it is younger than the TTL, and it has
not been pushed out by the LRU capacity.

Same-tick rewrites. A file rewritten twice within one mtime tick keeps its
mtime, and if the size and inode stay the same stat cannot tell. Like git's
"racily clean" index entries, an entry whose mtime is within RACY_WINDOW_NS of
the moment it was read is not trusted on stat alone: each lookup re-reads the
file and compares a BLAKE2 digest of the bytes until a lookup happens after
the window has passed, when the entry becomes stable. A write made more than
RACY_WINDOW_NS after the previous one always gets a newer mtime, and a tool
that resets mtime to the old value (`touch -d`, `rsync -t`, tar) still changes
st_ctime_ns, which is part of the key. Directories are treated the same way,
comparing the sorted entry names instead of bytes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar, cast

import msgspec

from perfd.engine.text import read_bytes as _read
from perfd.latency import Window
from perfd.engine.types import CacheStats
from perfd.settings.schema import CacheSettings

V = TypeVar("V")
M = TypeVar("M")  # what a lookup reads: a file's bytes, a folder's sorted names
StatKey = tuple[int, int, int, int]  # (st_mtime_ns, st_size, st_ino, st_ctime_ns)

# 2 s covers the coarsest common timestamp granularity (FAT's two seconds);
# ext4, xfs, btrfs and tmpfs tick in milliseconds. Only entries written
# within this window of being read pay for a re-read on lookup.
RACY_WINDOW_NS = 2_000_000_000
_SAMPLES = 1024  # lookup latencies kept for percentiles


def stat_key(st: os.stat_result) -> StatKey:
    # st_ctime_ns: no tool can set it, so an edit whose mtime was put back (touch -d, rsync -t, tar, a
    # restore made while the daemon was down) still changes the key.
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


DEFAULT_CAPACITY = CacheSettings().capacity  # [cache] capacity: the schema's default, written once there
DEFAULT_TTL_S = CacheSettings().ttl_s  # [cache] ttl_s

# A value read elsewhere (a worker process) may predate an event this process has already taken: it is
# stat-checked by its first lookup before a watcher vouches for it.
_NEVER = float("-inf")
Inputs = list[tuple[str, StatKey | None]]  # paths looked up, each with its stat key (None: missing)
Persisted = dict[tuple[str, str], tuple[StatKey, bytes]]  # (kind, path) -> (stat key, packed value)


class Recording:
    """The inputs looked up while it is open (see StatCache.recording): each path with its stat key."""

    __slots__ = ("inputs", "newest_mtime_ns")

    def __init__(self) -> None:
        self.inputs: Inputs = []
        self.newest_mtime_ns = 0  # the newest mtime among the inputs stat'ed (not those a watcher vouched for)


class _Entry:
    __slots__ = ("key", "value", "stored", "racy_digest", "checked")

    def __init__(self, key: StatKey, value: object, stored: float, racy_digest: bytes | None, *,
                 checked: float | None = None) -> None:
        self.key = key
        self.value = value
        self.stored = stored
        self.racy_digest = racy_digest  # set while the entry is not yet trusted on stat alone
        self.checked = stored if checked is None else checked  # when its stat key was last seen to hold (see trust)


class StatCache:
    """Values derived from files or folders, valid while their stat key holds."""

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic,
                 packed: dict[str, Callable[[bytes], object]] | None = None,
                 pack: Callable[[object], bytes] | None = None) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be at least 1")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # Kinds held packed (bytes) and unpacked on each hit: kind -> unpack; and how to pack.
        self._packed: dict[str, Callable[[bytes], object]] = packed or {}
        self._pack = pack
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self.invalidations = 0
        self._lat_ns = Window(_SAMPLES)
        # While one is open (see recording()), every path looked up is recorded with its stat
        # key (None when missing): the engine memoises whole answers on that list.
        self._recording: Recording | None = None
        # Trusting a watcher (see trust()): paths under one of `_trusted` (folders, each ending in a
        # separator), outside every folder in `_unwatched` and every symlink in `_links`, checked since
        # `_trust_since`, are served without a stat, once `_sync` has taken the watcher's pending events.
        self._trusted: tuple[str, ...] | None = None
        self._flat: frozenset[str] = frozenset()  # trusted folders watched for their own entries only
        self._listed_folders: set[str] = set()  # every folder ever listed: in a flat one, not vouched for
        self._trust_since = 0.0
        self._unwatched: frozenset[str] = frozenset()  # folders the watcher could not watch: checked by stat
        self._links: set[str] = set()  # symlinks (files or folders): what lies behind them is checked by stat
        self._sync: Callable[[], None] | None = None
        self._syncing = False
        self.sync_enabled = True  # False: trust what the watcher reported so far (a benchmark's baseline)
        self.trusted_hits = 0
        self.stat_checks = 0  # lookups validated by stat (no watcher, or an entry it has not vouched for)
        # Parsed values from the persistent store (perfd.engine.cache.parse_store): used on a
        # miss when the file's stat key is still the stored one, instead of parsing.
        self._persisted: Persisted = {}
        # When set, what fills `_persisted`, called on the first miss or fresh() (a restart
        # that answers from stored answers never needs the parsed files).
        self._persisted_loader: Callable[[], Persisted] | None = None
        self.persisted_hits = 0
        self.folder_kinds: set[str] = set()  # kinds ever used with folder(): listed() looks them up
        self.kinds: set[str] = set()  # every kind ever stored: invalidate() looks them up

    # -- the two ways in ----------------------------------------------------------

    def file(self, kind: str, path: str, parse: Callable[[bytes, str], V], *,
             st: os.stat_result | None = None) -> V:
        """The parsed value of a file, parsing it (and caching that) when needed.

        Raises OSError when the file cannot be stat'ed or read; callers turn
        that into a problem.
        """
        return self._get(kind, path, st, _file_material, parse)

    def folder(self, kind: str, path: str, scan: Callable[[str, list[str]], V], *,
               st: os.stat_result | None = None) -> V:
        """A value computed from a folder's entry names (for example the plan files in it)."""
        self.folder_kinds.add(kind)
        self._listed_folders.add(path)
        return self._get(kind, path, st, _folder_material, lambda names, p: scan(p, names))

    def _get(self, kind: str, path: str, st: os.stat_result | None, load: Callable[[str], tuple[M, bytes]],
             derive: Callable[[M, str], V]) -> V:
        """The one lookup: valid by stat key and TTL; while racy, also by the digest of what `load` reads."""
        t0 = time.perf_counter_ns()
        ck = (kind, path)
        entry = self._entries.get(ck)
        vouched = entry is not None and st is None and self._trusted is not None and self._vouched(entry, path)
        if vouched and self._recording is None and self._sync is not None:  # a lookup of its own, not an answer's
            self.sync()  # its pending events may drop the entry
            entry = self._entries.get(ck)
            vouched = entry is not None and self._trusted is not None and self._vouched(entry, path)
        if vouched and entry is not None:
            # A healthy watcher, its pending events taken, would have invalidated it: no stat.
            if self._clock() - entry.stored <= self.ttl_s:
                self.trusted_hits += 1
                self.hits += 1
                self._entries.move_to_end(ck)
                if self._recording is not None:
                    self._recording.inputs.append((path, entry.key))
                self._lat_ns.add(time.perf_counter_ns() - t0)
                unpack = self._packed.get(kind)
                return cast(V, entry.value if unpack is None or not isinstance(entry.value, bytes)
                            else unpack(entry.value))
        if st is None:
            st = self._stat(path)
        key = stat_key(st)
        # The hit path is inlined (no helper calls): it runs for every input of every answer.
        if entry is not None and entry.key == key:
            self.stat_checks += 1
            if self._clock() - entry.stored > self.ttl_s:
                del self._entries[ck]
                self.expirations += 1
            elif entry.racy_digest is None or self._racy_ok(entry, path, st, load):
                self.hits += 1
                entry.checked = self._clock()
                self._entries.move_to_end(ck)
                self._lat_ns.add(time.perf_counter_ns() - t0)
                unpack = self._packed.get(kind)
                return cast(V, entry.value if unpack is None or not isinstance(entry.value, bytes)
                            else unpack(entry.value))
        self.misses += 1
        read_ns = time.time_ns()
        unpack = self._packed.get(kind)
        if self._persisted_loader is not None:
            self.take_persisted()
        if self._persisted and unpack is not None:
            kept = self._persisted.pop(ck, None)
            if kept is not None and kept[0] == key and read_ns - st.st_mtime_ns >= RACY_WINDOW_NS:
                try:
                    value = cast(V, unpack(kept[1]))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    pass  # not what this perfd would have parsed: parse it
                else:
                    self.persisted_hits += 1
                    self._store(ck, _Entry(key, kept[1], self._clock(), None))
                    self._record(t0)
                    return value
        material, raw = load(path)
        value = derive(material, path)
        racy = digest(raw) if read_ns - st.st_mtime_ns < RACY_WINDOW_NS else None
        held: object = value
        if unpack is not None and self._pack is not None:
            try:
                held = self._pack(value)
            except UnicodeEncodeError:  # a name that is not UTF-8 (a lone surrogate): held as it is
                held = value
        self._store(ck, _Entry(key, held, self._clock(), racy))
        self._record(t0)
        return value

    def _vouched(self, entry: _Entry, path: str) -> bool:
        """Whether the watcher vouches for `entry`: watched path, not behind a symlink, checked since it started."""
        return entry.checked >= self._trust_since and self.watched(path)

    def watched(self, path: str) -> bool:
        """Whether the trusted watcher sees changes to `path`: under one of its folders, in none it could not
        watch, and not a symlink nor behind one (a change to a link's target raises no event where it is read)."""
        roots = self._trusted
        if roots is None:
            return False
        top = ""
        for root in roots:  # one or a few
            if path.startswith(root) or path == root[:-1]:
                top = root
                break
        else:
            # A folder watched for its own entries: its listing, and the files in it (a sub-folder's
            # listing changes raise no event there).
            if self._flat and (path in self._flat or (os.path.dirname(path) in self._flat
                                                      and path not in self._listed_folders)):
                return path not in self._links
            return False
        links, unwatched = self._links, self._unwatched
        if not links and not unwatched:
            return True
        # A walk up from the path to its watched folder: a few set lookups, however many links or unwatched
        # folders there are (thousands, once the watch limit is reached).
        stop = len(top) - 1
        d = path
        while len(d) >= stop:
            if d in links or d in unwatched:
                return False
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        return True

    # -- what others hand in ----------------------------------------------------------

    def put(self, kind: str, path: str, key: StatKey, packed: bytes, *, racy_digest: bytes | None = None) -> None:
        """Hold a value parsed elsewhere (a worker process) from `path` when its stat key was `key`, packed.

        Valid as if parsed here: a later lookup compares the stat key (and, while
        racy, the digest) as for any entry. `kind` must be one held packed.
        """
        if kind not in self._packed:
            raise ValueError(f"{kind} values are not held packed")
        self._store((kind, path), _Entry(key, packed, self._clock(), racy_digest, checked=_NEVER))

    def put_folder(self, kind: str, path: str, key: StatKey, value: object, *, racy_digest: bytes | None = None) -> None:
        """Hold a folder scan made elsewhere (a worker process) when the folder's stat key was `key`.

        Valid as if scanned here (see put); `kind` is then one of folder_kinds.
        """
        if kind in self._packed:
            raise ValueError(f"{kind} values are files' values, held packed")
        self.folder_kinds.add(kind)
        self._listed_folders.add(path)
        self._store((kind, path), _Entry(key, value, self._clock(), racy_digest, checked=_NEVER))

    def held(self, paths: Iterable[str]) -> list[tuple[str, str, StatKey, bytes | None, object]]:
        """(kind, path, stat key, racy digest, value as held) of every entry for `paths`, of any kind."""
        out = []
        entries = self._entries
        for path in dict.fromkeys(paths):
            for kind in self.kinds:  # a few lookups per path, not a pass over the cache
                e = entries.get((kind, path))
                if e is not None:
                    out.append((kind, path, e.key, e.racy_digest, e.value))
        return out

    def fresh(self, kind: str, path: str) -> bool:
        """Whether a lookup of (kind, path) would be a hit (at most one stat, nothing read).

        A value from the persistent store that still holds is taken in here.
        """
        ck = (kind, path)
        entry = self._entries.get(ck)
        if self._persisted_loader is not None:
            self.take_persisted()
        if entry is None and ck not in self._persisted:
            return False
        if entry is not None and self._trusted is not None and self._vouched(entry, path):
            if self._recording is None and self._sync is not None:
                self.sync()  # its pending events may drop the entry
                entry = self._entries.get(ck)
                if entry is None and ck not in self._persisted:
                    return False
                if entry is not None and self._vouched(entry, path):
                    return True
            else:
                return True
        try:
            st = os.stat(path)
        except OSError:
            return False
        key = stat_key(st)
        if entry is not None:
            return entry.key == key and entry.racy_digest is None
        kept = self._persisted.pop(ck)
        if kept[0] != key or time.time_ns() - st.st_mtime_ns < RACY_WINDOW_NS or kind not in self._packed:
            return False
        self.persisted_hits += 1
        self._store(ck, _Entry(key, kept[1], self._clock(), None))
        return True

    def take_persisted(self) -> None:
        """Fill the persisted values now if their loading was deferred (see load_persisted)."""
        loader, self._persisted_loader = self._persisted_loader, None
        if loader is not None:
            self._persisted = loader()

    def load_persisted(self, loader: Callable[[], Persisted], *, lazy: bool) -> None:
        """Take parsed values from the persistent store: `loader` gives them, now, or on the first miss or
        fresh() when `lazy` (a restart that answers from stored answers never needs the parsed files).
        Each is used on a miss while the file's stat key is still the stored one, instead of parsing."""
        self._persisted_loader = loader
        if not lazy:
            self.take_persisted()

    def persisted_pending(self) -> bool:
        """Whether the persisted values were handed over lazily and not read yet."""
        return self._persisted_loader is not None

    def drop_persisted(self) -> None:
        """Forget the persisted values no lookup has taken (not worth their memory once warm)."""
        self._persisted = {}

    def to_persist(self) -> list[tuple[str, str, StatKey, bytes]]:
        """(kind, path, stat key, packed value) to write to the persistent store, least recently used first:
        the persisted values no lookup has taken yet (read first if deferred), then those held."""
        self.take_persisted()
        held = self.packed_values()
        in_cache = {(k, p) for k, p, _key, _v in held}
        kept = [(k, p, key, v) for (k, p), (key, v) in self._persisted.items() if (k, p) not in in_cache]
        return kept + held

    def held_keys(self) -> list[tuple[str, StatKey]]:
        """(path, stat key) of every entry held (what a verification pass stats)."""
        return [(ck[1], e.key) for ck, e in self._entries.items()]

    def held_packed(self, kind: str) -> bool:
        """Whether values of `kind` are held packed (bytes, unpacked on each hit)."""
        return kind in self._packed

    # -- what lookups read ------------------------------------------------------------

    def recording(self) -> _Recorder:
        """`with cache.recording() as rec:` records in `rec.inputs` every path looked up meanwhile, with its
        stat key. Recordings nest: an inner one's inputs are also the outer one's."""
        return _Recorder(self)

    def note(self, inputs: Inputs) -> None:
        """Add `inputs` (read by an answer taken from a memo) to the recording in progress, if any."""
        if self._recording is not None:
            self._recording.inputs.extend(inputs)

    # -- symlinks, which a watcher may not see behind ---------------------------------

    def note_links(self, paths: Iterable[str]) -> None:
        """Symlinks met on the way: what lies behind them a watcher of the plans folder may not see."""
        self._links.update(paths)

    def links(self) -> list[str]:
        """The symlinks noted (see note_links), sorted."""
        return sorted(self._links)

    def packed_values(self) -> list[tuple[str, str, StatKey, bytes]]:
        """(kind, path, stat key, packed value) of every packed entry that is not racy (for the store),
        least recently used first."""
        return [(k, p, e.key, e.value) for (k, p), e in self._entries.items()
                if k in self._packed and e.racy_digest is None and isinstance(e.value, bytes)]

    @property
    def trusting(self) -> bool:
        """Whether a watcher is trusted (see trust)."""
        return self._trusted is not None

    @property
    def unwatched(self) -> frozenset[str]:
        """The folders under the trusted watcher's that it does not watch (checked by stat)."""
        return self._unwatched

    def watched_since(self, when: float) -> bool:
        """Whether a trusted watcher has been watching since `when` (a clock reading): it would have
        reported a change to what it watches made after that."""
        return self._trusted is not None and when >= self._trust_since

    def trust(self, folders: Iterable[str | tuple[str, bool]] | None, *, unwatched: Iterable[str] = ()) -> None:
        """Trust a watcher of `folders` (real paths, each its whole tree, or (path, recursive): False for a
        folder watched for its own entries only) from now on, but for the folders under them it could not
        watch (`unwatched`, each with what lies under it); None: trust nothing.

        Entries checked or stored from now on in a watched folder are served
        without a stat until invalidated; older ones are stat-checked once first,
        since changes made before the watcher started were never reported.
        Called again (an overflow, a folder it could not watch), it starts over.
        """
        given = [(f, True) if isinstance(f, str) else f for f in folders] if folders is not None else None
        self._trusted = None if given is None else tuple(f.rstrip(os.sep) + os.sep for f, rec in given if rec)
        self._flat = frozenset(f.rstrip(os.sep) for f, rec in given or () if not rec)
        self._unwatched = frozenset(u.rstrip(os.sep) for u in unwatched)
        self._trust_since = self._clock()

    def sync_with(self, sync: Callable[[], None] | None) -> None:
        """How to bring the trusted watcher up to date: `sync` takes the events it has pending (changes made
        before the call) and invalidates what they touch. Called before an answer relies on the watcher:
        by the first lookup of an answer (see Answers.recall), or a lookup made on its own."""
        self._sync = sync

    def sync_for_answer(self) -> None:
        """Before an answer is looked up: sync, unless it is part of an answer already being worked out
        (synced when that one began)."""
        if self._recording is None:
            self.sync()

    def sync(self) -> None:
        """Take the trusted watcher's pending events now (see sync_with); not within a sync."""
        if self._sync is None or self._syncing or not self.sync_enabled or self._trusted is None:
            return
        self._syncing = True
        try:
            self._sync()
        finally:
            self._syncing = False

    def recheck(self) -> int:
        """Stat-check now every entry the trusted watcher does not vouch for yet (held from before it
        started), as its first lookup would: one whose stat key holds is vouched for from now on, one
        that changed is dropped. Returns how many were checked.

        Done ahead, while nothing waits, so that later answers stat nothing. Racy
        entries, and those outside the watched folder or behind a symlink, are
        left to their lookups.
        """
        return sum(self.rechecking(step=len(self._entries) + 1))

    def rechecking(self, step: int = 1000) -> Iterator[int]:
        """recheck() a slice of `step` entries at a time, yielding how many each checked: between two
        slices the caller may serve requests (which may look entries up, drop or replace them)."""
        if self._trusted is None:
            return
        since = self._trust_since
        keys = list(self._entries)
        for i in range(0, len(keys), step):
            if self._trusted is None or self._trust_since != since:
                return  # the watcher stopped or started again meanwhile: lookups check by stat
            now = self._clock()
            entries = self._entries
            stale = []
            n = 0
            for ck in keys[i:i + step]:
                entry = entries.get(ck)
                if entry is None or entry.checked >= since or entry.racy_digest is not None:
                    continue
                if not self.watched(ck[1]):
                    continue
                n += 1
                try:
                    key = stat_key(os.stat(ck[1]))
                except OSError:
                    stale.append(ck)
                    continue
                if key == entry.key:
                    entry.checked = now
                else:
                    stale.append(ck)
            for ck in stale:
                del entries[ck]
            self.invalidations += len(stale)
            yield n

    # -- invalidation -------------------------------------------------------------

    def invalidate(self, path: str) -> int:
        """Drop every entry for `path` (any kind). Returns how many were dropped."""
        n = 0
        for kind in self.kinds:  # a few lookups, not a pass over the cache
            if self._entries.pop((kind, path), None) is not None:
                n += 1
        self.invalidations += n
        return n

    def invalidate_under(self, folder: str) -> int:
        prefix = folder.rstrip(os.sep) + os.sep
        doomed = [ck for ck in self._entries if ck[1] == folder or ck[1].startswith(prefix)]
        for ck in doomed:
            del self._entries[ck]
        self.invalidations += len(doomed)
        return len(doomed)

    def listed(self, path: str) -> bool:
        """Whether a folder listing of `path` is held (any kind of scan of it)."""
        entries = self._entries
        return any((kind, path) in entries for kind in self.folder_kinds)

    def invalidate_where(self, doomed: Callable[[str], bool]) -> int:
        """Drop every entry whose path `doomed` says so (one pass over the cache)."""
        gone = [ck for ck in self._entries if doomed(ck[1])]
        for ck in gone:
            del self._entries[ck]
        self.invalidations += len(gone)
        return len(gone)

    def clear(self) -> int:
        n = len(self._entries)
        self._entries.clear()
        self.invalidations += n
        return n

    # -- stats --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def stats(self) -> CacheStats:
        total = self.hits + self.misses
        p50_ns, p99_ns = self._lat_ns.percentiles(0.50, 0.99)
        return CacheStats(
            entries=len(self._entries),
            capacity=self.capacity,
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            expirations=self.expirations,
            invalidations=self.invalidations,
            hit_rate=(self.hits / total) if total else 0.0,
            lookup_p50_us=p50_ns / 1000,
            lookup_p99_us=p99_ns / 1000,
            trusted_hits=self.trusted_hits,
            stat_checks=self.stat_checks,
            persisted_hits=self.persisted_hits,
        )

    # -- internals ----------------------------------------------------------------

    def _stat(self, path: str) -> os.stat_result:
        try:
            st = os.stat(path)
        except OSError:
            if self._recording is not None:
                self._recording.inputs.append((path, None))
            raise
        rec = self._recording
        if rec is not None:
            rec.inputs.append((path, stat_key(st)))
            if st.st_mtime_ns > rec.newest_mtime_ns:
                rec.newest_mtime_ns = st.st_mtime_ns
        return st

    def _racy_ok(self, entry: _Entry, path: str, st: os.stat_result,
                 load: Callable[[str], tuple[object, bytes]]) -> bool:
        try:
            raw = load(path)[1]
        except OSError:
            return False
        if digest(raw) != entry.racy_digest:
            return False
        if time.time_ns() - st.st_mtime_ns >= RACY_WINDOW_NS:
            entry.racy_digest = None  # old enough now: stat alone can be trusted
        return True

    def _store(self, ck: tuple[str, str], entry: _Entry) -> None:
        self.kinds.add(ck[0])
        self._entries[ck] = entry
        self._entries.move_to_end(ck)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evictions += 1

    def _record(self, t0: int) -> None:
        self._lat_ns.add(time.perf_counter_ns() - t0)


def _file_material(path: str) -> tuple[bytes, bytes]:
    data = _read(path)
    return data, data


def _folder_material(path: str) -> tuple[list[str], bytes]:
    names = sorted(os.listdir(path))
    return names, "\0".join(names).encode("utf-8", "surrogateescape")


class _Recorder:
    """The context manager of StatCache.recording (a class: it opens on every answer computed)."""

    __slots__ = ("_cache", "_rec", "_outer")

    def __init__(self, cache: StatCache) -> None:
        self._cache = cache
        self._rec = Recording()
        self._outer: Recording | None = None

    def __enter__(self) -> Recording:
        cache = self._cache
        self._outer = cache._recording
        cache._recording = self._rec
        return self._rec

    def __exit__(self, *exc: object) -> None:
        rec, outer = self._rec, self._outer
        self._cache._recording = outer
        if outer is not None:
            outer.inputs.extend(rec.inputs)
            if rec.newest_mtime_ns > outer.newest_mtime_ns:
                outer.newest_mtime_ns = rec.newest_mtime_ns
