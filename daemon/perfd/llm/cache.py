"""Response cache: an in-memory LRU/TTL in front of a persistent SQLite store.

The key is the SHA-256 of a canonical JSON encoding (sorted keys, orjson) of
everything that shapes the answer: base URL, model, every message, tools and
every sampling parameter. Never a repr: reprs differ across versions and
hide fields. The API key is not part of the key and never stored.

A third level may sit behind SQLite: the team's Redis (team.SharedCache),
anything with the `SharedLevel` shape. A hit there is kept in memory and on
disk too; a put goes to every level. Hits are counted per level.

Streams are stored as their chunks so a hit on a streamed call is replayed
as the same stream; only complete answers are ever stored. Whether a call
streams is not part of the key: a plain call and a stream with the same
inputs share one entry (a plain answer replays as a single chunk).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import anyio
import msgspec
import orjson

from .errors import LLMRequestError
from .store import SQLiteStore
from .types import JSONObject

log = logging.getLogger("perfd.llm")

CACHE_FORMAT = 1  # bump when the key or the stored entry changes meaning


class CachedResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One complete answer as stored in the cache."""

    text: str
    model: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The deltas as streamed (None when recorded from a plain call).
    chunks: list[str] | None = None
    tool_calls: list[JSONObject] | None = None
    created: float = 0.0


class SharedLevel(Protocol):
    """A cache level shared with other daemons; it misses rather than fails."""

    async def get(self, key: str) -> CachedResponse | None: ...

    def put(self, key: str, response: CachedResponse, *, ttl_s: float | None = None) -> None: ...

    async def flush(self) -> None: ...


def cache_key(*, base_url: str, model: str, messages: Sequence[Mapping[str, object]], params: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the canonical encoding of a request's meaning.

    `params` holds tools and every sampling parameter actually sent.
    Raises LLMError when something is not plain JSON data, rather than
    silently keying on a repr.
    """
    payload = {
        "v": CACHE_FORMAT,
        "base_url": base_url.rstrip("/"),
        "model": model,
        "messages": list(messages),
        "params": dict(params),
    }
    try:
        blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise LLMRequestError(
            f"messages and options must be plain JSON data (str, number, bool, None, list, dict): {exc}"
        ) from None
    return hashlib.sha256(blob).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    used REAL NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS responses_used ON responses(used);
"""

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedResponse)


class ResponseCache:
    """Memory LRU (bounded, TTL) + SQLite (bounded, TTL, WAL) response cache.

    `path=None` keeps the cache in memory only. Lookups that miss memory ask
    SQLite only for keys known to be on disk (the key set is loaded once, off
    the event loop), so a miss costs no thread hop and no disk read.
    """

    def __init__(
        self,
        path: str | None,
        *,
        ttl_s: float,
        memory_entries: int = 512,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.time,
        shared: SharedLevel | None = None,
        max_answer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._ttl = ttl_s
        # One bound for every level: an answer larger than this (encoded) is neither kept nor read back.
        self.max_answer_bytes = max_answer_bytes
        self.shared = shared
        self.hits_by_level: dict[str, int] = {"memory": 0, "disk": 0, "shared": 0}
        self._memory_cap = memory_entries
        self._max_entries = max_entries
        self._clock = clock
        self._memory: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()
        self._store = SQLiteStore(path, _SCHEMA, version=CACHE_FORMAT) if path else None
        self._on_disk: set[str] | None = None  # keys in SQLite; None until loaded
        self._load_lock = anyio.Lock()
        self._broken = False

    @property
    def path(self) -> str | None:
        return self._store.path if self._store else None

    @property
    def rebuilt(self) -> int:
        """How many times a corrupt cache file was set aside and rebuilt."""
        return self._store.rebuilt if self._store else 0

    async def get(self, key: str, *, count: bool = True) -> CachedResponse | None:
        """The answer cached under `key`, or None; `count=False` looks without counting a hit (a run
        says "from the cache" before the call that then counts it once)."""
        now = self._clock()
        hit = self._memory.get(key)
        if hit is not None:
            if hit[0] > now:
                self._memory.move_to_end(key)
                self.hits_by_level["memory"] += count
                return hit[1]
            del self._memory[key]
        response = await self._get_disk(key, now)
        if response is not None:
            self.hits_by_level["disk"] += count
            return response
        if self.shared is None:
            return None
        response = await self.shared.get(key)
        if response is None:
            return None
        self.hits_by_level["shared"] += count
        self._put_local(key, response, now)  # the next hit is local
        return response

    async def _get_disk(self, key: str, now: float) -> CachedResponse | None:
        if self._store is None or self._broken:
            return None
        known = self._on_disk if self._on_disk is not None else await self._load_keys()
        if key not in known:
            return None
        limit = self.max_answer_bytes
        try:
            entry = await self._store.arun(lambda conn: _read(conn, key, now, limit))
        except sqlite3.Error as exc:
            log.warning("response cache read failed (%s); treating as a miss", exc)
            return None
        if entry is None:
            known.discard(key)
            return None
        expires, response = entry
        self._remember(key, expires, response)
        self._store.submit(lambda conn: _touch(conn, key, now))
        return response

    def put(self, key: str, response: CachedResponse) -> None:
        """Store a complete answer (memory now, disk and the shared level in the background)."""
        now = self._clock()
        body = _encoder.encode(response)
        if len(body) > self.max_answer_bytes:
            return  # past the bound no level keeps it
        if self.shared is not None:
            self.shared.put(key, response, ttl_s=self._ttl)
        self._put_local(key, response, now, body)

    def _put_local(self, key: str, response: CachedResponse, now: float, body: bytes | None = None) -> None:
        expires = now + self._ttl
        self._remember(key, expires, response)
        if self._store is None or self._broken:
            return
        if body is None:
            body = _encoder.encode(response)
        if self._on_disk is not None:
            self._on_disk.add(key)
            over = len(self._on_disk) - self._max_entries
        else:
            over = 0
        cap = self._max_entries
        on_disk = self._on_disk

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO responses(key, created, expires, used, body) VALUES (?,?,?,?,?)",
                (key, now, expires, now, body),
            )
            if over > 0:
                # Past capacity: drop the least recently used rows.
                dropped = conn.execute(
                    "DELETE FROM responses WHERE key IN "
                    "(SELECT key FROM responses ORDER BY used LIMIT max(0, (SELECT count(*) FROM responses) - ?)) "
                    "RETURNING key",
                    (cap,),
                ).fetchall()
                if on_disk is not None:
                    for (k,) in dropped:
                        on_disk.discard(k)

        self._store.submit(write)

    def _remember(self, key: str, expires: float, response: CachedResponse) -> None:
        if self._memory_cap <= 0:
            return
        self._memory[key] = (expires, response)
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_cap:
            self._memory.popitem(last=False)

    async def _load_keys(self) -> set[str]:
        assert self._store is not None
        async with self._load_lock:
            if self._on_disk is None:
                now = self._clock()
                try:
                    keys = await self._store.arun(lambda conn: _load(conn, now))
                except (sqlite3.Error, OSError) as exc:
                    # Unreadable and not repairable (permissions, disk): run memory-only.
                    log.warning("response cache %s unavailable (%s); caching in memory only", self._store.path, exc)
                    self._broken = True
                    keys = set()
                self._on_disk = keys
            return self._on_disk

    async def warm(self) -> None:
        """Open the file and load its keys now (optional: happens on first use)."""
        if self._store is not None and self._on_disk is None:
            await self._load_keys()

    def clear_memory(self) -> None:
        self._memory.clear()

    async def flush(self) -> None:
        if self.shared is not None:
            await self.shared.flush()
        if self._store is not None:
            await self._store.flush()

    def close(self) -> None:
        """Commit pending writes and close the file (blocking; call off the loop)."""
        if self._store is not None:
            self._store.close()

    def __len__(self) -> int:
        return len(self._memory)


def _load(conn: sqlite3.Connection, now: float) -> set[str]:
    conn.execute("DELETE FROM responses WHERE expires <= ?", (now,))
    return {row[0] for row in conn.execute("SELECT key FROM responses")}


def _read(conn: sqlite3.Connection, key: str, now: float, limit: int) -> tuple[float, CachedResponse] | None:
    row = conn.execute("SELECT expires, CASE WHEN length(body) <= ? THEN body END FROM responses WHERE key = ?",
                       (limit, key)).fetchone()
    if row is None or row[0] <= now:
        return None
    if row[1] is None:
        return None  # larger than any level keeps (written before the bound was lowered, or by hand): a miss
    try:
        return float(row[0]), _decoder.decode(row[1])
    except msgspec.DecodeError:
        return None  # an entry from a bad write: a miss, overwritten on the next put


def _touch(conn: sqlite3.Connection, key: str, now: float) -> None:
    conn.execute("UPDATE responses SET used = ? WHERE key = ?", (now, key))
